#!/usr/bin/env vsq
-- examples/qemu_guest.lua: boot a small Linux guest in QEMU on a vsq switch that has a slirp://
-- endpoint (user-mode NAT: DHCP, gateway 10.0.2.2, DNS 10.0.2.3) linked to it. The guest gets
-- its address by DHCP through the switch, pings the gateway and powers off; then the switch
-- shows what it learnt. No root needed: QEMU plugs into the switch with -netdev vde.
--
-- usage: vsq examples/qemu_guest.lua [CACHE_DIR]
--
-- Needs Debian's qemu-system-x86, linux-image-cloud-amd64 (any /boot/vmlinuz-* with its
-- virtio_net module will do), busybox-static and cpio. The guest's initramfs (busybox, the
-- virtio NIC modules and an /init script) is made once in CACHE_DIR (default build/qemu-guest
-- beside this example's tree) and reused. QEMU runs under TCG (no KVM needed): the boot takes
-- a few seconds; a guest still running after 90 s is killed.
local fabric = require "vsq.fabric"

local here = (arg[0]:match("^(.*)/[^/]*$") or ".")
local cache = arg[1] or (here .. "/../build/qemu-guest")
local MAC = "52:54:00:12:34:56"

local function sh(cmd) return os.execute(cmd) end
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
local function slurp(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

-- 1. A Debian kernel whose modules include virtio_net (the cloud kernel is the smallest).
local release
local boot = io.popen("ls /boot")
for name in boot:lines() do
  local r = name:match("^vmlinuz%-(.+)$")
  local dep = r and slurp("/lib/modules/" .. r .. "/modules.dep")
  if dep and dep:find("/virtio_net%.ko:") and (not release or r:match("cloud")) then release = r end
end
boot:close()
assert(release, "no /boot/vmlinuz-* with virtio_net: apt-get install linux-image-cloud-amd64")
local kernel = "/boot/vmlinuz-" .. release

-- 2. The initramfs: busybox, the NIC driver and what it needs (from modules.dep), an /init.
local INIT = [[
#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev
/bin/busybox --install -s
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules.order); do insmod /modules/$m; done
ip link set lo up; ip link set eth0 up
echo "guest: mac $(cat /sys/class/net/eth0/address)"
udhcpc -i eth0 -n -q -t 5 -T 2 -s /udhcpc.script
ping -c 3 -w 20 10.0.2.2
echo "guest: done"
poweroff -f
]]
local UDHCPC = [[
#!/bin/sh
if [ "$1" = bound ]; then
  ip addr add "$ip/$mask" dev "$interface"; ip route add default via "$router"
  echo "guest: lease $ip/$mask router $router dns $dns"
fi
]]

local function modules_for(names)
  local dep = slurp("/lib/modules/" .. release .. "/modules.dep")
  local needs = {}
  for path, rest in dep:gmatch("([^\n:]+):([^\n]*)") do needs[path] = rest end
  local order, seen = {}, {}
  local function visit(path)
    if seen[path] then return end
    seen[path] = true
    local list = {}
    for d in needs[path]:gmatch("%S+") do list[#list + 1] = d end
    for i = #list, 1, -1 do visit(list[i]) end -- the farthest dependency loads first
    order[#order + 1] = path
  end
  for _, name in ipairs(names) do
    for path in pairs(needs) do
      if path:match("/" .. name .. "%.ko$") then visit(path) end
    end
  end
  return order
end

local initrd = ("%s/qemu-guest-example-%s.cpio.gz"):format(cache, release)
if not slurp(initrd) then
  print("making " .. initrd)
  local stage = ("%s.%d.d"):format(initrd, math.random(1 << 30))
  assert(sh(("rm -rf %s && mkdir -p %s/bin %s/modules && cp /bin/busybox %s/bin/"):format(
    q(stage), q(stage), q(stage), q(stage))), "cannot stage the initramfs (busybox-static?)")
  local names = {}
  for _, path in ipairs(modules_for { "virtio_pci", "virtio_net" }) do
    assert(sh(("cp /lib/modules/%s/%s %s/modules/"):format(release, path, q(stage))))
    names[#names + 1] = path:match("[^/]+$")
  end
  for name, text in pairs { init = INIT, ["udhcpc.script"] = UDHCPC,
    ["modules.order"] = table.concat(names, "\n") .. "\n" } do
    local f = assert(io.open(stage .. "/" .. name, "w"))
    f:write(text)
    f:close()
  end
  assert(sh(("chmod 0755 %s/init %s/udhcpc.script && cd %s && find . | cpio -o -H newc --quiet"
    .. " | gzip -1 > %s.gz && mv %s.gz %s; s=$?; rm -rf %s %s.gz; exit $s"):format(
      q(stage), q(stage), q(stage), q(stage), q(stage), q(initrd), q(stage), q(stage))))
end

-- 3. The network: a switch serving a socket directory, with slirp:// on one of its ports.
local dir = os.tmpname()
os.remove(dir)
local sw <close> = assert(fabric.switch { path = dir })
local nat <close> = assert(fabric.open("slirp://"))
local link <close> = fabric.link(sw, nat)
print(("switch on %s, slirp on port %d"):format(dir, next(sw:stats().ports)))

-- 4. The guest: QEMU under TCG, its NIC on the switch, its console on our pipe. setpriv makes
-- QEMU die with us even if we are killed outright.
local qemu <close> = assert(vsq.process({ "setpriv", "--pdeathsig", "KILL", "--",
  "qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-nodefaults", "-display", "none",
  "-monitor", "none", "-serial", "stdio", "-no-reboot",
  "-kernel", kernel, "-initrd", initrd, "-append", "console=ttyS0 quiet panic=-1",
  "-netdev", "vde,id=n0,sock=" .. dir,
  "-device", "virtio-net-pci,netdev=n0,romfile=,mac=" .. MAC,
}, { stdin = "null", stdout = "pipe" }))
local started, deadline = vsq.now(), vsq.now() + 90
local learnt
while true do
  local line = qemu.stdout:read("l", math.max(deadline - vsq.now(), 0))
  if not line then break end
  line = line:gsub("\r$", "")
  print(("[%5.1f] %s"):format(vsq.now() - started, line))
  if line:match("packets received") then
    -- a port's MACs go when its client leaves: look while QEMU is still plugged in
    for _, m in ipairs(sw:macs()) do
      if m.mac == MAC then learnt = m end
    end
  end
  if line == "guest: done" then break end
end
if qemu:running() and not qemu:wait(10) then
  qemu:kill("KILL")
  error("the guest did not finish in time; QEMU killed")
end

-- 5. What the switch saw.
if learnt then print(("switch learnt %s on port %d"):format(learnt.mac, learnt.port)) end
local stats = sw:stats()
print(("switch: %d frames, %d unicast, %d flooded"):format(stats.frames, stats.unicast,
  stats.flooded))
for n, port in pairs(stats.ports) do
  print(("  port %d (%s): in %d frames, out %d frames"):format(n, port.peer or "QEMU",
    port.in_frames, port.out_frames))
end
assert(learnt, "the switch never learnt the guest's MAC")
