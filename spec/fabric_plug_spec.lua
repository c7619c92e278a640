-- Endpoints by URL: fabric.open against Debian's VDE programs (vde_switch, vde_plug and its
-- ptp/udp/cmd plugins), the stream formats, QEMU's socket framing, slirp and tap.
local fabric = require "vsq.fabric"
local H = require "helpers.plug"
local tmp = require "helpers.tmp"
local hv = require "helpers.vsq"

local ETIMEDOUT, ECONNREFUSED = 110, 111

-- Receive one frame from a vde_plug child's stdout (stream format).
local function plug_read(p)
  return H.read_stream_frame(p.stdout)
end

local function plug_write(p, frame)
  p.stdin:write(string.pack(">s2", frame))
end

-- Send test frames from an endpoint until a peer process sees one (a peer may still be
-- connecting); returns the frame the peer read.
local function send_until_read(ep, p, tag)
  local got
  local reader = vsq.spawn(function() got = plug_read(p) end)
  for _ = 1, 200 do
    ep:send(H.test_frame(tag))
    vsq.sleep(0.01)
    if got then break end
  end
  reader:cancel()
  return got
end

-- Write a test frame into a peer process until the endpoint receives one.
local function write_until_recv(p, ep, tag)
  for _ = 1, 200 do
    plug_write(p, H.test_frame(tag, 80, H.mac("02:00:00:00:00:99")))
    local f = ep:recv(0.01)
    if f then return f end
  end
end

describe("fabric.open", function()
  it("rejects an unknown scheme, naming it", function()
    assert.has_error(function() fabric.open("foo://x") end,
      'fabric.open: unknown scheme "foo" in "foo://x"')
  end)

  it("rejects an unknown option, naming it", function()
    local ok, err = pcall(fabric.open, "vde:///x[prot=3]")
    assert.is_false(ok)
    assert.matches('unknown option "prot"', err)
  end)

  it("rejects unknown keys of its options table", function()
    assert.has_error(function() fabric.open("null://", { descrption = "x" }) end)
  end)

  it("lists the schemes it knows", function()
    for _, s in ipairs({ "vde", "ptp", "udp", "tap", "cmd", "stream", "qemu-stream",
      "qemu-dgram", "slirp", "null" }) do
      assert.truthy(table.concat(fabric.schemes, " "):find(s, 1, true), s)
    end
  end)

  it("returns nil, a message naming the switch, and errno when no switch is there", function()
    local d = tmp.dir("noswitch")
    finally(function() tmp.remove(d) end)
    local ep, err, errno = fabric.open(d .. "/missing")
    assert.is_nil(ep)
    assert.matches("missing", err)
    assert.are.equal(2, errno)
  end)

  it("opens the URL written on the first line of a regular file", function()
    local d = tmp.dir("indirect")
    finally(function() tmp.remove(d) end)
    tmp.write(d .. "/net", "null://\nignored\n")
    local ep <close> = assert(fabric.open(d .. "/net"))
    assert.are.equal("null", ep:stats().scheme)
  end)

  it("resolves the empty URL through $HOME/.vdeplug/default, as libvdeplug", function()
    local sw, dir = H.vde_switch()
    local home = tmp.dir("home")
    finally(function() sw:close() tmp.remove(dir) tmp.remove(home) end)
    assert(os.execute(("mkdir %s/.vdeplug && ln -s %s %s/.vdeplug/default"):format(
      tmp.quote(home), tmp.quote(dir), tmp.quote(home))))
    local r = hv.run({ "-e", [[
      local ep = assert(require("vsq.fabric").open(""))
      print(ep:stats().scheme, ep:stats().detail)
      ep:close()
    ]] }, { env = { HOME = home } })
    assert.matches("^vde\tport %d+ of " .. dir:gsub("%p", "%%%0"), r.stdout, 1)
  end)

  it("refuses seqpacket:// on a descriptor that is not a SOCK_SEQPACKET socket", function()
    local p <close> = assert(vsq.process({ "cat" }, { stdin = "pipe", stdout = "pipe" }))
    local ok, err = pcall(fabric.open, "seqpacket://" .. p.stdout:fd())
    assert.is_false(ok)
    assert.matches("Socket operation on non%-socket", err)
  end)

  it("discards everything on null://", function()
    local ep <close> = assert(fabric.open("null://"))
    assert.is_true(ep:send(H.test_frame("x")))
    assert.are.same({ nil, ETIMEDOUT }, { select(1, ep:recv(0.01)), select(3, ep:recv(0.01)) })
    assert.are.equal("up", ep:state())
  end)
end)

describe("vde:// #peer", function()
  it("exchanges frames with vde_plug through Debian's vde_switch, a bare path meaning vde://",
    function()
      local sw, dir = H.vde_switch()
      finally(function() sw:close() tmp.remove(dir) end)
      local peer <close> = H.vde_plug("vde://" .. dir)
      local ep <close> = assert(fabric.open(dir, { descr = "spec" }))
      assert.are.equal("up", ep:state())
      local got = send_until_read(ep, peer, "to-vde_plug")
      assert.are.equal("to-vde_plug", H.tag(got))
      local f = write_until_recv(peer, ep, "from-vde_plug")
      assert.are.equal("from-vde_plug", H.tag(f))
      assert.are.equal(80, #f)
    end)

  it("asks the switch for the port written in the URL", function()
    local sw, dir = H.vde_switch()
    finally(function() sw:close() tmp.remove(dir) end)
    local ep <close> = assert(fabric.open("vde://" .. dir .. "[5]"))
    assert.matches("port 5 of", ep:stats().detail)
    local ep2 <close> = assert(fabric.open("vde://" .. dir .. "[port=7]"))
    assert.matches("port 7 of", ep2:stats().detail)
  end)

  it("removes its socket files on close and leaves the switch's directory clean", function()
    local sw, dir = H.vde_switch()
    finally(function() sw:close() tmp.remove(dir) end)
    local ep = assert(fabric.open("vde://" .. dir))
    ep:close()
    ep:close() -- idempotent
    assert.matches("closed", tostring(ep))
    vsq.sleep(0.05) -- the switch removes its side when it sees the hangup
    local p = io.popen("ls -A " .. tmp.quote(dir))
    local names = p:read("a")
    p:close()
    assert.are.equal("ctl\n", names)
  end)

  it("goes down when the switch goes away, and says so", function()
    local sw, dir = H.vde_switch()
    finally(function() tmp.remove(dir) end)
    local ep <close> = assert(fabric.open("vde://" .. dir))
    sw:kill("TERM")
    sw:wait()
    sw:close()
    local reason = ep:wait("down", 5)
    assert.is_string(reason)
    assert.are.equal("down", ep:state())
    local frame, err = ep:recv(1)
    assert.is_nil(frame)
    assert.matches("endpoint vde://", err)
  end)
end)

describe("ptp:// #peer", function()
  it("interoperates with libvdeplug's ptp plugin (Debian's datagram variant), either side first",
    function()
      local d = tmp.dir("ptp")
      finally(function() tmp.remove(d) end)
      -- vsq first
      do
        local ep <close> = assert(fabric.open("ptp://" .. d .. "/a"))
        local peer <close> = H.vde_plug("ptp://" .. d .. "/a")
        assert.are.equal("vsq-first", H.tag(send_until_read(ep, peer, "vsq-first")))
        assert.are.equal("plug-second", H.tag(write_until_recv(peer, ep, "plug-second")))
      end
      -- vde_plug first
      do
        local peer <close> = H.vde_plug("ptp://" .. d .. "/b")
        assert(H.wait_for_path(d .. "/b"))
        local ep <close> = assert(fabric.open("ptp://" .. d .. "/b"))
        assert.matches("bound .*/b%+", ep:stats().detail)
        assert.are.equal("vsq-second", H.tag(send_until_read(ep, peer, "vsq-second")))
        assert.are.equal("plug-first", H.tag(write_until_recv(peer, ep, "plug-first")))
      end
    end)

  it("joins two vsq endpoints with the seqpacket variant and removes its socket file", function()
    local d = tmp.dir("ptpseq")
    finally(function() tmp.remove(d) end)
    local a = assert(fabric.open("ptp://" .. d .. "/s[seqpacket]"))
    assert.are.equal("waiting", a:state())
    local b = assert(fabric.open("ptp://" .. d .. "/s[seqpacket]"))
    assert.is_true(b:wait("up", 5))
    assert.is_true(a:wait("up", 5))
    b:send(H.test_frame("seq"))
    assert.are.equal("seq", H.tag(assert(a:recv(2))))
    b:close()
    a:close()
    assert.is_nil(io.open(d .. "/s"))
  end)
end)

describe("udp:// #peer", function()
  it("interoperates with libvdeplug's udp plugin", function()
    local p1, p2 = H.free_port(), H.free_port()
    local ep <close> = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p1, p2)))
    local peer <close> = H.vde_plug(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p2, p1))
    assert.are.equal("over-udp", H.tag(send_until_read(ep, peer, "over-udp")))
    assert.are.equal("back", H.tag(write_until_recv(peer, ep, "back")))
  end)

  it("rejects a URL without a remote end", function()
    assert.has_error(function() fabric.open("udp://5000") end)
  end)
end)

describe("cmd:// #peer", function()
  it("runs vde_plug as a coprocess speaking the stream format", function()
    local sw, dir = H.vde_switch()
    finally(function() sw:close() tmp.remove(dir) end)
    local peer <close> = H.vde_plug(dir)
    local ep <close> = assert(fabric.open("cmd://vde_plug " .. dir))
    assert.matches("vde_plug, pid %d+", ep:stats().detail)
    assert.are.equal("via-cmd", H.tag(send_until_read(ep, peer, "via-cmd")))
    assert.are.equal("to-cmd", H.tag(write_until_recv(peer, ep, "to-cmd")))
  end)

  it("goes down when the command exits, and reaps it", function()
    local ep <close> = assert(fabric.open("cmd://sh -c 'exit 3'"))
    assert.is_string(ep:wait("down", 5))
    vsq.sleep(0.05)
    assert.matches("exited with status 3", ep:stats().detail)
  end)

  it("leaves no child behind when closed", function()
    local ep = assert(fabric.open("cmd://cat"))
    local pid = tonumber(ep:stats().detail:match("pid (%d+)"))
    ep:close()
    assert.is_nil(io.open("/proc/" .. pid .. "/stat"))
  end)

  it("says why a command cannot run", function()
    local ep, err, errno = fabric.open("cmd://no-such-program-here --x")
    assert.is_nil(ep)
    assert.matches("cannot run no%-such%-program%-here: No such file or directory", err)
    assert.are.equal(2, errno)
  end)
end)

describe("stream://", function()
  -- Two cat children: bytes written to `input` reach the endpoint, what the endpoint sends comes
  -- out of `output`.
  local function stream_endpoint(format)
    local input = assert(vsq.process({ "cat" }, { stdin = "pipe", stdout = "pipe" }))
    local output = assert(vsq.process({ "cat" }, { stdin = "pipe", stdout = "pipe" }))
    local url = ("stream://%d:%d%s"):format(input.stdout:fd(), output.stdin:fd(),
      format and ("[format=" .. format .. "]") or "")
    local ep = assert(fabric.open(url))
    return ep, input, output
  end

  it("reassembles frames split at any byte, even inside the length prefix", function()
    local ep, input, output = stream_endpoint()
    finally(function() ep:close() input:close() output:close() end)
    local frames = { H.test_frame("one", 60), H.test_frame("two", 1514), H.test_frame("three", 61) }
    local bytes = H.stream_encode(frames)
    -- one byte at a time for the first frame and a half (a read ends after 1 prefix byte)
    for i = 1, 70 do input.stdin:write(bytes:sub(i, i)) vsq.sleep(0.001) end
    input.stdin:write(bytes:sub(71))
    for _, want in ipairs(frames) do
      local got = assert(ep:recv(2))
      assert.are.equal(want, got)
    end
    assert.are.equal(0, ep:stats().rx_malformed)
  end)

  it("drops malformed input, counts it, and stays in step", function()
    local ep, input, output = stream_endpoint()
    finally(function() ep:close() input:close() output:close() end)
    input.stdin:write(string.pack(">I2", 0)                 -- a zero length
      .. string.pack(">s2", "runt")                          -- shorter than an ethernet header
      .. string.pack(">I2", 9300) .. ("x"):rep(9300)         -- longer than any frame: skipped
      .. string.pack(">s2", H.test_frame("good")))
    assert.are.equal("good", H.tag(assert(ep:recv(2))))
    assert.are.equal(3, ep:stats().rx_malformed)
  end)

  it("writes what it is given in the stream format", function()
    local ep, input, output = stream_endpoint()
    finally(function() ep:close() input:close() output:close() end)
    ep:send(H.test_frame("out", 100))
    local f = H.read_stream_frame(output.stdout)
    assert.are.equal("out", H.tag(f))
    assert.are.equal(100, #f)
  end)

  it("speaks QEMU's 4-byte prefix with format=qemu", function()
    local ep, input, output = stream_endpoint("qemu")
    finally(function() ep:close() input:close() output:close() end)
    input.stdin:write(string.pack(">s4", H.test_frame("q4")))
    assert.are.equal("q4", H.tag(assert(ep:recv(2))))
    ep:send(H.test_frame("q4out", 70))
    assert.are.equal("q4out", H.tag(H.read_stream_frame(output.stdout, 4)))
  end)

  it("goes down at the end of its input", function()
    local ep, input, output = stream_endpoint()
    finally(function() ep:close() input:close() output:close() end)
    input.stdin:close()
    assert.is_string(ep:wait("down", 5))
  end)
end)

describe("qemu-stream:// and qemu-dgram://", function()
  it("frames a unix stream with 4-byte big-endian lengths, as QEMU's -netdev stream (socat peer)",
    function()
      local d = tmp.dir("qemu")
      finally(function() tmp.remove(d) end)
      local ep <close> = assert(fabric.open("qemu-stream://" .. d .. "/q.sock[server]"))
      assert.are.equal("waiting", ep:state())
      local peer <close> = assert(vsq.process({ "socat", "-", "UNIX-CONNECT:" .. d .. "/q.sock" },
        { stdin = "pipe", stdout = "pipe" }))
      assert.is_true(ep:wait("up", 5))
      peer.stdin:write(string.pack(">s4", H.test_frame("from-qemu", 90)))
      local f = assert(ep:recv(2))
      assert.are.equal("from-qemu", H.tag(f))
      ep:send(H.test_frame("to-qemu", 75))
      local header = peer.stdout:read(4)
      assert.are.equal(75, string.unpack(">I4", header))
      assert.are.equal("to-qemu", H.tag(peer.stdout:read(75)))
      peer.stdin:close()
      -- the server waits for the next client
      vsq.sleep(0.1)
      assert.are.equal("waiting", ep:state())
    end)

  it("connects as a client over TCP", function()
    local port = H.free_port()
    local server <close> = assert(fabric.open(("qemu-stream://127.0.0.1:%d[server]"):format(port)))
    local client <close> = assert(fabric.open(("qemu-stream://tcp:127.0.0.1:%d"):format(port)))
    assert.is_true(client:wait("up", 5))
    assert.is_true(server:wait("up", 5))
    client:send(H.test_frame("tcp"))
    assert.are.equal("tcp", H.tag(assert(server:recv(2))))
  end)

  it("fails to connect with a message naming the address", function()
    local d = tmp.dir("qemu")
    finally(function() tmp.remove(d) end)
    local ep, err = fabric.open("qemu-stream://" .. d .. "/nobody")
    assert.is_nil(ep)
    assert.matches("cannot connect to .*nobody", err)
  end)

  it("sends raw frames as datagrams, as QEMU's -netdev dgram (vde_plug udp peer)", function()
    local p1, p2 = H.free_port(), H.free_port()
    local ep <close> = assert(fabric.open(("qemu-dgram://127.0.0.1:%d->127.0.0.1:%d"):format(p1, p2)))
    local peer <close> = H.vde_plug(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p2, p1))
    assert.are.equal("dgram", H.tag(send_until_read(ep, peer, "dgram")))
    assert.are.equal("dgram-back", H.tag(write_until_recv(peer, ep, "dgram-back")))
  end)

  it("exchanges datagrams over unix sockets and removes its socket file", function()
    local d = tmp.dir("qdg")
    finally(function() tmp.remove(d) end)
    local a = assert(fabric.open(("qemu-dgram://%s/a->%s/b"):format(d, d)))
    local b = assert(fabric.open(("qemu-dgram://%s/b->%s/a"):format(d, d)))
    a:send(H.test_frame("unix-dgram"))
    assert.are.equal("unix-dgram", H.tag(assert(b:recv(2))))
    a:close()
    b:close()
    assert.is_nil(io.open(d .. "/a"))
    assert.is_nil(io.open(d .. "/b"))
  end)
end)

describe("QEMU guests #peer #slow", function()
  local Q = require "helpers.qemu"
  local kernel, initrd

  -- Boot the test guest with its NIC on `netdev` (QEMU's -netdev argument) instead of vde.
  local function start_guest(netdev, env)
    if not kernel then kernel, initrd = Q.guest_files() end
    local vde_argv = Q.argv
    Q.argv = function(opts)
      local argv = vde_argv(opts)
      for i, a in ipairs(argv) do
        if a == "-netdev" then argv[i + 1] = netdev end
      end
      return argv
    end
    local ok, guest = pcall(Q.start, { kernel = kernel, initrd = initrd, sock = "", env = env })
    Q.argv = vde_argv
    assert(ok, guest)
    return guest
  end

  -- the guest leases an address from slirp:// through `url` and pings the gateway
  local function dhcp_and_ping(url, netdev)
    local nat <close> = assert(fabric.open("slirp:///v4"))
    local nic <close> = assert(fabric.open(url))
    local link <close> = fabric.link(nat, nic)
    local guest <close> = start_guest(netdev, { vsq_dhcp = 1, vsq_ping = "10.0.2.2" })
    local report = guest:finish()
    local console = guest:output()
    assert.are.same({}, report.errors, console)
    assert.are.equal("10.0.2.15/24", report.lease, console)
    assert.are.same({ target = "10.0.2.2", received = 3, count = 3 }, report.ping, console)
  end

  it("talk to qemu-stream:// through -netdev stream (4-byte lengths on a unix socket)", function()
    local d = tmp.dir("qs")
    finally(function() tmp.remove(d) end)
    dhcp_and_ping("qemu-stream://" .. d .. "/nic.sock[server]",
      "stream,id=n0,server=off,addr.type=unix,addr.path=" .. d .. "/nic.sock")
  end)

  it("talk to qemu-dgram:// through -netdev dgram (frames as unix datagrams)", function()
    local d = tmp.dir("qd")
    finally(function() tmp.remove(d) end)
    dhcp_and_ping(("qemu-dgram://%s/vsq.sock->%s/qemu.sock"):format(d, d),
      ("dgram,id=n0,local.type=unix,local.path=%s/qemu.sock,remote.type=unix,remote.path=%s/vsq.sock")
        :format(d, d))
  end)
end)

describe("slirp://", function()
  it("gives a vsq endpoint an address by DHCP", function()
    local ep <close> = assert(fabric.open("slirp://"))
    local mac = H.mac("52:54:00:12:34:56")
    ep:send(H.dhcp_discover(mac, 0x5eed))
    local f = assert(H.recv_until(ep, function(fr)
      local d = H.parse_dhcp(fr)
      return d and d.xid == 0x5eed
    end, 5))
    local offer = H.parse_dhcp(f)
    assert.are.equal(2, offer.type) -- DHCPOFFER
    assert.are.equal("10.0.2.15", offer.yiaddr)
    assert.are.equal("10.0.2.2", H.ip_text(offer.options[3])) -- router
    assert.are.equal("10.0.2.3", H.ip_text(offer.options[6])) -- DNS
  end)

  it("follows addr= for the network it serves", function()
    local ep <close> = assert(fabric.open("slirp:///addr=10.7.0.2/16/v4"))
    ep:send(H.dhcp_discover(H.mac("52:54:00:00:00:07"), 7))
    local f = assert(H.recv_until(ep, function(fr) return H.parse_dhcp(fr) ~= nil end, 5))
    assert.are.equal("10.7.0.15", H.parse_dhcp(f).yiaddr)
  end)

  it("forwards a host TCP port to the LAN: a connection to it reaches the guest", function()
    local port = H.free_port()
    local ep <close> = assert(fabric.open(("slirp:///tcpfwd=127.0.0.1:%d:10.0.2.15:8080"):format(port)))
    local guest = H.mac("52:54:00:12:34:56")
    -- announce the guest (gratuitous ARP) so that slirp knows where 10.0.2.15 is
    local arp = string.pack(">I2I2BBI2", 1, 0x0800, 6, 4, 2) .. guest .. H.ip_bytes("10.0.2.15")
      .. guest .. H.ip_bytes("10.0.2.15")
    ep:send(H.ethernet(H.BROADCAST, guest, 0x0806, arp))
    local client <close> = assert(vsq.process({ "bash", "-c",
      ("exec 3<>/dev/tcp/127.0.0.1/%d; sleep 5"):format(port) }, { stderr = "null" }))
    local syn = H.recv_until(ep, function(fr)
      if string.unpack(">I2", fr, 13) ~= 0x0800 or fr:byte(24) ~= 6 then return false end
      local ihl = (fr:byte(15) & 15) * 4
      return string.unpack(">I2", fr, 15 + ihl + 2) == 8080 and fr:byte(15 + ihl + 13) & 2 == 2
    end, 5)
    assert.truthy(syn, "no SYN for 10.0.2.15:8080 came out of slirp")
    assert.are.equal("10.0.2.15", H.ip_text(syn:sub(31, 34)))
  end)

  it("refuses a forward it cannot parse, naming it", function()
    local ok, err = pcall(fabric.open, "slirp:///tcpfwd=80:10.0.2.15")
    assert.is_false(ok)
    assert.matches("tcpfwd", err)
  end)
end)

describe("tap://", function()
  it("names CAP_NET_ADMIN when it may not create a tap (unprivileged)", function()
    local bin = hv.unprivileged_copy()
    finally(function() tmp.remove(bin) end)
    local r = hv.as_nobody({ bin .. "/vsq", "-e",
      "local f = require 'vsq.fabric'; print(select(2, f.open('tap://vsqspec0')))" }, nil, bin)
    assert.matches("CAP_NET_ADMIN", r.stdout)
  end)

  it("exchanges frames with the kernel in a network namespace the spec made #root", function()
    local ns = "vsq-spec-tap" .. math.random(100000)
    assert(os.execute("ip netns add " .. ns))
    finally(function() os.execute("ip netns del " .. ns) end)
    local ep <close> = assert(fabric.open(("cmd://ip netns exec %s %s %s/scripts/vsq-plug tap://vsqtap0")
      :format(ns, hv.bin, hv.top)))
    local deadline = vsq.now() + 5
    while not os.execute(("ip -n %s link show vsqtap0 >/dev/null 2>&1"):format(ns)) do
      assert(vsq.now() < deadline, "the tap did not appear")
      vsq.sleep(0.02)
    end
    assert(os.execute(("ip -n %s addr add 10.9.0.1/24 dev vsqtap0 && ip -n %s link set vsqtap0 up")
      :format(ns, ns)))
    -- ask the kernel behind the tap for 10.9.0.1's MAC
    local me = H.mac("02:00:00:00:aa:01")
    local arp = string.pack(">I2I2BBI2", 1, 0x0800, 6, 4, 1) .. me .. H.ip_bytes("10.9.0.2")
      .. ("\0"):rep(6) .. H.ip_bytes("10.9.0.1")
    local reply
    for _ = 1, 50 do
      ep:send(H.ethernet(H.BROADCAST, me, 0x0806, arp))
      reply = H.recv_until(ep, function(fr)
        return string.unpack(">I2", fr, 13) == 0x0806 and string.unpack(">I2", fr, 21) == 2
      end, 0.1)
      if reply then break end
    end
    assert.truthy(reply, "no ARP reply from the kernel")
    assert.are.equal("10.9.0.1", H.ip_text(reply:sub(29, 32)))
  end)

  it("lets a host port forwarded by slirp reach a listener behind a tap #root #slow", function()
    local ns = "vsq-spec-fwd" .. math.random(100000)
    assert(os.execute("ip netns add " .. ns))
    finally(function() os.execute("ip netns del " .. ns) end)
    local port = H.free_port()
    local nat <close> = assert(fabric.open(("slirp:///v4/tcpfwd=127.0.0.1:%d:10.0.2.15:5201"):format(port)))
    local lan <close> = assert(fabric.open(("cmd://ip netns exec %s %s %s/scripts/vsq-plug tap://vsqtap1")
      :format(ns, hv.bin, hv.top)))
    local link <close> = fabric.link(nat, lan)
    local deadline = vsq.now() + 5
    while not os.execute(("ip -n %s link show vsqtap1 >/dev/null 2>&1"):format(ns)) do
      assert(vsq.now() < deadline, "the tap did not appear")
      vsq.sleep(0.02)
    end
    assert(os.execute(("ip -n %s addr add 10.0.2.15/24 dev vsqtap1 && ip -n %s link set vsqtap1 up"
      .. " && ip -n %s route add default via 10.0.2.2"):format(ns, ns, ns)))
    local server <close> = assert(vsq.process({ "ip", "netns", "exec", ns, "iperf3", "-s", "-1" },
      { stdout = "null", stderr = "null" }))
    vsq.sleep(0.3)
    local r = vsq.exec({ "iperf3", "-c", "127.0.0.1", "-p", tostring(port), "-t", "1", "-J" },
      { timeout = 20 })
    assert.is_true(r.ok, r.stdout .. (r.stderr or ""))
    assert.matches('"bits_per_second"', r.stdout)
  end)
end)

describe("endpoints", function()
  it("keep what arrives until recv, and drop and count what does not fit", function()
    local p1, p2 = H.free_port(), H.free_port()
    local a <close> = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p1, p2), { queue = 2 }))
    local b <close> = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p2, p1)))
    for i = 1, 5 do b:send(H.test_frame("q" .. i)) end
    vsq.sleep(0.1)
    local s = a:stats()
    assert.are.equal(2, s.queued)
    assert.are.equal(3, s.queue_dropped)
    assert.are.equal("q1", H.tag(a:recv()))
    assert.are.equal("q2", H.tag(a:recv()))
    local f, err, errno = a:recv(0.01)
    assert.is_nil(f)
    assert.matches("no frame", err)
    assert.are.equal(ETIMEDOUT, errno)
  end)

  it("refuse frames that are not ethernet frames", function()
    local ep <close> = assert(fabric.open("null://"))
    assert.has_error(function() ep:send("short") end)
    assert.has_error(function() ep:send(("x"):rep(9235)) end)
  end)

  it("hand their port to fabric.link, which then carries their frames", function()
    local p1, p2, p3, p4 = H.free_port(), H.free_port(), H.free_port(), H.free_port()
    local a <close> = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p1, p2)))
    local b <close> = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p2, p1)))
    local c <close> = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p3, p4)))
    local d <close> = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p4, p3)))
    local link <close> = fabric.link(b, c) -- a ~ b == c ~ d
    assert.has_error(function() b:recv(0) end)
    assert.is_true(b:stats().linked)
    a:send(H.test_frame("across"))
    assert.are.equal("across", H.tag(assert(d:recv(2))))
    assert.are.equal(1, b:stats().rx_frames)
    assert.are.equal(1, c:stats().tx_frames)
  end)

  it("show their state when printed", function()
    local ep = assert(fabric.open("null://"))
    assert.matches("^endpoint null:// %(up; discarding", tostring(ep))
    ep:close()
    assert.are.equal("endpoint null:// (closed)", tostring(ep))
    assert.has_error(function() ep:send(H.test_frame("x")) end, "endpoint null:// is closed")
  end)

  it("work for an unprivileged user: vde_switch, vde://, ptp://, udp://, cmd:// and slirp:// as nobody",
    function()
      local bin = hv.unprivileged_copy()
      local work = tmp.dir("nobody")
      finally(function() tmp.remove(bin) tmp.remove(work) end)
      os.execute("chown nobody " .. tmp.quote(work))
      local script = tmp.write(bin .. "/plugs.lua", [[
        local fabric = require "vsq.fabric"
        local dir = ...
        local sw = assert(vsq.process({ "vde_switch", "-s", dir .. "/sw" },
          { stdin = "pipe", stdout = "null", stderr = "null" }))
        for _ = 1, 500 do
          if os.execute("test -S " .. dir .. "/sw/ctl") then break end
          vsq.sleep(0.01)
        end
        local frame = ("\255"):rep(6) .. "\2\0\0\0\0\1\136\181" .. ("n"):rep(50)
        local function pair(u1, u2, name)
          local a = assert(fabric.open(u1))
          local b = assert(fabric.open(u2))
          local got
          for _ = 1, 100 do
            a:send(frame)
            got = b:recv(0.02)
            if got then break end
          end
          print(name, got == frame)
          a:close() b:close()
        end
        pair("vde://" .. dir .. "/sw", "vde://" .. dir .. "/sw", "vde")
        pair("ptp://" .. dir .. "/p", "ptp://" .. dir .. "/p", "ptp")
        pair("udp://127.0.0.1:47311->127.0.0.1:47312", "udp://127.0.0.1:47312->127.0.0.1:47311", "udp")
        local echo = assert(fabric.open("cmd://cat"))
        echo:send(frame)
        print("cmd", echo:recv(2) == frame)
        echo:close()
        local nat = assert(fabric.open("slirp://"))
        nat:send(DISCOVER)
        local offer
        for _ = 1, 100 do
          local f = nat:recv(0.05)
          if f and #f > 300 and f:find("\99\130\83\99", 1, true) then offer = f break end
        end
        print("slirp", offer ~= nil)
        nat:close()
        sw:close()
      ]], "0644")
      local discover = H.dhcp_discover(H.mac("52:54:00:00:00:42"), 42)
      local lit = discover:gsub(".", function(c) return ("\\%d"):format(c:byte()) end)
      tmp.write(script, ('local DISCOVER = "%s"\n'):format(lit) .. io.open(script):read("a"), "0644")
      local r = hv.as_nobody({ bin .. "/vsq", script, work }, nil, bin)
      assert.are.equal("vde\ttrue\nptp\ttrue\nudp\ttrue\ncmd\ttrue\nslirp\ttrue\n", r.stdout,
        r.stderr)
    end)
end)
