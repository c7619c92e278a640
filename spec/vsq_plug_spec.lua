-- vsq-plug: vde_plug's command line, against Debian's vde_switch and vde_plug.
local fabric = require "vsq.fabric"
local H = require "helpers.plug"
local tmp = require "helpers.tmp"
local hv = require "helpers.vsq"

local function script()
  return hv.top .. "/scripts/vsq-plug"
end

-- vsq-plug as a child with piped stdin/stdout.
local function vsq_plug(args, opts)
  local argv = { hv.bin, script() }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  opts = opts or {}
  opts.stdin = opts.stdin or "pipe"
  opts.stdout = opts.stdout or "pipe"
  return assert(vsq.process(argv, opts))
end

-- Write test frames into a stream-format writer until the endpoint receives one.
local function write_until_recv(p, ep, tag)
  for _ = 1, 300 do
    p.stdin:write(string.pack(">s2", H.test_frame(tag, 90, H.mac("02:00:00:00:00:77"))))
    local f = ep:recv(0.01)
    if f then return f end
  end
end

-- Send from an endpoint until the reader process prints a frame in the stream format.
local function send_until_read(ep, p, tag)
  local got
  local reader = vsq.spawn(function() got = H.read_stream_frame(p.stdout) end)
  for _ = 1, 300 do
    ep:send(H.test_frame(tag))
    vsq.sleep(0.01)
    if got then break end
  end
  reader:cancel()
  return got
end

describe("vsq-plug #peer", function()
  it("carries frames between its stdin/stdout and a vde_switch that vde_plug also uses", function()
    local sw, dir = H.vde_switch()
    finally(function() sw:close() tmp.remove(dir) end)
    local ours <close> = vsq_plug({ dir })
    local theirs <close> = H.vde_plug(dir)
    -- both speak the stream format: a frame written to one comes out of the other
    local got
    local reader = vsq.spawn(function() got = H.read_stream_frame(theirs.stdout) end)
    for _ = 1, 300 do
      ours.stdin:write(string.pack(">s2", H.test_frame("vsq-plug->vde_plug")))
      vsq.sleep(0.01)
      if got then break end
    end
    reader:cancel()
    assert.are.equal("vsq-plug->vde_plug", H.tag(got))
    got = nil
    reader = vsq.spawn(function() got = H.read_stream_frame(ours.stdout) end)
    for _ = 1, 300 do
      theirs.stdin:write(string.pack(">s2", H.test_frame("vde_plug->vsq-plug")))
      vsq.sleep(0.01)
      if got then break end
    end
    reader:cancel()
    assert.are.equal("vde_plug->vsq-plug", H.tag(got))
  end)

  it("reassembles its input whatever the write sizes", function()
    local p1, p2 = H.free_port(), H.free_port()
    local ep <close> = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p1, p2)))
    local plug <close> = vsq_plug({ ("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p2, p1) })
    local frames = {}
    for i = 1, 5 do frames[i] = H.test_frame("piece" .. i, 60 + 300 * i) end
    local bytes = H.stream_encode(frames)
    -- one odd-sized write after the other, with pauses so that reads end mid-frame
    local i, sizes = 1, { 1, 1, 3, 7, 501, 2, 999, 1 }
    local k = 1
    while i <= #bytes do
      local n = sizes[(k - 1) % #sizes + 1]
      plug.stdin:write(bytes:sub(i, i + n - 1))
      i, k = i + n, k + 1
      vsq.sleep(0.002)
    end
    for n = 1, 5 do
      local f = assert(ep:recv(3))
      assert.are.equal(frames[n], f)
    end
  end)

  it("joins two URLs: a ptp:// cable to a vde_switch", function()
    local sw, dir = H.vde_switch()
    local d = tmp.dir("ptp")
    finally(function() sw:close() tmp.remove(dir) tmp.remove(d) end)
    local cable <close> = vsq_plug({ "ptp://" .. d .. "/cable", dir }, { stdin = "null", stdout = "null" })
    local theirs <close> = H.vde_plug(dir)
    assert(H.wait_for_path(d .. "/cable"))
    local ep <close> = assert(fabric.open("ptp://" .. d .. "/cable"))
    assert.are.equal("over-the-cable", H.tag(send_until_read(ep, theirs, "over-the-cable")))
  end)

  it("runs URL = COMMAND as a coprocess", function()
    local sw, dir = H.vde_switch()
    finally(function() sw:close() tmp.remove(dir) end)
    local p1, p2 = H.free_port(), H.free_port()
    local ep <close> = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p1, p2)))
    local plug <close> = vsq_plug({ ("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p2, p1), "=",
      "vde_plug", dir }, { stdin = "null", stdout = "null" })
    local theirs <close> = H.vde_plug(dir)
    assert.are.equal("through-a-command", H.tag(send_until_read(ep, theirs, "through-a-command")))
  end)

  it("exits with status 0 at the end of its input", function()
    local r = hv.run({ script(), "null://" }, { input = H.stream_encode({ H.test_frame("x") }) })
    assert.is_true(r.ok, r.stderr)
  end)

  it("exits with status 0 on SIGTERM and removes its pid file", function()
    local d = tmp.dir("pid")
    finally(function() tmp.remove(d) end)
    local plug = vsq_plug({ "-p", d .. "/plug.pid", "null://", "null://" }, { stdin = "null", stdout = "null" })
    assert(H.wait_for_path(d .. "/plug.pid"))
    local f = assert(io.open(d .. "/plug.pid"))
    assert.are.equal(plug.pid, f:read("n"))
    f:close()
    plug:kill("TERM")
    assert.are.same({ true, "exit", 0 }, { plug:wait(5) })
    plug:close()
    assert.is_nil(io.open(d .. "/plug.pid"))
  end)

  it("runs as a daemon with two URLs and leaves when told", function()
    local d = tmp.dir("daemon")
    finally(function() tmp.remove(d) end)
    local r = hv.run({ script(), "-d", "-p", d .. "/d.pid", "null://", "ptp://" .. d .. "/x" })
    assert.is_true(r.ok, r.stderr)
    local f = assert(io.open(d .. "/d.pid"))
    local pid = f:read("n")
    f:close()
    assert.truthy(io.open("/proc/" .. pid .. "/stat"))
    os.execute("kill " .. pid)
    for _ = 1, 200 do
      if not io.open(d .. "/x") then break end
      vsq.sleep(0.01)
    end
    assert.is_nil(io.open(d .. "/x"))
  end)

  it("fails with status 1 and a message naming the URL it cannot open", function()
    local d = tmp.dir("none")
    finally(function() tmp.remove(d) end)
    local r = hv.run({ script(), d .. "/no-switch" }, { input = "" })
    assert.are.equal(1, r.code)
    assert.matches("no%-switch", r.stderr)
  end)

  it("fails with status 2 on bad options and URLs, naming them", function()
    local r = hv.run({ script(), "--bogus", "null://" }, { input = "" })
    assert.are.equal(2, r.code)
    assert.matches('unknown option "%-%-bogus"', r.stderr)
    r = hv.run({ script(), "vde:///x[prot=3]" }, { input = "" })
    assert.are.equal(2, r.code)
    assert.matches('unknown option "prot"', r.stderr)
    r = hv.run({ script(), "foo://x" }, { input = "" })
    assert.are.equal(2, r.code)
    assert.matches('"foo"', r.stderr)
    r = hv.run({ script(), "-d", "null://" }, { input = "" })
    assert.are.equal(2, r.code)
  end)

  it("prints its usage with --help", function()
    local r = hv.run({ script(), "--help" })
    assert.is_true(r.ok)
    assert.matches("Usage: vsq%-plug", r.stdout)
  end)

  it("works for an unprivileged user", function()
    local bin = hv.unprivileged_copy()
    local input = H.stream_encode({ H.dhcp_discover(H.mac("52:54:00:00:00:01"), 99) })
    -- DHCP through slirp: the offer comes back on stdout
    local p = assert(vsq.process({ "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
      bin .. "/vsq", bin .. "/vsq-plug", "slirp:///v4" }, { stdin = "pipe", stdout = "pipe",
      env = { HOME = "/nonexistent" }, cwd = bin }))
    finally(function() p:close() tmp.remove(bin) end)
    p.stdin:write(input)
    local offer
    for _ = 1, 20 do
      local f = H.read_stream_frame(p.stdout)
      if not f then break end
      local dh = H.parse_dhcp(f)
      if dh and dh.xid == 99 then offer = dh break end
    end
    p.stdin:close()
    assert.truthy(offer)
    assert.are.equal("10.0.2.15", offer.yiaddr)
    assert.are.same({ true, "exit", 0 }, { p:wait(5) })
  end)
end)
