-- QEMU on a vsq switch: a small Linux guest (Debian kernel, busybox initramfs) boots under TCG
-- with -netdev vde on a vsq switch, gets an address by DHCP from a slirp:// endpoint linked to
-- the switch and pings the gateway through it; two guests ping each other; all of it also as
-- user nobody, and the user's example.
local fabric = require "vsq.fabric"
local tmp = require "helpers.tmp"
local hv = require "helpers.vsq"
local Q = require "helpers.qemu"

local GUEST_MAC = "52:54:00:12:34:56"

-- the guest's files are made once per run (and cached in build/qemu-guest across runs)
local kernel, initrd
local function guest_files()
  if not kernel then kernel, initrd = Q.guest_files() end
  return kernel, initrd
end

local function port_of(sw, mac)
  for _, m in ipairs(sw:macs()) do
    if m.mac == mac then return m.port end
  end
end

--- Everything left under dir (socket files above all), one path a line.
local function left_under(dir)
  local p = io.popen("find " .. tmp.quote(dir) .. " -mindepth 1 2>/dev/null")
  local names = p:read("a")
  p:close()
  return names
end

describe("QEMU on a vsq switch", function()
  it("boots a Linux guest that leases an address from slirp:// and pings the gateway #peer #slow",
    function()
      local kernel_path, initrd_path = guest_files()
      local work = tmp.dir("qemu")
      finally(function() tmp.remove(work) end)
      local dir = work .. "/sw"
      local sw <close> = assert(fabric.switch { path = dir })
      local nat <close> = assert(fabric.open("slirp://"))
      local link <close> = fabric.link(sw, nat)
      local guest <close> = Q.start { kernel = kernel_path, initrd = initrd_path, sock = dir,
        mac = GUEST_MAC, env = { vsq_dhcp = 1, vsq_ping = "10.0.2.2", vsq_hold = 1 } }
      -- what the switch shows while QEMU is still plugged in
      local seen
      local report = guest:finish(function(line)
        if line:match("^vsq%-guest: ping ") then
          seen = { stats = sw:stats(), port = port_of(sw, GUEST_MAC) }
        end
      end)
      local console = guest:output()
      assert.are.same({}, report.errors, console)
      assert.are.equal(GUEST_MAC, report.mac, console)
      assert.are.equal("10.0.2.15/24", report.lease, console)
      assert.are.equal("10.0.2.2", report.router, console)
      assert.are.same({ target = "10.0.2.2", received = 3, count = 3 }, report.ping, console)
      assert.are.same({ "10.0.2.2", "10.0.2.2", "10.0.2.2" }, report.replies, console)
      assert.is_true(guest.exit.ok, console) -- poweroff -f: QEMU exits 0

      -- the switch learnt the guest's MAC on the port QEMU's VDE connection uses
      assert.truthy(seen, console)
      assert.truthy(seen.port, "the switch never learnt " .. GUEST_MAC)
      local port = seen.stats.ports[seen.port]
      assert.are.equal(1, #port.clients)
      assert.are.equal(guest.proc.pid, port.clients[1].pid)
      -- DHCP discover/request, ARP and 3 echo requests in; offer/ack, ARP and 3 replies out
      assert.is_true(port.in_frames >= 6, ("in_frames %d"):format(port.in_frames))
      assert.is_true(port.out_frames >= 6, ("out_frames %d"):format(port.out_frames))
      local nat_port
      for _, p in pairs(seen.stats.ports) do
        if p.peer then nat_port = p end
      end
      assert.are.equal(port.in_frames, nat_port.out_frames)
      assert.are.equal(port.out_frames, nat_port.in_frames)
      assert.are.equal(0, seen.stats.queue_drops)

      -- QEMU's connection is gone once it powered off; closing the switch removes its sockets
      guest:close()
      link:close()
      sw:close()
      assert.are.equal("", left_under(work))
    end)

  it("carries frames between two guests that ping each other #peer #slow", function()
    local kernel_path, initrd_path = guest_files()
    local work = tmp.dir("qemu")
    local guests = {}
    -- (busted keeps one finally per spec)
    finally(function()
      for _, g in ipairs(guests) do g:close() end
      tmp.remove(work)
    end)
    local dir = work .. "/sw"
    local sw <close> = assert(fabric.switch { path = dir })
    local macs = { "52:54:00:00:00:01", "52:54:00:00:00:02" }
    for i = 1, 2 do
      guests[i] = Q.start { kernel = kernel_path, initrd = initrd_path, sock = dir, mac = macs[i],
        env = { vsq_addr = ("10.9.0.%d/24"):format(i), vsq_ping = ("10.9.0.%d"):format(3 - i),
          vsq_ping_s = 60, vsq_hold = 4 } }
    end
    -- both consoles are read at once, one task per guest; each looks at the switch when its
    -- ping is over (the peer holds on a few seconds more; a port's MACs go when it closes)
    local tasks, learnt = {}, {}
    for i = 1, 2 do
      tasks[i] = vsq.spawn(function()
        return guests[i]:finish(function(line)
          if line:match("^vsq%-guest: ping ") then
            learnt[i] = { port_of(sw, macs[1]), port_of(sw, macs[2]) }
          end
        end)
      end)
    end
    for i = 1, 2 do
      local ok, report = tasks[i]:join()
      assert(ok, report)
      local console = guests[i]:output()
      assert.are.same({}, report.errors, console)
      assert.are.equal(("10.9.0.%d/24"):format(i), report.addr, console)
      assert.are.equal(3, report.ping.received, console)
    end
    local a, b = learnt[1][1], learnt[1][2]
    assert.truthy(a and b, "the switch did not learn both guests' MACs")
    assert.are.same({ a, b }, learnt[2])
    assert.are_not.equal(a, b)
    local stats = sw:stats()
    -- 3 echo requests and 3 replies each way, plus ARP
    assert.is_true(stats.unicast >= 12, ("unicast %d"):format(stats.unicast))
  end)

  it("works for user nobody: switch, slirp:// and QEMU unprivileged #peer #slow", function()
    local kernel_path, initrd_path = guest_files()
    local bin = hv.unprivileged_copy()
    local work = tmp.dir("qemu-nobody")
    finally(function() tmp.remove(bin) tmp.remove(work) end)
    assert(os.execute("chown nobody " .. tmp.quote(work)))
    -- nobody reads the guest's files from copies beside the binary
    assert(os.execute(("cp %s %s/initrd.gz && cp -r %s %s/helpers && chmod -R a+rX %s"):format(
      tmp.quote(initrd_path), tmp.quote(bin), tmp.quote(hv.top .. "/spec/helpers"), tmp.quote(bin),
      tmp.quote(bin))))
    local script = tmp.write(bin .. "/guest.lua", [[
      package.path = ... .. "/?.lua;" .. package.path
      local Q = require "helpers.qemu"
      local fabric = require "vsq.fabric"
      local bin, work, kernel = ...
      local sw <close> = assert(fabric.switch { path = work .. "/sw" })
      local nat <close> = assert(fabric.open("slirp://"))
      local link <close> = fabric.link(sw, nat)
      local guest <close> = Q.start { kernel = kernel, initrd = bin .. "/initrd.gz",
        sock = work .. "/sw", mac = "52:54:00:00:00:99",
        env = { vsq_dhcp = 1, vsq_ping = "10.0.2.2" }, deadline_s = 80 }
      local uid, learnt
      local r = guest:finish(function(line)
        if line:match("^vsq%-guest: ping ") then
          local clients = sw:clients()
          uid = clients[1] and clients[1].uid
          for _, m in ipairs(sw:macs()) do
            if m.mac == "52:54:00:00:00:99" then learnt = m.mac end
          end
        end
      end)
      print("lease", r.lease)
      print("ping", r.ping and r.ping.received)
      print("qemu uid", uid)
      print("learnt", learnt)
    ]], "0644")
    local r = hv.as_nobody({ bin .. "/vsq", script, bin, work, kernel_path }, { timeout = 110 },
      bin)
    local id = io.popen("id -u nobody")
    local uid = id:read("n")
    id:close()
    assert.are.equal(("lease\t10.0.2.15/24\nping\t3\nqemu uid\t%d\nlearnt\t52:54:00:00:00:99\n")
      :format(uid), r.stdout, r.stderr)
    assert.are.equal("", left_under(work))
  end)

  it("kills a guest that does not finish in time, and says so with its console #peer #slow",
    function()
      local kernel_path, initrd_path = guest_files()
      local work = tmp.dir("qemu")
      finally(function() tmp.remove(work) end)
      local dir = work .. "/sw"
      local sw <close> = assert(fabric.switch { path = dir })
      -- nobody answers on this switch: the guest's DHCP would go on for 10 s and more
      local guest <close> = Q.start { kernel = kernel_path, initrd = initrd_path, sock = dir,
        env = { vsq_dhcp = 1 }, deadline_s = 3 }
      local started = vsq.now()
      local ok, err = pcall(guest.finish, guest)
      assert.is_false(ok)
      assert.matches("the guest did not finish within 3 s %(QEMU killed%)", err)
      assert.matches("%-%-%- console:", err)
      assert.is_true(vsq.now() - started < 5)
      assert.is_false(guest.proc:running())
      assert.is_falsy(os.execute(("kill -0 %d 2>/dev/null"):format(guest.proc.pid)))
    end)

  it("runs examples/qemu_guest.lua, the same for users #peer #slow", function()
    local _, initrd_path = guest_files()
    local r = hv.run({ hv.top .. "/examples/qemu_guest.lua", initrd_path:match("^(.*)/") },
      { timeout = 110 })
    assert.is_true(r.ok, r.stdout .. (r.stderr or ""))
    assert.matches("lease 10.0.2.15/24", r.stdout)
    assert.matches("3 packets transmitted, 3 packets received", r.stdout)
    assert.matches("switch learnt 52:54:00:12:34:56 on port %d+", r.stdout)
  end)
end)
