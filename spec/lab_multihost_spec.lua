-- A LAN across machines: two machine namespaces joined by a veth pair, each with its own vsq
-- process serving a host (a namespace with a tap) and joining one vxvde:// LAN.
local W = require "helpers.wire"
local tmp = require "helpers.tmp"

local EXAMPLE = W.top .. "/examples/multihost_lan.lua"
local URL = "vxvde://239.31.0.1/port=14789/vni=31/if=eth0"

-- machines m1, m2 (veth eth0 10.31.0.1/2) and hosts h1, h2; closed in reverse.
local function lab()
  local l = {}
  l.m1, l.m2 = W.netns("m1"), W.netns("m2")
  l.h1, l.h2 = W.netns("h1"), W.netns("h2")
  W.veth(l.m1, "eth0", "10.31.0.1/24", l.m2, "eth0", "10.31.0.2/24")
  l.procs = {}
  function l.close()
    for _, p in ipairs(l.procs) do
      if p:running() then p:kill("TERM") end
      p:wait(5)
      p:close()
    end
    for _, n in ipairs({ l.h2, l.h1, l.m2, l.m1 }) do n:close() end
  end
  --- Start argv in machine m (its stdout a pipe); wait for its "ready" line if asked.
  function l.start(m, argv, ready)
    local p = m:process(argv, { stdout = "pipe" })
    l.procs[#l.procs + 1] = p
    if ready then assert.are.equal("ready", p.stdout:read("l", 10)) end
    return p
  end
  --- Move tap `name` from machine m into host h with address 192.168.31.N/24.
  function l.host(m, h, name, n)
    W.sh({ "ip", "-n", m.name, "link", "set", name, "netns", h.name })
    h:exec(("ip addr add 192.168.31.%d/24 dev %s && ip link set %s up"):format(n, name, name))
  end
  return setmetatable(l, { __close = l.close })
end

local function ping(from, n)
  return from:try(("ping -c 3 -i 0.2 -W 2 192.168.31.%d"):format(n))
end

-- One TCP connection from h1 to h2, each side sending a line: returns what each one heard.
local function tcp(h1, h2)
  local server <close> = h2:process({ "sh", "-c", "echo 'hello from h2' | nc -N -l 192.168.31.2 7000" },
    { stdout = "pipe" })
  for _ = 1, 100 do
    if h2:exec("ss -ltn"):find("192.168.31.2:7000", 1, true) then break end
    vsq.sleep(0.05)
  end
  local answer = h1:exec("echo 'hello from h1' | nc -N -w 5 192.168.31.2 7000")
  local heard = server.stdout:read("a", 10)
  server:wait(5)
  return answer, heard
end

describe("a LAN across two machines", function()
  it("lets hosts behind two vsq processes ping each other and talk TCP over vxvde #root", function()
    local l <close> = lab()
    local vsq1 = l.start(l.m1, { W.vsq, EXAMPLE, "machine", "lan0", URL, "2ms" }, true)
    local vsq2 = l.start(l.m2, { W.vsq, EXAMPLE, "machine", "lan0", URL, "2ms" }, true)
    l.host(l.m1, l.h1, "lan0", 1)
    l.host(l.m2, l.h2, "lan0", 2)

    local r = ping(l.h1, 2)
    assert.is_true(r.ok, r.stdout .. r.stderr)
    r = ping(l.h2, 1)
    assert.is_true(r.ok, r.stdout .. r.stderr)
    local answer, heard = tcp(l.h1, l.h2)
    assert.are.equal("hello from h2\n", answer)
    assert.are.equal("hello from h1\n", heard)

    -- each machine's vsq saw the traffic, and sent what it could by learnt unicast
    for _, p in ipairs({ vsq1, vsq2 }) do
      p:kill("TERM")
      local report = p.stdout:read("a", 10)
      assert.truthy(report:find("wire: [1-9]%d* frames to the LAN, [1-9]%d* from it"), report)
      assert.truthy(report:find("sent [1-9]%d* unicast"), report)
      assert.is_true((p:wait(5)))
    end
  end)

  it("mixes a vsq machine with one running only Debian's vde_plug #root #peer", function()
    local l <close> = lab()
    l.start(l.m1, { W.vsq, EXAMPLE, "machine", "lan0", URL }, true)
    -- machine 2: vde_plug's own vxvde plugin cabled to a tap
    l.start(l.m2, { "vde_plug", URL, "tap://lan0" })
    for _ = 1, 100 do
      if l.m2:try("ip link show lan0").ok then break end
      vsq.sleep(0.05)
    end
    l.host(l.m1, l.h1, "lan0", 1)
    l.host(l.m2, l.h2, "lan0", 2)
    local r = ping(l.h1, 2)
    assert.is_true(r.ok, r.stdout .. r.stderr)
    r = ping(l.h2, 1)
    assert.is_true(r.ok, r.stdout .. r.stderr)
    local answer, heard = tcp(l.h1, l.h2)
    assert.are.equal("hello from h2\n", answer)
    assert.are.equal("hello from h1\n", heard)
  end)

  it("runs the example from start to finish and leaves nothing behind #root", function()
    local r = assert(vsq.exec({ W.vsq, EXAMPLE }, { timeout = 120 }))
    assert.is_true(r.ok, r.stdout .. r.stderr)
    assert.truthy(r.stdout:find("h1 -> 192.168.30.2: 3 packets transmitted, 3 received", 1, true), r.stdout)
    assert.truthy(r.stdout:find("h2 -> 192.168.30.1: 3 packets transmitted, 3 received", 1, true), r.stdout)
    assert.truthy(r.stdout:find("h1 heard over TCP: hello from h2", 1, true), r.stdout)
    assert.truthy(r.stdout:find("h2 heard over TCP: hello from h1", 1, true), r.stdout)
    assert.is_nil(W.sh({ "ip", "netns", "list" }):find("vsq-lab-", 1, true))
  end)
end)
