-- spec/helpers/qemu.lua: a small Linux guest for QEMU, made at test time from Debian packages
-- only (a kernel from linux-image-cloud-amd64, busybox-static, cpio), booted under TCG on a
-- VDE socket directory, with a bounded run time and nothing left behind.
--
-- The guest's /init is generic; what it does comes from the kernel command line, whose unknown
-- name=value words the kernel hands to init as environment variables:
--   vsq_dhcp=1          get an address with udhcpc
--   vsq_addr=A/N        or set a static one
--   vsq_ping=IP         then, once IP answers, ping it (vsq_count replies, default 3; the
--                       wait and the pings each within vsq_ping_s seconds)
--   vsq_hold=S          stay up S seconds before powering off (so that a peer can ping back)
-- It reports on the serial console with lines starting "vsq-guest: " and ends with
-- "vsq-guest: done" and poweroff.
local tmp = require "helpers.tmp"
local M = {}

--- NIC drivers the guest loads (with what modules.dep says they need).
M.MODULES = { "virtio_pci", "virtio_net" }
--- A guest that has not finished by then is killed and the spec fails.
M.DEADLINE_S = 90

M.INIT = [=[
#!/bin/busybox sh
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
say() { echo "vsq-guest: $*"; }
for m in $(cat /modules.order); do
  insmod "/modules/$m" || say "error insmod $m"
done
ip link set lo up
ip link set eth0 up || say "error no eth0"
say "mac $(cat /sys/class/net/eth0/address)"
if [ -n "$vsq_dhcp" ]; then
  udhcpc -i eth0 -n -q -t 5 -T 2 -s /udhcpc.script || say "error no lease"
elif [ -n "$vsq_addr" ]; then
  ip addr add "$vsq_addr" dev eth0 && say "addr $vsq_addr"
fi
if [ -n "$vsq_ping" ]; then
  count=${vsq_count:-3}
  # the peer may still be booting (TCG on a busy machine): wait until it answers once, then
  # count; busybox's ping stops after -c sent, whatever -w says
  deadline=$(( $(cut -d. -f1 /proc/uptime) + ${vsq_ping_s:-20} ))
  until ping -c 1 -W 1 "$vsq_ping" >/dev/null 2>&1 ||
    [ "$(cut -d. -f1 /proc/uptime)" -ge "$deadline" ]; do :; done
  ping -c "$count" -w "${vsq_ping_s:-20}" "$vsq_ping" > /tmp/ping.out 2>&1
  cat /tmp/ping.out
  got=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' /tmp/ping.out)
  say "ping $vsq_ping ${got:-0}/$count"
fi
[ -n "$vsq_hold" ] && sleep "$vsq_hold"
say done
poweroff -f
]=]

M.UDHCPC_SCRIPT = [=[
#!/bin/sh
case "$1" in
bound|renew)
  ip addr add "$ip/$mask" dev "$interface"
  [ -n "$router" ] && ip route add default via "$router"
  echo "vsq-guest: lease $ip/$mask router $router dns $dns"
  ;;
esac
]=]

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok
end
local q = tmp.quote

local function read_file(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

local function version_key(release)
  return (release:gsub("%d+", function(d) return ("%08d"):format(tonumber(d)) end))
end

--- The kernel to boot: the newest /boot/vmlinuz-* whose modules include the NIC driver,
-- a cloud kernel first (it is the smallest). Returns its path and release, or raises.
function M.kernel()
  local best, best_key
  local p = io.popen("ls /boot 2>/dev/null")
  for name in p:lines() do
    local release = name:match("^vmlinuz%-(.+)$")
    local dep = release and read_file("/lib/modules/" .. release .. "/modules.dep")
    if dep and dep:find("/virtio_net%.ko[%.%w]*:") then
      local key = (release:match("cloud") and "1" or "0") .. version_key(release)
      if not best_key or key > best_key then best, best_key = release, key end
    end
  end
  p:close()
  assert(best, "no /boot/vmlinuz-* with virtio_net in /lib/modules:"
    .. " install linux-image-cloud-amd64")
  return "/boot/vmlinuz-" .. best, best
end

--- The module files (paths under /lib/modules/RELEASE) for `names`, dependencies first.
function M.module_files(release, names)
  local dep = assert(read_file("/lib/modules/" .. release .. "/modules.dep"))
  local function name_of(path) return (path:match("([^/]+)%.ko[%.%w]*$"):gsub("-", "_")) end
  local deps_of, path_of = {}, {}
  for line in dep:gmatch("[^\n]+") do
    local path, rest = line:match("^(%S+):%s*(.*)$")
    if path then
      local name = name_of(path)
      path_of[name] = path
      local list = {}
      for d in rest:gmatch("%S+") do list[#list + 1] = name_of(d) end
      deps_of[name] = list
    end
  end
  local order, seen = {}, {}
  local function visit(name)
    if seen[name] then return end
    seen[name] = true
    assert(path_of[name], "module " .. name .. " is not in modules.dep of " .. release)
    -- modules.dep lists what a module needs nearest first; load the farthest first
    local list = deps_of[name]
    for i = #list, 1, -1 do visit(list[i]) end
    order[#order + 1] = path_of[name]
  end
  for _, n in ipairs(names) do visit(n) end
  return order
end

--- A cheap fingerprint of a string (names the cached image after what went into it).
local function fingerprint(s)
  local h = 5381
  for i = 1, #s do h = (h * 33 + s:byte(i)) & 0xffffffff end
  return ("%08x"):format(h)
end

--- The initramfs (gzip'd newc cpio: busybox, the NIC modules, /init) for kernel `release`,
-- made in `cache` when missing and reused after. Returns its path.
function M.initramfs(cache, release)
  local files = M.module_files(release, M.MODULES)
  local image = ("%s/initramfs-%s-%s.cpio.gz"):format(cache, release,
    fingerprint(M.INIT .. M.UDHCPC_SCRIPT .. table.concat(files, " ")))
  if read_file(image) then return image end
  assert(sh("test -x /bin/busybox && /bin/busybox --list | grep -qx udhcpc"),
    "no static busybox with udhcpc: install busybox-static")
  assert(sh("mkdir -p " .. q(cache)))
  local stage = ("%s/stage.%d.%d"):format(cache, math.random(1 << 30), os.time())
  local order = {}
  local ok, err = pcall(function()
    assert(sh(("mkdir -p %s/bin %s/modules"):format(q(stage), q(stage))))
    assert(sh(("cp /bin/busybox %s/bin/busybox"):format(q(stage))))
    for _, f in ipairs(files) do
      local src, base = "/lib/modules/" .. release .. "/" .. f, f:match("([^/]+)%.ko")
      local name = base .. ".ko"
      local decompress = f:match("%.xz$") and "xz -dc" or f:match("%.zst$") and "zstd -dc" or "cat"
      assert(sh(("%s %s > %s/modules/%s"):format(decompress, q(src), q(stage), name)),
        "cannot copy " .. src)
      order[#order + 1] = name
    end
    tmp.write(stage .. "/modules.order", table.concat(order, "\n") .. "\n")
    tmp.write(stage .. "/init", M.INIT, "0755")
    tmp.write(stage .. "/udhcpc.script", M.UDHCPC_SCRIPT, "0755")
    -- made beside the stage and renamed: runs at the same time never see half an image
    assert(sh(("cd %s && find . | cpio -o -H newc --quiet -R 0:0 | gzip -1 > %s.gz"
      .. " && chmod 0644 %s.gz && mv %s.gz %s"):format(q(stage), q(stage), q(stage), q(stage),
      q(image))), "cpio/gzip of the initramfs failed")
  end)
  sh(("rm -rf %s %s.gz"):format(q(stage), q(stage)))
  assert(ok, err)
  return image
end

--- Find or make everything a boot needs: returns kernel path, initramfs path.
function M.guest_files(cache)
  local kernel, release = M.kernel()
  return kernel, M.initramfs(cache or (require("helpers.vsq").top .. "/build/qemu-guest"), release)
end

--- The QEMU command line for a guest on VDE socket directory `sock`.
-- opts: kernel, initrd, sock, mac, env (table of vsq_* settings), memory_mb.
function M.argv(opts)
  local words = { "console=ttyS0", "quiet", "panic=-1" }
  local keys = {}
  for k in pairs(opts.env or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do words[#words + 1] = ("%s=%s"):format(k, opts.env[k]) end
  return {
    -- QEMU dies with whoever started it, even if that is killed outright
    "setpriv", "--pdeathsig", "KILL", "--",
    "qemu-system-x86_64", "-accel", "tcg", "-m", tostring(opts.memory_mb or 256),
    "-nodefaults", "-display", "none", "-monitor", "none", "-serial", "stdio", "-no-reboot",
    "-kernel", opts.kernel, "-initrd", opts.initrd, "-append", table.concat(words, " "),
    "-netdev", "vde,id=n0,sock=" .. opts.sock,
    "-device", "virtio-net-pci,netdev=n0,romfile=,mac=" .. (opts.mac or "52:54:00:12:34:56"),
  }
end

local Guest = {}
Guest.__index = Guest

--- Boot a guest (see M.argv for opts, plus deadline_s). Returns a guest: guest:line(timeout)
-- reads the next console line, guest:finish(on_line) reads up to "vsq-guest: done" (raising,
-- with the console so far, if the deadline passes first), guest:output() is everything read,
-- guest:close() kills QEMU if it still runs and reaps it (as collecting guest.proc does).
function M.start(opts)
  local argv = M.argv(opts)
  local proc = assert(vsq.process(argv, { stdin = "null", stdout = "pipe", stderr = "pipe" }))
  local deadline_s = opts.deadline_s or M.DEADLINE_S
  return setmetatable({ proc = proc, lines = {}, started = vsq.now(), deadline_s = deadline_s,
    deadline = vsq.now() + deadline_s, argv = argv }, Guest)
end

function Guest:line(timeout)
  local left = self.deadline - vsq.now()
  if timeout and timeout < left then left = timeout end
  if left <= 0 then return nil, "timeout" end
  local line, err = self.proc.stdout:read("l", left)
  if line then
    line = line:gsub("\r$", "")
    self.lines[#self.lines + 1] = line
  end
  return line, err
end

function Guest:output() return table.concat(self.lines, "\n") end

--- Read the console until the guest says it is done; on_line(line) sees every line.
-- Returns the parsed report (M.report). Raises if QEMU ends first or the deadline passes.
function Guest:finish(on_line)
  while true do
    local line = self:line()
    if not line then
      local why = vsq.now() >= self.deadline
        and ("the guest did not finish within %d s (QEMU killed)"):format(self.deadline_s)
        or "QEMU ended before the guest was done"
      if self.proc:running() then self.proc:kill("KILL") end
      self.proc:wait(5)
      local stderr = self.proc.stderr:read("a", 1) or ""
      self:close()
      error(("%s\n--- console:\n%s\n--- QEMU stderr:\n%s"):format(why, self:output(), stderr), 2)
    end
    if on_line then on_line(line) end
    if line == "vsq-guest: done" then break end
  end
  local ok, how, code = self.proc:wait(10)
  self.exit = { ok = ok, how = how, code = code }
  return M.report(self:output())
end

--- Kill QEMU if it still runs and reap it (without yielding: fine in __close and finally).
function Guest:close()
  if self.closed then return end
  self.closed = true
  self.proc:close()
end
Guest.__close = Guest.close

--- What a guest's console says: {mac=, lease=, router=, dns=, addr=, replies={ip...},
-- ping={target=, received=, count=}, errors={...}, done=bool}.
function M.report(text)
  local r = { replies = {}, errors = {} }
  for line in text:gmatch("[^\n]+") do
    local what, rest = line:match("^vsq%-guest: (%S+)%s*(.*)$")
    if what == "mac" then
      r.mac = rest
    elseif what == "lease" then
      r.lease, r.router, r.dns = rest:match("^(%S+) router (%S*) dns (.*)$")
    elseif what == "addr" then
      r.addr = rest
    elseif what == "ping" then
      local target, got, count = rest:match("^(%S+) (%d+)/(%d+)$")
      r.ping = { target = target, received = tonumber(got), count = tonumber(count) }
    elseif what == "error" then
      r.errors[#r.errors + 1] = rest
    elseif what == "done" then
      r.done = true
    else
      local from = line:match("^%d+ bytes from ([%d%.]+): seq=")
      if from then r.replies[#r.replies + 1] = from end
    end
  end
  return r
end

return M
