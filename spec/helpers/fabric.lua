-- spec/helpers/fabric.lua: what the switch specs share: frames with and without 802.1Q tags,
-- switches serving a scratch directory, VDE clients (vsq's own and Debian's vde_plug) that
-- send and receive frames, and raw clients that misbehave on the ctl socket.
local fabric = require "vsq.fabric"
local tmp = require "helpers.tmp"
local M = {}

M.BROADCAST = ("\xff"):rep(6)

--- The locally administered MAC 02:00:00:00:00:n.
function M.mac(n) return "\2\0\0\0\0" .. string.char(n) end

--- An untagged frame (ethertype 0x88b5) of at least 60 bytes carrying `payload`.
function M.frame(dst, src, payload, len)
  local f = dst .. src .. "\x88\xb5" .. (payload or "")
  len = math.max(len or 60, #f)
  return f .. ("\0"):rep(len - #f)
end

--- The same with an 802.1Q tag for `vlan`.
function M.tagged(dst, src, vlan, payload, len)
  local f = dst .. src .. string.pack(">I2I2", 0x8100, vlan) .. "\x88\xb5" .. (payload or "")
  len = math.max(len or 64, #f)
  return f .. ("\0"):rep(len - #f)
end

--- VLAN of a tagged frame, or nil.
function M.vlan_of(frame)
  if #frame >= 18 and frame:sub(13, 14) == "\x81\x00" then
    return string.unpack(">I2", frame, 15) & 0xfff
  end
end

--- The payload after the ethertype (and tag), up to the first NUL.
function M.payload(frame)
  local start = M.vlan_of(frame) and 19 or 15
  return frame:sub(start):match("^[^%z]*")
end

local scratch = {}

--- A scratch directory that M.cleanup() removes.
function M.dir(name)
  local d = tmp.dir(name)
  scratch[#scratch + 1] = d
  return d
end

--- Have M.cleanup() remove a scratch directory made elsewhere.
function M.dir_track(d) scratch[#scratch + 1] = d end

--- Remove the scratch directories made so far (call from after_each).
function M.cleanup()
  for _, d in ipairs(scratch) do tmp.remove(d) end
  scratch = {}
end

--- A switch serving a new scratch directory; returns it and the directory.
function M.switch(opts)
  opts = opts or {}
  local dir = M.dir("sw") .. "/vde"
  opts.path = dir
  return assert(fabric.switch(opts)), dir
end

--- vsq's own VDE client on port n (0 or nil: any port) of the switch in dir.
function M.client(dir, n)
  local url = "vde://" .. dir .. ((n and n > 0) and ("[port=" .. n .. "]") or "")
  return assert(fabric.open(url, { descr = "spec" }))
end

--- Receive until a frame whose payload is `payload` arrives; true, or false after `seconds`.
function M.expect(ep, payload, seconds)
  local deadline = vsq.now() + (seconds or 3)
  while vsq.now() < deadline do
    local f = ep:recv(deadline - vsq.now())
    if f and M.payload(f) == payload then return f end
    if not f then break end
  end
  return nil
end

--- True if no frame with `payload` arrives within `seconds`.
function M.silent(ep, payload, seconds)
  local deadline = vsq.now() + (seconds or 0.3)
  while vsq.now() < deadline do
    local f = ep:recv(math.max(deadline - vsq.now(), 0.01))
    if f and M.payload(f) == payload then return false end
  end
  return true
end

--- Debian's vde_plug on url with its stream (2-byte length + frame) on pipes:
-- p:send(frame), p:recv(timeout) -> frame or nil, p:close().
function M.vde_plug(url, as_nobody)
  local argv = { "vde_plug", url }
  if as_nobody then
    argv = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--", "vde_plug", url }
  end
  local proc = assert(vsq.process(argv, { stdin = "pipe", stdout = "pipe", stderr = "pipe" }))
  local self = { proc = proc }
  function self.send(_, frame) return proc.stdin:write(string.pack(">s2", frame)) end
  function self.recv(_, timeout)
    local header = proc.stdout:read(2, timeout)
    if not header then return nil end
    while #header < 2 do
      local more = proc.stdout:read(2 - #header, timeout)
      if not more then return nil end
      header = header .. more
    end
    local len, data = string.unpack(">I2", header), ""
    while #data < len do
      local more = proc.stdout:read(len - #data, timeout)
      if not more then return nil end
      data = data .. more
    end
    return data
  end
  function self.close()
    if proc:running() then proc:kill("TERM") end
    proc:wait(2)
    proc:close()
  end
  return self
end

--- Broadcast "<word>1", "<word>2"... from vde_plug `from` until `to` hears one (vde_plug
-- connects in the background); the frame heard, or nil after `tries` (50) tenths of a second.
function M.first_heard(from, to, word, tries)
  for i = 1, tries or 50 do
    from:send(M.frame(M.BROADCAST, M.mac(1), word .. i))
    local got = to:recv(0.1)
    if got then return got end
  end
end

--- A raw client on dir/ctl written in perl (always in Debian): sends `bytes` (a Lua string)
-- and hangs up after `hold` seconds. Returns the process.
function M.raw_client(dir, bytes, hold)
  local script = [[
use IO::Socket::UNIX;
my $s = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $ARGV[0]) or die "connect: $!";
binmode STDIN; local $/; my $data = <STDIN>;
print $s $data; $s->flush;
select(undef, undef, undef, $ARGV[1]);
close $s;
]]
  local p = assert(vsq.process({ "perl", "-e", script, dir .. "/ctl", tostring(hold or 0) },
    { stdin = "pipe", stdout = "null", stderr = "null" }))
  p.stdin:write(bytes)
  p.stdin:close()
  return p
end

--- A request_v3 header (the first 122 bytes libvdeplug sends) for data socket `path`.
function M.request_v3(path, port, descr)
  return string.pack("<I4I4I4I2", 0xfeedface, 3, (port or 0) << 8, 1) ..
      path .. ("\0"):rep(108 - #path) .. (descr or "")
end

--- Files in a directory (names), sorted.
function M.ls(dir)
  local names = {}
  local p = io.popen("ls -A " .. tmp.quote(dir) .. " 2>/dev/null")
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  table.sort(names)
  return names
end

--- Number of sockets this process has open (after collecting garbage).
function M.fd_count()
  collectgarbage("collect")
  collectgarbage("collect")
  local p = io.popen("ls -l /proc/" .. M.pid() .. "/fd | grep -c 'socket:'")
  local n = tonumber(p:read("a"))
  p:close()
  return n
end

function M.euid()
  local f = assert(io.open("/proc/self/status"))
  local uid = f:read("a"):match("\nUid:%s+%d+%s+(%d+)")
  f:close()
  return tonumber(uid)
end

function M.pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

return M
