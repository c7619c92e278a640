-- vxvde:// (vdeplug4's multicast LAN) and vxlan:// (RFC 7348) endpoints. Multicast only ever
-- leaves through namespaces the specs make: a user namespace (no root) or named ones (root).
local fabric = require "vsq.fabric"
local W = require "helpers.wire"
local tmp = require "helpers.tmp"
local vsqbin = require "helpers.vsq"

-- What the scripts below share: numbered frames (as helpers.wire makes them).
local PRELUDE = [[
local fabric = require "vsq.fabric"
local B = ("\255"):rep(6)
local function mac(n) return "\2\0\0\0\0" .. string.char(n) end
local function frame(dst, src, n) return dst .. mac(src) .. "\136\181" .. string.pack(">I4", n) .. ("z"):rep(60) end
local function seq(f) return f and #f >= 18 and (string.unpack(">I4", f, 15)) or "none" end
local function say(...) print(...) io.stdout:flush() end
]]

-- Run a vsq script as nobody in a new user and network namespace whose lo carries multicast
-- (plus the shell commands in `setup`). Returns exec's result.
local function run_in_userns(source, setup)
  local bindir = vsqbin.unprivileged_copy()
  local dir = tmp.dir("vx")
  finally(function() tmp.remove(dir); tmp.remove(bindir) end)
  local script = W.script(dir, "s.lua", PRELUDE .. source)
  local cmd = "ip link set lo up multicast on && ip route add 224.0.0.0/4 dev lo && " ..
    (setup and (setup .. " && ") or "") .. "exec " .. bindir .. "/vsq " .. script
  return vsqbin.as_nobody({ "unshare", "-rn", "sh", "-c", cmd }, { timeout = 60 }, bindir)
end

-- The message of a URL that cannot be opened (fabric.open raises for malformed ones and
-- returns nil, message for the others).
local function open_error(url)
  local ok, ep, err = pcall(fabric.open, url)
  if ok and ep then
    ep:close()
    return nil
  end
  return ok and err or ep
end

local function lines_of(text)
  local t = {}
  for l in text:gmatch("[^\n]+") do
    local k, v = l:match("^(%S+)\t(.*)$")
    if k then t[k] = v end
  end
  return t
end

describe("vxvde://", function()
  it("rejects URLs it cannot use, saying why", function()
    local cases = {
      { "vxvde://10.1.2.3", "vxvde: 10.1.2.3 is not a multicast group" },
      { "vxvde://239.0.0.1/ttl=300", "vxvde ttl: 300 is out of range (at most 255)" },
      { "vxvde://239.0.0.1/colour=blue", 'unknown option "colour"' },
      { "vxvde://239.0.0.1/if=nosuch0", "vxvde if=nosuch0: no such interface" },
      { "vxvde://239.0.0.1/vni=16777216", "vni" },
      { "vxvde://239.0.0.1/v4=1", "vxvde option v4 takes no value" },
    }
    for _, c in ipairs(cases) do
      local err = open_error(c[1])
      assert.truthy(err, c[1] .. " was opened")
      assert.truthy(err:find(c[2], 1, true), ("%s: got %q"):format(c[1], err))
    end
  end)

  it("joins endpoints on one group: broadcast, learnt unicast, VNI isolation, goodbye", function()
    local r = run_in_userns([[
      local url = "vxvde://239.5.0.1/port=15100/vni=42"
      local e1 = assert(fabric.open(url))
      local e2 = assert(fabric.open(url))
      local other = assert(fabric.open("vxvde://239.5.0.1/port=15100/vni=43"))
      assert(e1:send(frame(B, 1, 1)))
      say("broadcast", seq(e2:recv(3)))
      say("self", seq(e1:recv(0.2)))
      say("othervni", seq(other:recv(0.2)))
      assert(e2:send(frame(mac(1), 2, 2)))
      say("unicast", seq(e1:recv(3)))
      say("e2", tostring(e2))
      e1:close()
      vsq.sleep(0.3)
      say("goodbye", tostring(e2))
      e2:close() other:close()
    ]])
    assert.is_true(r.ok, r.stderr)
    local out = lines_of(r.stdout)
    assert.are.equal("1", out.broadcast)
    assert.are.equal("none", out.self)     -- its own multicast does not come back
    assert.are.equal("none", out.othervni) -- another VNI on the same group hears nothing
    assert.are.equal("2", out.unicast)
    assert.truthy(out.e2:find("sent 1 unicast 0 multicast", 1, true), out.e2)
    assert.truthy(out.goodbye:find("0 MACs known", 1, true), out.goodbye)
  end)

  it("carries frames both ways with vde_plug's vxvde plugin #peer", function()
    local r = run_in_userns([[
      local url = "vxvde://239.5.0.2/port=15101/vni=7"
      local p = assert(vsq.process({ "vde_plug", url }, { stdin = "pipe", stdout = "pipe" }))
      local e = assert(fabric.open(url))
      vsq.sleep(0.5) -- vde_plug joins the group
      local f = frame(B, 9, 1)
      p.stdin:write(string.pack(">I2", #f) .. f)
      say("from_vde_plug", seq(e:recv(3)))
      local function from_stdout()
        local hdr = p.stdout:read(2, 3)
        if not hdr then return nil end
        return p.stdout:read(string.unpack(">I2", hdr), 3)
      end
      assert(e:send(frame(B, 1, 2)))
      say("to_vde_plug", seq(from_stdout()))
      assert(e:send(frame(mac(9), 1, 3))) -- to the MAC learnt behind vde_plug
      say("unicast_to_vde_plug", seq(from_stdout()))
      say("e", tostring(e))
      p:kill("TERM") p:wait()
      vsq.sleep(0.3)
      say("after", tostring(e))
      e:close()
    ]])
    assert.is_true(r.ok, r.stderr)
    local out = lines_of(r.stdout)
    assert.are.equal("1", out.from_vde_plug)
    assert.are.equal("2", out.to_vde_plug)
    assert.are.equal("3", out.unicast_to_vde_plug)
    assert.truthy(out.e:find("sent 1 unicast", 1, true), out.e)
    assert.truthy(out.after:find("0 MACs known", 1, true), out.after) -- vde_plug said goodbye
  end)

  it("uses IPv6 groups on the interface given with if=", function()
    local r = run_in_userns([[
      local url = "vxvde://ff05:56de::42/port=15102/vni=3/if=vx6a"
      local e1 = assert(fabric.open(url))
      local e2 = assert(fabric.open("vxvde://[ff05:56de::42]:15102/vni=3/if=vx6a"))
      vsq.sleep(0.2)
      assert(e1:send(frame(B, 1, 1)))
      say("broadcast", seq(e2:recv(3)))
      assert(e2:send(frame(mac(1), 2, 2)))
      say("unicast", seq(e1:recv(3)))
      say("e2", tostring(e2))
      e1:close() e2:close()
    ]], "ip link add vx6a type veth peer name vx6b && ip link set vx6a up && ip link set vx6b up && " ..
      -- sending needs the link-local address, which is usable once duplicate detection ends
      "for i in $(seq 100); do ip -6 addr show dev vx6a scope link | grep -q inet6 && " ..
      "! ip -6 addr show dev vx6a | grep -q tentative && break; sleep 0.05; done")
    assert.is_true(r.ok, r.stderr)
    local out = lines_of(r.stdout)
    assert.are.equal("1", out.broadcast)
    assert.are.equal("2", out.unicast)
    assert.truthy(out.e2:find("group [ff05:56de::42]:15102 vni 3", 1, true), out.e2)
  end)
end)

describe("vxlan://", function()
  it("rejects peer lists it cannot use, saying why", function()
    local cases = {
      { "vxlan://239.0.0.1,10.0.0.1", "must be the only peer" },
      { "vxlan://10.0.0.1,fd00::1", "peers of both IPv4 and IPv6" },
      { "vxlan://10.0.0.1/port=0", "port" },
      { "vxlan://no-such-host.invalid", "cannot resolve" },
    }
    for _, c in ipairs(cases) do
      local err = open_error(c[1])
      assert.truthy(err, c[1] .. " was opened")
      assert.truthy(err:find(c[2], 1, true), ("%s: got %q"):format(c[1], err))
    end
  end)

  it("bridges a tap to a Linux vxlan device: ping both ways #root", function()
    local x <close> = W.netns("vxk")
    local y <close> = W.netns("vxv")
    W.veth(x, "vxk0", "10.77.0.1/24", y, "vxv0", "10.77.0.2/24")
    x:exec("ip link add vx0 type vxlan id 42 remote 10.77.0.2 dstport 4789 dev vxk0 && " ..
      "ip addr add 192.168.177.1/24 dev vx0 && ip link set vx0 up")
    local dir = tmp.dir("vxl")
    finally(function() tmp.remove(dir) end)
    local script = W.script(dir, "y.lua", [[
      local fabric = require "vsq.fabric"
      local vx = assert(fabric.open("vxlan://10.77.0.1/vni=42"))
      local tap = assert(fabric.open("tap://vsqvx0"))
      local link = fabric.link(vx, tap, { delay = "1ms" })
      print("ready") io.stdout:flush()
      vsq.run()
      print(tostring(vx)) io.stdout:flush()
      link:close() tap:close() vx:close()
    ]])
    local p <close> = y:process({ W.vsq, script }, { stdout = "pipe" })
    assert.are.equal("ready", p.stdout:read("l", 10))
    y:exec("ip addr add 192.168.177.2/24 dev vsqvx0 && ip link set vsqvx0 up")
    local r = x:try("ping -c 3 -i 0.2 -W 2 192.168.177.2")
    assert.is_true(r.ok, r.stdout .. r.stderr)
    r = y:try("ping -c 3 -i 0.2 -W 2 192.168.177.1")
    assert.is_true(r.ok, r.stdout .. r.stderr)
    p:kill("TERM")
    local described = p.stdout:read("l", 10)
    assert.is_true((p:wait(10)))
    -- replies went back by learnt unicast, not flooded to the peer list
    assert.truthy(described:find("MACs known; sent [1-9]%d* unicast"), described)
  end)
end)
