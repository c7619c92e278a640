-- spec/fabric_switch_spec.lua: the switch, the hub and the VDE server of vsq.fabric, against
-- vsq's own VDE clients and Debian's vde_plug.
local fabric = require "vsq.fabric"
local h = require "helpers.fabric"
local tmp = require "helpers.tmp"

local A, B, C = h.mac(1), h.mac(2), h.mac(3)

describe("switch", function()
  after_each(h.cleanup)

  it("passes frames between two vde_plug clients (Debian vde2) #peer", function()
    local sw <close>, dir = h.switch { name = "pair" }
    local a, b = h.vde_plug("vde://" .. dir), h.vde_plug("vde://" .. dir)
    finally(function() a.close() b.close() end)
    -- vde_plug connects in the background: retry the first frame until it crosses
    local got
    for i = 1, 50 do
      a:send(h.frame(h.BROADCAST, A, "hello" .. i))
      got = b:recv(0.1)
      if got then break end
    end
    assert.truthy(got)
    assert.equal(60, #got) -- padded to the ethernet minimum
    b:send(h.frame(A, B, "reply", 1500))
    local back = a:recv(3)
    assert.equal("reply", h.payload(back))
    assert.equal(1500, #back)
    local st = sw:stats()
    assert.equal(2, st.clients)
    assert.is_true(st.unicast >= 1)
  end)

  it("learns where a MAC is and sends unicast frames only there", function()
    local sw <close>, dir = h.switch()
    local a <close> = h.client(dir)
    local b <close> = h.client(dir)
    local c <close> = h.client(dir)
    a:send(h.frame(h.BROADCAST, A, "who"))
    assert.truthy(h.expect(b, "who"))
    assert.truthy(h.expect(c, "who"))
    b:send(h.frame(A, B, "to-a"))
    assert.truthy(h.expect(a, "to-a"))
    assert.is_true(h.silent(c, "to-a"))
    local ports = {}
    for _, m in ipairs(sw:macs()) do ports[m.mac] = m.port end
    assert.truthy(ports["02:00:00:00:00:01"])
    assert.truthy(ports["02:00:00:00:00:02"])
  end)

  it("delivers a burst from vde_plug whole and in order, and a lone frame after it at once #peer", function()
    -- under sustained load the switch lets frames gather before it reads them (busy mode);
    -- nothing may be lost or reordered, and when the load stops it must not wait for more
    local sw <close>, dir = h.switch()
    local a, b = h.vde_plug("vde://" .. dir), h.vde_plug("vde://" .. dir)
    finally(function() a.close() b.close() end)
    assert.truthy(h.first_heard(b, a, "hello"))
    local n, frames = 5000, {}
    for i = 1, n do frames[i] = string.pack(">s2", h.frame(B, A, "n" .. i)) end
    local writer = vsq.spawn(function() return a.proc.stdin:write(table.concat(frames)) end)
    for i = 1, n do
      local f = b:recv(5)
      assert.are.equal("n" .. i, f and h.payload(f))
    end
    assert.truthy(writer:join(5))
    a:send(h.frame(B, A, "last"))
    local f = b:recv(5)
    assert.are.equal("last", f and h.payload(f))
    assert.are.equal(0, sw:stats().queue_drops)
  end)

  it("keeps VLANs apart for libvdeplug clients that ask for ports #peer", function()
    local sw <close>, dir = h.switch { vlans = { [10] = { untagged = { 5, 6 } }, [20] = { untagged = { 7 } } } }
    local p5 = h.vde_plug("vde://" .. dir .. "[port=5]")
    local p6 = h.vde_plug("vde://" .. dir .. "[port=6]")
    local p7 = h.vde_plug("vde://" .. dir .. "[port=7]")
    finally(function() p5.close() p6.close() p7.close() end)
    local deadline = vsq.now() + 5
    while sw:stats().clients < 3 and vsq.now() < deadline do vsq.sleep(0.02) end
    assert.equal(3, sw:stats().clients)
    assert.equal(1, #sw:port(5).clients)
    p5:send(h.frame(h.BROADCAST, A, "vlan10"))
    local got = p6:recv(3)
    assert.equal("vlan10", h.payload(got))
    assert.is_nil(p7:recv(0.3))
    p7:send(h.frame(h.BROADCAST, C, "vlan20"))
    assert.is_nil(p5:recv(0.3))
    assert.is_true(sw:stats().vlan_drops == 0)
  end)

  it("tags frames for trunk ports and strips the tag for access ports", function()
    local sw <close>, dir = h.switch()
    sw:port(3, { vlan = 10 })
    sw:port(4, { vlan = false, tagged = { 10, 20 } })
    local access <close> = h.client(dir, 3)
    local trunk <close> = h.client(dir, 4)
    access:send(h.frame(h.BROADCAST, A, "up"))
    local f = h.expect(trunk, "up")
    assert.equal(10, h.vlan_of(f))
    trunk:send(h.tagged(h.BROADCAST, B, 10, "down"))
    f = h.expect(access, "down")
    assert.is_nil(h.vlan_of(f))
    -- VLAN 20 does not reach the access port; untagged frames on the trunk are dropped
    trunk:send(h.tagged(h.BROADCAST, B, 20, "other"))
    trunk:send(h.frame(h.BROADCAST, B, "untagged"))
    assert.is_true(h.silent(access, "other"))
    assert.is_true(sw:stats().vlan_drops >= 1)
    assert.same({ untagged = { 3 }, tagged = { 4 } }, sw:vlan(10))
  end)

  it("lists the VLANs in use as a sequence in increasing order", function()
    local sw <close> = fabric.switch { ports = 4 }
    sw:port(1, { vlan = 20 })
    sw:port(2, { vlan = false, tagged = { 10, 20 } })
    assert.same({
      { vlan = 0, untagged = { 3, 4 }, tagged = {} },
      { vlan = 10, untagged = {}, tagged = { 2 } },
      { vlan = 20, untagged = { 1 }, tagged = { 2 } },
    }, sw:vlans())
    assert.equal(3, #sw:vlans())
  end)

  it("drops frames tagged with the reserved VLAN 4095, even between trunk ports", function()
    local sw <close>, dir = h.switch()
    sw:port(3, { vlan = false, tagged = { 10 } })
    sw:port(4, { vlan = false, tagged = { 10 } })
    local t3 <close> = h.client(dir, 3)
    local t4 <close> = h.client(dir, 4)
    local drops = sw:stats().vlan_drops
    t3:send(h.tagged(h.BROADCAST, A, 4095, "reserved"))
    t3:send(h.tagged(h.BROADCAST, A, 10, "fine"))
    h.expect(t4, "fine")
    assert.is_true(h.silent(t4, "reserved"))
    assert.equal(drops + 1, sw:stats().vlan_drops)
  end)

  it("drops malformed frames and counts them", function()
    local sw <close>, dir = h.switch()
    local a <close> = h.client(dir)
    local b <close> = h.client(dir)
    -- an 802.1Q ethertype with the tag cut off
    a:send(h.BROADCAST .. A .. "\x81\x00\x00")
    a:send(h.frame(h.BROADCAST, A, "fine"))
    assert.truthy(h.expect(b, "fine"))
    local st = sw:stats()
    assert.equal(1, st.malformed)
    assert.is_true(st.ports[sw:clients()[1].port].drops >= 1)
  end)

  it("carries jumbo frames (9216 bytes of payload) end to end", function()
    local sw <close>, dir = h.switch()
    local a <close> = h.client(dir)
    local b <close> = h.client(dir)
    local big = h.frame(h.BROADCAST, A, "jumbo", 14 + 9216)
    a:send(big)
    local f = h.expect(b, "jumbo")
    assert.equal(#big, #f)
    assert.equal(big, f)
  end)

  it("as a hub repeats every frame to every other port", function()
    local hub <close>, dir = h.switch { hub = true }
    local a <close> = h.client(dir)
    local b <close> = h.client(dir)
    local c <close> = h.client(dir)
    a:send(h.frame(h.BROADCAST, A, "hi"))
    assert.truthy(h.expect(b, "hi"))
    b:send(h.frame(A, B, "uni"))
    assert.truthy(h.expect(a, "uni"))
    assert.truthy(h.expect(c, "uni")) -- a hub does not learn
    assert.is_true(hub:hub())
  end)

  it("mirrors a port's traffic to another port", function()
    local sw <close>, dir = h.switch()
    local a <close> = h.client(dir, 1)
    local b <close> = h.client(dir, 2)
    local spy <close> = h.client(dir, 3)
    a:send(h.frame(h.BROADCAST, A, "learn-a"))
    b:send(h.frame(h.BROADCAST, B, "learn-b"))
    assert.truthy(h.expect(spy, "learn-b"))
    sw:mirror(1, 3)
    b:send(h.frame(A, B, "secret"))
    assert.truthy(h.expect(a, "secret"))
    assert.truthy(h.expect(spy, "secret"))
    assert.same({ { from = 1, to = 3 } }, sw:mirrors())
    sw:unmirror(1)
    b:send(h.frame(A, B, "private"))
    assert.truthy(h.expect(a, "private"))
    assert.is_true(h.silent(spy, "private"))
  end)

  it("captures a port's traffic to a pcap file that tcpdump reads #peer", function()
    local sw <close>, dir = h.switch()
    local a <close> = h.client(dir, 1)
    local b <close> = h.client(dir, 2)
    local file = h.dir("pcap") .. "/port2.pcap"
    local cap = assert(sw:capture(2, { file = file }))
    a:send(h.frame(h.BROADCAST, A, "captured"))
    assert.truthy(h.expect(b, "captured"))
    cap:close()
    local r = vsq.exec({ "tcpdump", "-nn", "-r", file })
    assert.is_true(r.ok, r.stderr)
    assert.matches("02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff", r.stdout, 1, true)
  end)

  it("links to any object with ports and unlinks when either side closes", function()
    local sw1 <close>, dir1 = h.switch { name = "one" }
    local sw2 <close>, dir2 = h.switch { name = "two" }
    local lk = fabric.link(sw1, sw2)
    local a <close> = h.client(dir1)
    local b <close> = h.client(dir2)
    for i = 1, 5 do
      a:send(h.frame(h.BROADCAST, A, "across" .. i))
      assert.truthy(h.expect(b, "across" .. i))
    end
    for i = 1, 3 do
      b:send(h.frame(A, B, "back" .. i))
      assert.truthy(h.expect(a, "back" .. i))
    end
    -- a link counts exactly what crosses it each way (frames, bytes of 60-byte frames)
    local st = lk:stats()
    assert.are.same({ frames = 5, bytes = 300, refused = 0 }, st.forward)
    assert.are.same({ frames = 3, bytes = 180, refused = 0 }, st.backward)
    lk:close()
    a:send(h.frame(h.BROADCAST, A, "cut"))
    assert.is_true(h.silent(b, "cut"))
    local lk2 = fabric.link(sw1:port(7), sw2)
    assert.equal("two[1]", sw1:port(7).peer)
    sw2:close()
    assert.is_nil(sw1:port(7).peer)
    assert.equal("link (closed)", tostring(lk2))
  end)

  it("refuses to link two ports of one switch or hub, naming it, and links two switches", function()
    local sw <close> = fabric.switch { name = "loopy", ports = 4 }
    local hub <close> = fabric.hub { name = "rep", ports = 4 }
    local msg = 'cannot link switch "loopy" to itself (ports 1 and 2): with no spanning tree '
      .. "the loop would only repeat frames"
    local function link_error(...)
      local ok, err = pcall(fabric.link, ...)
      assert.is_false(ok)
      return err
    end
    assert.matches("bad argument #2 to '[%w.]*link' %(", link_error(sw:port(1), sw:port(2)))
    assert.matches(msg, link_error(sw:port(1), sw:port(2)), 1, true)
    assert.matches('cannot link switch "loopy" to itself (ports 1 and 3)', link_error(sw, sw:port(3)),
      1, true)
    assert.has_error(function() fabric.link(hub:port(1), hub:port(4), { delay = "1ms" }) end)
    assert.matches('cannot link hub "rep" to itself (ports 1 and 4)', link_error(hub, hub:port(4)),
      1, true)
    for n = 1, 4 do assert.is_nil(sw:port(n).peer) assert.is_nil(hub:port(n).peer) end
    -- two links between two switches make a loop too, but that one may be meant (and is allowed)
    local l1 <close> = fabric.link(sw:port(1), hub:port(1))
    local l2 <close> = fabric.link(sw:port(2), hub:port(2))
    assert.equal("rep[2]", sw:port(2).peer)
  end)

  it("names unnamed switches sw0, sw1... and hubs hub0... from 0 in every script", function()
    local r = require("helpers.vsq").run({ "-e", [[
      local fabric = require "vsq.fabric"
      local names = {}
      for _, make in ipairs({ fabric.switch, fabric.hub, fabric.switch, fabric.hub,
        function() return fabric.switch { hub = true } end }) do
        local sw <close> = make()
        names[#names + 1] = sw:name()
      end
      print(table.concat(names, " "))
    ]] }, { timeout = 10 })
    assert.equal("sw0 hub0 sw1 hub1 hub2\n", r.stdout)
    assert.is_true(r.ok)
  end)

  it("rejects wrong use with errors naming the mistake", function()
    assert.has_error(function() fabric.switch { prots = 3 } end, 'switch: unknown option "prots"')
    local sw <close> = fabric.switch { ports = 4 }
    assert.has_error(function() sw:port(5) end)
    assert.has_error(function() sw:vlan(5000) end)
    assert.has_error(function() fabric.link(sw, 42) end)
    local ok, msg, errno = fabric.switch { path = "/nonexistent/dir/x" }
    assert.is_nil(ok)
    assert.matches("cannot create directory /nonexistent/dir/x", msg, 1, true)
    assert.equal(2, errno)
  end)
end)

describe("VDE server", function()
  after_each(h.cleanup)

  it("drops clients that send garbage or hang up mid-handshake; others keep working #peer", function()
    local sw <close>, dir = h.switch()
    local a <close> = h.client(dir)
    local b <close> = h.client(dir)
    local g1 = h.raw_client(dir, "GET / HTTP/1.0\r\n\r\n", 0.5)
    local g2 = h.raw_client(dir, string.pack("<I4I4", 0xfeedface, 3), 0)
    local g3 = h.raw_client(dir, h.request_v3(dir .. "/nothing-here", 0, "ghost"), 0.5)
    finally(function() g1:close() g2:close() g3:close() end)
    g1:wait(5) g2:wait(5) g3:wait(5)
    local deadline = vsq.now() + 5
    while sw:stats().refused < 3 and vsq.now() < deadline do vsq.sleep(0.02) end
    local st = sw:stats()
    assert.equal(3, st.refused)
    assert.equal(0, st.handshakes)
    a:send(h.frame(h.BROADCAST, A, "still-here"))
    assert.truthy(h.expect(b, "still-here"))
    assert.equal(2, sw:stats().clients)
  end)

  it("refuses a second switch on its directory, naming it, and counts no client for it", function()
    local sw <close>, dir = h.switch()
    local again, msg, errno = fabric.switch { name = "again", path = dir }
    assert.is_nil(again)
    assert.equal('switch "again": cannot serve ' .. sw:path() .. ": another switch serves it: "
      .. "Address already in use", msg)
    assert.equal(98, errno)
    vsq.sleep(0.2) -- the first switch accepts the second one's probe
    local st = sw:stats()
    assert.equal(0, st.refused)
    assert.is_nil(st.last_refusal)
    assert.equal(0, st.handshakes)
    assert.equal(0, st.connections)
  end)

  it("logs nothing when a second switch or console probes it", function()
    local dir = h.dir("probe")
    local r = require("helpers.vsq").run({ "-e", ([[
      local fabric = require "vsq.fabric"
      fabric.log("debug", "first")
      local sw <close> = assert(fabric.switch { path = %q })
      local con <close> = assert(fabric.console(%q))
      assert(not fabric.switch { path = %q })
      assert(not fabric.console(%q))
      vsq.sleep(0.2)
      print(sw:stats().refused, (con:accept(0)))
    ]]):format(dir .. "/vde", dir .. "/mgmt", dir .. "/vde", dir .. "/mgmt") }, { timeout = 10 })
    assert.equal("", r.stderr)
    assert.equal("0\tnil\n", r.stdout)
    assert.is_true(r.ok)
  end)

  it("survives a client that vanishes, and frees its port #peer", function()
    local sw <close>, dir = h.switch()
    local a <close> = h.client(dir)
    local p = h.vde_plug("vde://" .. dir)
    finally(function() p.close() end)
    local deadline = vsq.now() + 5
    while sw:stats().clients < 2 and vsq.now() < deadline do vsq.sleep(0.02) end
    p.proc:kill("KILL")
    p.proc:wait(5)
    deadline = vsq.now() + 5
    while sw:stats().clients > 1 and vsq.now() < deadline do vsq.sleep(0.02) end
    assert.equal(1, sw:stats().clients)
    local b <close> = h.client(dir)
    a:send(h.frame(h.BROADCAST, A, "after"))
    assert.truthy(h.expect(b, "after"))
  end)

  -- Debian's vde_plug on port `port` of the switch in dir (as nobody if asked): the plug and
  -- whether the switch took it (false once it was refused and exited).
  local function plug_on(sw, dir, port, as_nobody)
    local p = h.vde_plug("vde://" .. dir .. "[" .. port .. "]", as_nobody)
    local function on_port()
      for _, c in ipairs(sw:clients()) do
        if c.port == port and c.uid == (as_nobody and 65534 or 0) then return true end
      end
    end
    local deadline = vsq.now() + 5
    while p.proc:running() and not on_port() and vsq.now() < deadline do vsq.sleep(0.02) end
    local taken = on_port() or false
    if not taken then p.proc:wait(5) end
    return p, taken
  end

  it("gives port 0, the management port, to root and never to another user #peer", function()
    local sw <close>, dir = h.switch { mode = "0666", ports = 4 }
    local root, nobody, taken, nobody_taken
    finally(function()
      if root then root.close() end
      if nobody then nobody.close() end
    end)
    root, taken = plug_on(sw, dir, 0)
    assert.is_true(taken)
    nobody, nobody_taken = plug_on(sw, dir, 0, true)
    assert.is_false(nobody_taken)
    assert.matches("(uid 65534) asked for port 0, the management port, which only the switch's "
      .. "user (uid 0) and root may use", sw:stats().last_refusal, 1, true)
    -- port 0 is a port like the others for frames, but never handed out for "any port"
    local a <close> = h.client(dir)
    assert.same({ 0, 1 }, { sw:clients()[1].port, sw:clients()[2].port })
    a:send(h.frame(h.BROADCAST, A, "to-zero"))
    assert.truthy(h.expect(root, "to-zero"))
    root:send(h.frame(A, B, "from-zero"))
    assert.truthy(h.expect(a, "from-zero"))
    local learnt = {}
    for _, m in ipairs(sw:macs()) do learnt[m.mac] = m.port end
    assert.same({ ["02:00:00:00:00:01"] = 1, ["02:00:00:00:00:02"] = 0 }, learnt)
    assert.equal(1, sw:stats().unicast)
  end)

  it("refuses users a port is not reserved for and accepts them on open ports #peer", function()
    local sw <close>, dir = h.switch { mode = "0666", ports = 8 }
    sw:port(5, { user = "root" })
    sw:port(6, { group = "root" })
    sw:port(7, { group = "nogroup" })
    assert.equal(0, sw:port(5).user)
    assert.equal(0, sw:port(6).group)
    local plugs = {}
    finally(function() for _, p in ipairs(plugs) do p.close() end end)
    local function try(port, as_nobody)
      local p, taken = plug_on(sw, dir, port, as_nobody)
      plugs[#plugs + 1] = p
      return taken
    end
    assert.is_false(try(5, true))
    assert.matches('(uid 65534) may not use port 5: it is reserved for user root',
      sw:stats().last_refusal, 1, true)
    assert.is_false(try(6, true))
    assert.matches("may not use port 6: it is reserved for group root", sw:stats().last_refusal, 1, true)
    assert.is_true(try(7, true))  -- nogroup is nobody's group
    assert.is_true(try(4, true))  -- an open port
    assert.is_true(try(5))        -- root always may
    assert.equal(2, sw:stats().refused)
    -- lifting the reservation opens the port
    sw:port(5, { user = false })
    assert.is_nil(sw:port(5).user)
    assert.is_true(try(5, true))
  end)

  it("serves QEMU's -netdev vde: the guest's PXE DHCP request arrives #peer #slow", function()
    local sw <close>, dir = h.switch()
    local ep <close> = h.client(dir)
    local qemu = assert(vsq.process({ "qemu-system-x86_64", "-nodefaults", "-display", "none", "-m", "64",
      "-netdev", "vde,id=n0,sock=" .. dir, "-device", "e1000,netdev=n0,mac=52:54:00:12:34:56",
      "-boot", "n" }, { stdin = "null", stdout = "null", stderr = "null" }))
    finally(function()
      qemu:kill("KILL")
      qemu:wait(5)
      qemu:close()
    end)
    local dhcp
    local deadline = vsq.now() + 60
    while not dhcp and vsq.now() < deadline do
      local f = ep:recv(deadline - vsq.now())
      -- IPv4, UDP, to port 67 (BOOTP server), from the guest's MAC
      if f and f:sub(7, 12) == "\x52\x54\x00\x12\x34\x56" and f:sub(13, 14) == "\x08\x00" and
          f:byte(24) == 17 and string.unpack(">I2", f, 37) == 67 then
        dhcp = f
      end
    end
    assert.truthy(dhcp)
    local qemu_port
    for _, c in ipairs(sw:clients()) do
      if c.description:match("^QEMU") then qemu_port = c.port end
    end
    assert.truthy(qemu_port)
    assert.is_true(sw:port(qemu_port).in_frames >= 1)
  end)

  it("leaves no fd or socket file behind after 1000 connections #slow", function()
    local sw <close>, dir = h.switch()
    h.client(dir):close() -- the first connection sets up what the process keeps
    while sw:stats().clients > 0 do vsq.sleep(0.01) end
    local before = h.fd_count()
    for _ = 1, 999 do
      local c = h.client(dir)
      c:close()
    end
    local deadline = vsq.now() + 5
    while (sw:stats().clients > 0 or #h.ls(dir) > 1) and vsq.now() < deadline do vsq.sleep(0.02) end
    assert.same({ "ctl" }, h.ls(dir))
    assert.equal(before, h.fd_count())
    assert.equal(1000, sw:stats().connections)
    sw:close()
    assert.is_nil(io.open(dir))
  end)

  it("sets vde_switch's permissions and group on the directory and sockets", function()
    local sw <close>, dir = h.switch { mode = "0660", group = "nogroup" }
    local c <close> = h.client(dir, 4)
    local data = dir .. "/" .. sw:clients()[1].socket:match("[^/]+$")
    local p = io.popen("stat -c '%a %G' " .. tmp.quote(dir) .. " " .. tmp.quote(dir .. "/ctl") .. " " ..
      tmp.quote(data))
    local modes = p:read("a")
    p:close()
    -- a root switch hands each data socket to its client's user with the owner's bits only
    local data_mode = h.euid() == 0 and "600" or "660"
    assert.equal("2770 nogroup\n660 nogroup\n" .. data_mode .. " nogroup\n", modes)
    assert.matches("/004%.%d+$", sw:clients()[1].socket)
  end)

  it("refuses a client whose data socket it may not use and says what to do #peer", function()
    local base = h.dir("perm")
    os.execute("chmod 0777 " .. tmp.quote(base))
    local dir = base .. "/vde"
    local vsqh = require "helpers.vsq"
    local bin = vsqh.unprivileged_copy()
    h.dir_track(bin)
    local sw = assert(vsq.process({ "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--",
      bin .. "/vsq", bin .. "/vsq-switch", "-s", dir }, { stdout = "null", stderr = "pipe", cwd = bin }))
    finally(function() if sw:running() then sw:kill("TERM") end sw:wait(5) sw:close() end)
    local deadline = vsq.now() + 5
    while not os.execute("test -S " .. tmp.quote(dir .. "/ctl")) and vsq.now() < deadline do
      vsq.sleep(0.02)
    end
    -- a client of the same user that asks for mode 0 locks the switch out of its socket
    local r = vsqh.as_nobody({ "vde_plug", "vde://" .. dir .. "[mode=0]" }, { timeout = 5 })
    assert.is_false(r.ok)
    sw:kill("TERM")
    sw:wait(5)
    local err = sw.stderr:read("a")
    assert.matches("may not read and write its data socket", err, 1, true)
    assert.matches("mode 0000", err, 1, true)
    assert.matches("mode 0700", err, 1, true)
    assert.same({}, h.ls(base))
  end)
end)

describe("console", function()
  after_each(h.cleanup)

  it("gives up accepting after its timeout with nil, \"timeout\", ETIMEDOUT", function()
    local con <close> = assert(fabric.console(h.dir("con") .. "/mgmt"))
    assert.same({ nil, "timeout", 110 }, { con:accept(0) })
    local t0 = vsq.now()
    assert.same({ nil, "timeout", 110 }, { con:accept(0.05) })
    assert.is_true(vsq.now() - t0 >= 0.04)
  end)
end)
