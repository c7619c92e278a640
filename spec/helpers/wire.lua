-- spec/helpers/wire.lua: what the wire, vxvde and multi-host specs share: numbered test frames,
-- a frame source and sink joined by an impaired wire, and network namespaces that clean up.
local fabric = require "vsq.fabric"
local tmp = require "helpers.tmp"
local vsqbin = require "helpers.vsq"
local M = {}

M.BROADCAST = "\xff\xff\xff\xff\xff\xff"

--- A MAC address "\2\0\0\0\0\N" (locally administered).
function M.mac(n)
  return "\2\0\0\0\0" .. string.char(n % 256)
end

--- A test frame numbered `seq`: dst, src (mac(src_n)), ethertype 0x88b5 (local
-- experimental), the number in 4 bytes, then `size` bytes in all.
function M.frame(seq, size, dst, src_n)
  size = size or 64
  local head = (dst or M.BROADCAST) .. M.mac(src_n or 1) .. "\x88\xb5" .. string.pack(">I4", seq)
  return head .. string.rep("\x5a", size - #head)
end

--- The number of a test frame (nil for other frames).
function M.seq(frame)
  if #frame < 18 or frame:sub(13, 14) ~= "\x88\xb5" then return nil end
  return (string.unpack(">I4", frame, 15))
end

--- Send, waiting while the datagram socket is full (a ptp:// queue holds about 10 frames).
function M.send(ep, frame)
  for _ = 1, 2000 do
    local ok, err, errno = ep:send(frame)
    if ok then return true end
    if errno ~= 105 and errno ~= 11 then error(err, 2) end -- ENOBUFS, EAGAIN
    vsq.sleep(0.0005)
  end
  error("the receiver does not drain", 2)
end

--- Frames received on ep until none comes for `quiet` seconds.
function M.collect(ep, quiet)
  local got = {}
  while true do
    local f = ep:recv(quiet or 0.1)
    if not f then return got end
    got[#got + 1] = f
  end
end

--- Wait until the wire has taken in `n` frames in direction dir ("LR" or "RL"), so that what
-- a spec does next (a new setting, a look at the queue) comes after them.
function M.arrived(wire, dir, n, timeout)
  local deadline = vsq.now() + (timeout or 10)
  while wire:stats()[dir].in_frames < n do
    if vsq.now() > deadline then
      error(("the wire took in %d of %d frames"):format(wire:stats()[dir].in_frames, n), 2)
    end
    vsq.sleep(0.001)
  end
end

--- The numbers of frames, in arrival order.
function M.seqs(frames)
  local out = {}
  for i, f in ipairs(frames) do out[i] = M.seq(f) end
  return out
end

--- A source and a sink joined by a wire with `opts` (fabric.link's impairments):
-- frames sent on `a` enter the wire at L and come out of `b` (LR), and the other way (RL).
-- Returns {a =, b =, wire =, close = fn} (also a to-be-closed value).
function M.cable(opts)
  local dir = tmp.dir("cable")
  -- seqpacket: its socket holds about 90 full frames where a datagram one holds 10
  local function pair(name)
    local url = "ptp://" .. dir .. "/" .. name .. "[seqpacket]"
    local x = assert(fabric.open(url, { queue = 8192, queue_bytes = 64 << 20 }))
    local y = assert(fabric.open(url, { queue = 8192, queue_bytes = 64 << 20 }))
    assert(x:wait("up", 5))
    return x, y
  end
  local a, a_in = pair("a")
  local b_in, b = pair("b")
  local c = { a = a, b = b, dir = dir }
  c.wire = fabric.link(a_in, b_in, opts or {})
  function c.close()
    if c.closed then return end
    c.closed = true
    c.wire:close()
    for _, e in ipairs({ a, a_in, b_in, b }) do e:close() end
    tmp.remove(dir)
  end
  return setmetatable(c, { __close = c.close })
end

-- ---- network namespaces (root) --------------------------------------------------------------

local seq = 0

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

--- Run a command (argv list or shell string) and fail the spec with its output if it fails.
function M.sh(cmd, what)
  local r = assert(vsq.exec(cmd, { timeout = 30 }))
  if not r.ok then
    error(("%s failed (%s %s): %s%s"):format(what or (type(cmd) == "table" and table.concat(cmd, " ") or cmd),
      tostring(r.code or ""), tostring(r.signal or ""), r.stdout or "", r.stderr or ""), 2)
  end
  return r.stdout
end

--- A named network namespace vsq-spec-<name>-<pid>-<n> with lo up and multicast on lo.
-- ns:exec(cmd) runs a command (argv or shell string) in it; ns:process(argv, opts) starts one;
-- ns:close() deletes it (and its interfaces).
function M.netns(name)
  seq = seq + 1
  local ns = { name = ("vsq-spec-%s-%d-%d"):format(name, my_pid(), seq) }
  M.sh({ "ip", "netns", "add", ns.name })
  M.sh({ "ip", "-n", ns.name, "link", "set", "lo", "up", "multicast", "on" })
  function ns.argv(cmd)
    local argv = { "ip", "netns", "exec", ns.name }
    if type(cmd) == "string" then
      argv[#argv + 1] = "sh"; argv[#argv + 1] = "-c"; argv[#argv + 1] = cmd
    else
      for _, a in ipairs(cmd) do argv[#argv + 1] = a end
    end
    return argv
  end
  function ns:exec(cmd, what) return M.sh(self.argv(cmd), what) end
  function ns:try(cmd) return assert(vsq.exec(self.argv(cmd), { timeout = 60 })) end
  function ns:process(cmd, opts) return assert(vsq.process(self.argv(cmd), opts)) end
  function ns:close()
    if self.closed then return end
    self.closed = true
    vsq.exec({ "ip", "netns", "del", self.name })
  end
  return setmetatable(ns, { __close = ns.close })
end

--- A veth pair: if1 in ns1 with addr1 (CIDR), if2 in ns2 with addr2; both up.
function M.veth(ns1, if1, addr1, ns2, if2, addr2)
  M.sh({ "ip", "link", "add", if1, "netns", ns1.name, "type", "veth", "peer", "name", if2, "netns", ns2.name })
  for _, side in ipairs({ { ns1, if1, addr1 }, { ns2, if2, addr2 } }) do
    if side[3] then M.sh({ "ip", "-n", side[1].name, "addr", "add", side[3], "dev", side[2] }) end
    M.sh({ "ip", "-n", side[1].name, "link", "set", side[2], "up" })
  end
end

--- Write a vsq script in a scratch directory; returns its path.
function M.script(dir, name, source)
  return tmp.write(dir .. "/" .. name, source, "0755")
end

--- The vsq binary of this tree.
M.vsq = vsqbin.bin
M.top = vsqbin.top

return M
