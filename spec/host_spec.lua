-- Kernel-stack hosts: network namespaces (in user namespaces when unprivileged) on the fabric.
local h = require "helpers.vsq"
local tmp = require "helpers.tmp"

local lab_script = [[
local fabric = require "vsq.fabric"
local host = require "vsq.host"
local sw <close> = fabric.switch{}
local a <close> = assert(host.new{name = "a", ip = {"10.9.0.1/24", "fd09::1/64"}, link = sw})
local b <close> = assert(host.new{name = "b", ip = {"10.9.0.2/24", "fd09::2/64"}, link = sw})
print("ping4", a:run({"ping", "-c", "1", "-W", "5", "10.9.0.2"}).ok)
print("ping6", b:run({"ping", "-c", "1", "-W", "5", "fd09::1"}).ok)
local server = b:spawn({"nc", "-l", "-N", "5000"}, {stdout = "pipe"})
local sent
for _ = 1, 50 do -- until the listener is up
  sent = a:run({"nc", "-N", "10.9.0.2", "5000"}, {input = "over tcp\n"})
  if sent.ok then break end
  vsq.sleep(0.05)
end
print("tcp", server.stdout:read("a"))
server:wait()
server:close()
]]

describe("vsq.host", function()
  local fabric = require "vsq.fabric"
  local host = require "vsq.host"

  it("lets two hosts on a vsq switch ping each other over IPv4 and IPv6 and talk TCP", function()
    local r = h.run({ "-e", lab_script })
    assert.is_true(r.ok, r.stderr)
    assert.are.equal("ping4\ttrue\nping6\ttrue\ntcp\tover tcp\n\n", r.stdout)
  end)

  it("works for an unprivileged user, inside user namespaces", function()
    local bin = h.unprivileged_copy()
    local r = h.as_nobody({ bin .. "/vsq", "-e", lab_script }, nil, bin)
    assert.is_true(r.ok, r.stderr)
    assert.are.equal("ping4\ttrue\nping6\ttrue\ntcp\tover tcp\n\n", r.stdout)
    tmp.remove(bin)
  end)

  it("runs programs inside with its own interface, addresses, routes and host name", function()
    local sw <close> = fabric.switch{}
    local a <close> = assert(host.new{ name = "a", ip = "10.9.1.1/24", gw = "10.9.1.254",
      mac = "02:00:00:00:01:01", mtu = 1400, hostname = "alpha", link = sw })
    -- (/sys shows the interfaces of whoever mounted it: ask netlink, through ip)
    local r = a:run("hostname; ip -o link show eth0; ip -4 route show default")
    assert.is_true(r.ok, r.stderr)
    local name, mtu, mac, route = r.stdout:match("^(%S+)\n%d+: eth0: <[^>]*> mtu (%d+) .- link/ether (%S+) .-\n(.-)\n$")
    assert.are.same({ "alpha", "1400", "02:00:00:00:01:01" }, { name, mtu, mac })
    assert.matches("^default via 10%.9%.1%.254 dev eth0", route)
    assert.are.equal("02:00:00:00:01:01", a.mac)
    assert.are.equal("10.9.1.1", a.ip)
    assert.matches('host "a" %(eth0 02:00:00:00:01:01 10.9.1.1/24, linked', tostring(a))
  end)

  it("is a port like any other: frames it sends reach an endpoint on the switch", function()
    local sw <close> = fabric.switch{}
    local a <close> = assert(host.new{ name = "a", ip = "10.9.2.1/24", link = sw })
    local p <close> = a:spawn({ "ping", "-c", "3", "-i", "0.2", "10.9.2.2" }, { stdout = "null", stderr = "null" })
    p:wait()
    local st = a:stats()
    assert.is_true(st.frames_sent >= 1) -- ARP requests for 10.9.2.2, flooded by the switch
  end)

  it("rejects bad options with errors that name them", function()
    assert.has_error(function() host.new{ ipp = "10.0.0.1/24" } end, 'host: unknown option "ipp"')
    assert.has_error(function() host.new{ ip = "10.0.0.1" } end,
      'host: bad address 10.0.0.1 in ip (expected ADDR/PREFIX, e.g. "10.0.0.1/24")')
    assert.has_error(function() host.new{ mac = "ff:00:00:00:00:01" } end,
      'host: bad mac "ff:00:00:00:00:01" (expected a unicast xx:xx:xx:xx:xx:xx)')
    assert.has_error(function() host.new{ gw = "10.0.0" } end,
      'host: bad gw "10.0.0" (expected an IPv4 address)')
    assert.has_error(function() host.new{ mtu = 20 } end, "host: bad mtu 20 (68 to 9216)")
  end)

  it("says why a host cannot be made", function()
    local a, err = host.new{ name = "x", ifname = "a-name-far-too-long-for-linux" }
    assert.is_nil(a)
    assert.are.equal('host "x": bad interface name "a-name-far-too-long-for-linux"', err)
  end)

  it("can be closed twice and refuses use after close", function()
    local a = assert(host.new{ name = "c" })
    a:close()
    a:close()
    assert.has_error(function() a:run("true") end, 'host "c" is closed')
  end)
end)
