-- spec/helpers/plug.lua: what the plug, capture and vsq-plug specs share: frames built by hand
-- (ethernet, IPv4, UDP, DHCP), VDE's stream format, and Debian's vde_switch and vde_plug run
-- as children of the spec.
local tmp = require "helpers.tmp"
local M = {}

--- "52:54:00:12:34:56" -> 6 bytes
function M.mac(text)
  local b = {}
  for h in text:gmatch("%x%x") do b[#b + 1] = string.char(tonumber(h, 16)) end
  assert(#b == 6, "bad MAC " .. text)
  return table.concat(b)
end

function M.mac_text(bytes)
  return (bytes:gsub(".", function(c) return ("%02x:"):format(c:byte()) end):sub(1, -2))
end

M.BROADCAST = M.mac("ff:ff:ff:ff:ff:ff")

--- An ethernet frame; payload is padded to the 60-byte minimum.
function M.ethernet(dst, src, ethertype, payload)
  local frame = dst .. src .. string.pack(">I2", ethertype) .. (payload or "")
  if #frame < 60 then frame = frame .. ("\0"):rep(60 - #frame) end
  return frame
end

--- A test frame of `len` bytes (ethertype 0x88b5, local experimental) whose payload starts
-- with a tag, so that specs can tell frames apart.
function M.test_frame(tag, len, src)
  local payload = tostring(tag)
  local frame = M.BROADCAST .. (src or M.mac("02:00:00:00:00:01")) .. "\x88\xb5" .. payload
  len = len or 64
  if #frame < len then frame = frame .. ("."):rep(len - #frame) end
  return frame
end

--- The tag test_frame put in a frame.
function M.tag(frame)
  return frame:sub(15):match("^[^.]*")
end

local function ip_bytes(text)
  local a, b, c, d = text:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  return string.char(tonumber(a), tonumber(b), tonumber(c), tonumber(d))
end
M.ip_bytes = ip_bytes

function M.ip_text(bytes)
  return ("%d.%d.%d.%d"):format(bytes:byte(1, 4))
end

--- The internet checksum of a string.
function M.checksum(data)
  if #data % 2 == 1 then data = data .. "\0" end
  local sum = 0
  for i = 1, #data, 2 do sum = sum + string.unpack(">I2", data, i) end
  while sum > 0xffff do sum = (sum & 0xffff) + (sum >> 16) end
  return (~sum) & 0xffff
end

--- An IPv4 packet (no options) with a correct header checksum.
function M.ipv4(src, dst, protocol, payload)
  local header = string.pack(">BBI2I2I2BBI2", 0x45, 0, 20 + #payload, 0x1234, 0, 64, protocol, 0)
    .. ip_bytes(src) .. ip_bytes(dst)
  local sum = M.checksum(header)
  return header:sub(1, 10) .. string.pack(">I2", sum) .. header:sub(13) .. payload
end

--- A UDP datagram (checksum 0: none, as IPv4 allows).
function M.udp(sport, dport, payload)
  return string.pack(">I2I2I2I2", sport, dport, 8 + #payload, 0) .. payload
end

--- A DHCPDISCOVER from `mac` (6 bytes) with transaction id xid, as a whole ethernet frame.
function M.dhcp_discover(mac, xid)
  local bootp = string.pack(">BBBBI4I2I2", 1, 1, 6, 0, xid, 0, 0x8000)
    .. ("\0"):rep(16) -- ciaddr yiaddr siaddr giaddr
    .. mac .. ("\0"):rep(10) -- chaddr
    .. ("\0"):rep(64 + 128) -- sname, file
    .. "\99\130\83\99" -- magic cookie
    .. "\53\1\1" -- DHCP message type: DISCOVER
    .. "\55\3\1\3\6" -- parameter request list: netmask, router, DNS
    .. "\255"
  local packet = M.ipv4("0.0.0.0", "255.255.255.255", 17, M.udp(68, 67, bootp))
  return M.ethernet(M.BROADCAST, mac, 0x0800, packet)
end

--- Parse a DHCP reply frame: {type=, xid=, yiaddr=, options={[code]=bytes}} or nil.
function M.parse_dhcp(frame)
  if #frame < 14 + 20 + 8 + 240 or string.unpack(">I2", frame, 13) ~= 0x0800 then return nil end
  local ihl = (frame:byte(15) & 0x0f) * 4
  if frame:byte(15 + 9) ~= 17 then return nil end
  local udp = 15 + ihl
  if string.unpack(">I2", frame, udp + 2) ~= 68 then return nil end
  local bootp = udp + 8
  local reply = { op = frame:byte(bootp), xid = string.unpack(">I4", frame, bootp + 4),
    yiaddr = M.ip_text(frame:sub(bootp + 16, bootp + 19)), options = {} }
  local i = bootp + 240
  while i <= #frame do
    local code = frame:byte(i)
    if code == 255 then break end
    if code == 0 then
      i = i + 1
    else
      local len = frame:byte(i + 1)
      reply.options[code] = frame:sub(i + 2, i + 1 + len)
      i = i + 2 + len
    end
  end
  local t = reply.options[53]
  reply.type = t and t:byte() or nil
  return reply
end

--- VDE's stream format: each frame behind a 2-byte big-endian length.
function M.stream_encode(frames)
  local out = {}
  for _, f in ipairs(frames) do out[#out + 1] = string.pack(">s2", f) end
  return table.concat(out)
end

function M.stream_decode(bytes)
  local frames, i = {}, 1
  while i + 1 <= #bytes do
    local len = string.unpack(">I2", bytes, i)
    if i + 1 + len > #bytes then break end
    frames[#frames + 1] = bytes:sub(i + 2, i + 1 + len)
    i = i + 2 + len
  end
  return frames
end

--- Read one length-prefixed frame from a process stream (nil at EOF).
function M.read_stream_frame(stream, prefix_bytes)
  prefix_bytes = prefix_bytes or 2
  local header = stream:read(prefix_bytes)
  if not header or #header < prefix_bytes then return nil end
  local len = string.unpack(prefix_bytes == 2 and ">I2" or ">I4", header)
  return stream:read(len)
end

--- Wait (polling) until path exists; true, or false after `seconds`.
function M.wait_for_path(path, seconds)
  local deadline = vsq.now() + (seconds or 5)
  while vsq.now() < deadline do
    local f = io.open(path)
    if f then f:close() return true end
    if os.execute("test -e " .. tmp.quote(path)) then return true end
    vsq.sleep(0.01)
  end
  return false
end

--- Debian's vde_switch on a new directory, as a child; returns the process and the directory.
-- Close the process (p:close() or <close>) to kill it.
function M.vde_switch(extra)
  local dir = tmp.dir("sw")
  os.remove(dir) -- vde_switch creates its directory itself
  os.execute("rmdir " .. tmp.quote(dir) .. " 2>/dev/null")
  local argv = { "vde_switch", "-s", dir }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  -- vde_switch reads its console on stdin and leaves at EOF: keep a pipe open
  local p = assert(vsq.process(argv, { stdin = "pipe", stdout = "null", stderr = "null" }))
  assert(M.wait_for_path(dir .. "/ctl"), "vde_switch did not create " .. dir .. "/ctl")
  return p, dir
end

--- Debian's vde_plug on url, as a child with its stdin and stdout piped to us.
function M.vde_plug(url, extra)
  local argv = { "vde_plug" }
  for _, a in ipairs(extra or {}) do argv[#argv + 1] = a end
  argv[#argv + 1] = url
  return assert(vsq.process(argv, { stdin = "pipe", stdout = "pipe" }))
end

--- Receive from an endpoint until a frame satisfies pred (frames of other traffic, such as
-- IPv6 router solicitations, are skipped). Returns the frame or nil, err after `seconds`.
function M.recv_until(ep, pred, seconds)
  local deadline = vsq.now() + (seconds or 5)
  while true do
    local left = deadline - vsq.now()
    if left <= 0 then return nil, "timed out" end
    local frame, err = ep:recv(left)
    if not frame then return nil, err end
    if pred(frame) then return frame end
  end
end

--- A free TCP or UDP port on 127.0.0.1 (best effort: a random high port not listed in use).
function M.free_port()
  for _ = 1, 50 do
    local port = math.random(20000, 60000)
    local p = io.popen(("ss -Hltnu 'sport = :%d' 2>/dev/null"):format(port))
    local used = p:read("a")
    p:close()
    if used == "" then return port end
  end
  error("no free port found")
end

return M
