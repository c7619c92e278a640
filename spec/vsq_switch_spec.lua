-- spec/vsq_switch_spec.lua: the vsq-switch tool, against Debian's vde_plug.
local h = require "helpers.fabric"
local vsqh = require "helpers.vsq"

local A, B = h.mac(1), h.mac(2)

local function wait_for(path, seconds)
  local deadline = vsq.now() + (seconds or 5)
  while vsq.now() < deadline do
    if os.execute("test -e '" .. path .. "'") then return true end
    vsq.sleep(0.02)
  end
  return false
end

--- vsq-switch with args, as a child; as_nobody runs it (and its files) as user nobody.
local function start(args, as_nobody)
  local argv = { vsqh.bin, vsqh.top .. "/scripts/vsq-switch" }
  local opts = { stdout = "null", stderr = "pipe" }
  if as_nobody then
    local bin = vsqh.unprivileged_copy()
    h.dir_track(bin)
    argv = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
      bin .. "/vsq", bin .. "/vsq-switch" }
    opts.cwd = bin
  end
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return assert(vsq.process(argv, opts))
end

local function stop(p)
  if p:running() then p:kill("TERM") end
  local ok, how, code = p:wait(5)
  return ok, how, code
end

--- Two vde_plugs exchange a broadcast and a unicast frame through the switch at dir.
local function exchange(dir, as_nobody)
  local a, b = h.vde_plug("vde://" .. dir, as_nobody), h.vde_plug("vde://" .. dir, as_nobody)
  local got
  for i = 1, 50 do
    a:send(h.frame(h.BROADCAST, A, "hello" .. i))
    got = b:recv(0.1)
    if got then break end
  end
  b:send(h.frame(A, B, "back", 1000))
  local back = a:recv(3)
  a.close()
  b.close()
  return got and h.payload(got):match("^hello") and back and h.payload(back) == "back"
end

--- Send `input` to the management console at mgmt and read all it says; vsq.exec's table.
local function console(mgmt, input)
  return vsq.exec({ "perl", "-e", [[
use IO::Socket::UNIX;
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or die "connect: $!";
print $s $ARGV[1];
$s->flush; local $/; print <$s>;
]], mgmt, input }, { timeout = 10 })
end

describe("vsq-switch", function()
  after_each(h.cleanup)

  it("lets two vde_plugs talk and removes its sockets and pid file on SIGTERM #peer", function()
    local base = h.dir("tool")
    local dir, pidfile = base .. "/sw", base .. "/pid"
    local p = start { "-s", dir, "-n", "8", "-p", pidfile }
    finally(function() stop(p) p:close() end)
    assert.is_true(wait_for(dir .. "/ctl"))
    assert.is_true(wait_for(pidfile))
    assert.truthy(exchange(dir))
    local ok = stop(p)
    assert.is_true(ok)
    assert.same({}, h.ls(base))
  end)

  it("runs as nobody and serves vde_plugs of that user #peer", function()
    local base = h.dir("nobody")
    os.execute("chmod 0777 " .. base)
    local dir = base .. "/sw"
    local p = start({ "-s", dir, "-m", "0660" }, true)
    finally(function() stop(p) p:close() end)
    assert.is_true(wait_for(dir .. "/ctl"))
    local stat = io.popen("stat -c '%U %a' " .. dir)
    local st = stat:read("a")
    stat:close()
    assert.equal("nobody 2770\n", st)
    assert.truthy(exchange(dir, true))
    stop(p)
    assert.same({}, h.ls(base))
  end)

  it("gives port 0 to vde_plugs of its own user and reserves ports from its console #peer", function()
    local base = h.dir("port0")
    os.execute("chmod 0777 " .. base)
    local dir, mgmt = base .. "/sw", base .. "/mgmt"
    local p = start({ "-s", dir, "-m", "0660", "-M", mgmt }, true)
    local zero, other
    finally(function()
      if zero then zero.close() other.close() end
      stop(p)
      p:close()
    end)
    assert.is_true(wait_for(mgmt))
    -- nobody owns this switch, so nobody's vde_plug may have its management port
    zero, other = h.vde_plug("vde://" .. dir .. "[0]", true), h.vde_plug("vde://" .. dir, true)
    assert.truthy(h.first_heard(other, zero, "zero"))
    local r = console(mgmt, "sw:port(3, {user = 'root'}).user\n=sw:port(0).clients[1].uid\nlogout()\n")
    assert.is_true(r.ok, r.stderr)
    assert.matches("vsq%$ 0\nvsq%$ 65534\n", r.stdout)
    local refused = h.vde_plug("vde://" .. dir .. "[3]", true)
    assert.equal("exit", select(2, refused.proc:wait(5)))
    refused.close()
    stop(p)
    local err = p.stderr:read("a")
    assert.matches("(uid 65534) may not use port 3: it is reserved for user root", err, 1, true)
  end)

  it("hub mode (-x) repeats unicast frames to every port #peer", function()
    local base = h.dir("hub")
    local dir = base .. "/sw"
    local p = start { "-x", "-s", dir }
    local c
    finally(function()
      if c then c.close() end
      stop(p)
      p:close()
    end)
    assert.is_true(wait_for(dir .. "/ctl"))
    c = h.vde_plug("vde://" .. dir)
    assert.truthy(exchange(dir))
    -- c heard the unicast reply too
    local heard = false
    for _ = 1, 60 do
      local f = c:recv(0.2)
      if not f then break end
      if h.payload(f) == "back" then heard = true break end
    end
    assert.is_true(heard)
  end)

  it("answers Lua on its management console (-M) and shuts down from it", function()
    local base = h.dir("mgmt")
    local dir, mgmt = base .. "/sw", base .. "/mgmt"
    local p = start { "-s", dir, "-M", mgmt }
    finally(function() stop(p) p:close() end)
    assert.is_true(wait_for(mgmt))
    local r = console(mgmt, "sw:port(3, {vlan = 7}).vlan\n=sw:stats().clients\nnosuch()\nshutdown()\n")
    assert.is_true(r.ok, r.stderr)
    assert.matches("vsq%$ 7\n", r.stdout)
    assert.matches("vsq%$ 0\n", r.stdout)
    assert.matches("error: .*nosuch", r.stdout)
    local ok = p:wait(5)
    assert.is_true(ok)
    assert.same({}, h.ls(base))
  end)

  it("daemonizes (-d) and writes its pid file once it serves #peer", function()
    local base = h.dir("daemon")
    local dir, pidfile = base .. "/sw", base .. "/pid"
    local r = vsq.exec({ vsqh.bin, vsqh.top .. "/scripts/vsq-switch", "-d", "-s", dir, "-p", pidfile },
      { timeout = 15 })
    assert.is_true(r.ok, r.stderr)
    local f = assert(io.open(pidfile))
    local pid = f:read("n")
    f:close()
    finally(function() os.execute("kill " .. pid .. " 2>/dev/null") end)
    assert.truthy(exchange(dir))
    os.execute("kill " .. pid)
    local deadline = vsq.now() + 5
    while #h.ls(base) > 0 and vsq.now() < deadline do vsq.sleep(0.05) end
    assert.same({}, h.ls(base))
  end)

  it("explains bad command lines", function()
    local r = vsq.exec({ vsqh.bin, vsqh.top .. "/scripts/vsq-switch", "--bogus" })
    assert.is_false(r.ok)
    assert.matches('unknown option "%-%-bogus"', r.stderr)
    r = vsq.exec({ vsqh.bin, vsqh.top .. "/scripts/vsq-switch", "-s", "/nonexistent/x/y" })
    assert.is_false(r.ok)
    assert.matches("cannot create directory /nonexistent/x/y", r.stderr, 1, true)
    r = vsq.exec({ vsqh.bin, vsqh.top .. "/scripts/vsq-switch", "--help" })
    assert.is_true(r.ok)
    assert.matches("%-s, %-%-sock DIR", r.stdout)
  end)
end)
