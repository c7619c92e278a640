-- bench/fabric_wire.lua: what impaired wires deliver, against Debian's wirefilter.
-- Two Debian vde_switches are joined by the cable under test (vsq-wire, or wirefilter as the
-- anchor); a vde_plug on each switch sends and receives frames for this script, the same way
-- for both. Measured, as medians of 3 runs:
--   bandwidth 100 Mbit/s: the rate of 1500-byte frames delivered while 150 Mbit/s is offered
--     (goal 95-100 Mbit/s);
--   delay 10 ms: the one-way delay of 1000 frames sent at 1000 frames/s (goal median 10-11
--     ms, and 90% of frames within 1 ms of the setting).
-- Usage: ./vsq bench/fabric_wire.lua
local vsq = require "vsq"

local top = (debug.getinfo(1, "S").source:match("^@(.*)/bench/[^/]*$") or ".")
if top:sub(1, 1) ~= "/" then top = (os.getenv("PWD") or ".") .. "/" .. top end
local VSQ = arg[-1] or "vsq"
if VSQ:find("/") and VSQ:sub(1, 1) ~= "/" then VSQ = (os.getenv("PWD") or ".") .. "/" .. VSQ end
local RUNS = 3

local dir = assert(vsq.exec({ "mktemp", "-d", "/tmp/vsq-bench-wire.XXXXXX" })).stdout:gsub("\n", "")
local procs = {}

local function start(argv, opts)
  local p = assert(vsq.process(argv, opts or { stdin = "pipe", stdout = "null", stderr = "null" }))
  procs[#procs + 1] = p
  return p
end

local function stop(p)
  if p:running() then p:kill("TERM") end
  p:wait(5)
  p:close()
end

local function median(t)
  table.sort(t)
  return t[(#t + 1) // 2]
end

-- the two switches, for every run
local s1, s2 = dir .. "/s1", dir .. "/s2"
start({ "vde_switch", "-s", s1 })
start({ "vde_switch", "-s", s2 })
for _ = 1, 100 do
  if vsq.exec({ "test", "-S", s1 .. "/ctl", "-a", "-S", s2 .. "/ctl" }).ok then break end
  vsq.sleep(0.05)
end

local cables = {
  ["vsq-wire"] = function(opts)
    local argv = { VSQ, top .. "/scripts/vsq-wire", "--nostdin" }
    for _, o in ipairs(opts) do argv[#argv + 1] = o end
    argv[#argv + 1] = "vde://" .. s1
    argv[#argv + 1] = "vde://" .. s2
    return argv
  end,
  wirefilter = function(opts)
    local argv = { "wirefilter" }
    for _, o in ipairs(opts) do argv[#argv + 1] = o end
    argv[#argv + 1] = "-v"
    argv[#argv + 1] = s1 .. ":" .. s2
    return argv
  end,
}

local function frame(size, stamp)
  local f = ("\255"):rep(6) .. "\2\0\0\0\0\1\136\181" .. string.pack("<d", stamp)
  f = f .. ("\0"):rep(size - #f)
  return string.pack(">I2", #f) .. f
end

-- Read frames from a vde_plug's stdout, calling fn(frame) for each.
local function reader(stream, fn)
  return vsq.spawn(function()
    while true do
      local hdr = stream:read(2)
      if not hdr or #hdr < 2 then return end
      local f = stream:read(string.unpack(">I2", hdr))
      if not f then return end
      fn(f)
    end
  end)
end

-- One measurement: the cable with `opts` between the switches, a sender on s1 and a receiver
-- on s2; fn(send_stream, on_frame_setter) does the traffic and returns the figure.
local function with_cable(name, opts, fn)
  local cable = start(cables[name](opts))
  local tx = start({ "vde_plug", "vde://" .. s1 })
  local rx = start({ "vde_plug", "vde://" .. s2 }, { stdin = "pipe", stdout = "pipe", stderr = "null" })
  local handler
  local task = reader(rx.stdout, function(f) if handler then handler(f) end end)
  -- wait until a probe crosses
  local crossed = false
  handler = function() crossed = true end
  for _ = 1, 200 do
    tx.stdin:write(frame(100, vsq.now()))
    vsq.sleep(0.05)
    if crossed then break end
  end
  assert(crossed, name .. ": nothing crossed the cable")
  vsq.sleep(0.3)
  local result = fn(tx.stdin, function(h) handler = h end)
  handler = nil
  stop(rx) -- the reader sees the end of its output
  task:join(5)
  stop(tx)
  stop(cable)
  return result
end

local function bandwidth(name, opts)
  return with_cable(name, opts, function(tx, on_frame)
    local t0 = vsq.now()
    local from, to = t0 + 1, t0 + 4
    local bytes = 0
    on_frame(function(f)
      local t = vsq.now()
      if t >= from and t < to and #f == 1500 then bytes = bytes + #f end
    end)
    -- 150 Mbit/s offered: 25 frames every 2 ms
    local batch = frame(1500, 0):rep(25)
    local tick = t0
    while tick < to do
      tx:write(batch)
      tick = tick + 0.002
      local wait = tick - vsq.now()
      if wait > 0 then vsq.sleep(wait) end
    end
    vsq.sleep(to - vsq.now() > 0 and to - vsq.now() or 0)
    return bytes * 8 / (to - from) / 1e6
  end)
end

local function delay(name, opts)
  return with_cable(name, opts, function(tx, on_frame)
    local samples = {}
    on_frame(function(f)
      if #f == 64 then samples[#samples + 1] = (vsq.now() - string.unpack("<d", f, 15)) * 1e3 end
    end)
    local start = vsq.now()
    for i = 1, 1000 do
      tx:write(frame(64, vsq.now()))
      vsq.sleep_until(start + i * 0.001)
    end
    vsq.sleep(0.2)
    assert(#samples > 900, name .. ": only " .. #samples .. " of 1000 frames arrived")
    local within = 0
    for _, ms in ipairs(samples) do
      if ms >= 10 and ms <= 11 then within = within + 1 end
    end
    return { median(samples), within / #samples }
  end)
end

-- the median over RUNS of each figure a test returns (one number, or a table of them)
local function measure(test, name, opts)
  local runs = {}
  for i = 1, RUNS do
    local r = test(name, opts)
    runs[i] = type(r) == "table" and r or { r }
  end
  local medians = {}
  for k = 1, #runs[1] do
    local column = {}
    for i = 1, RUNS do column[i] = runs[i][k] end
    medians[k] = median(column)
  end
  return table.unpack(medians)
end

local ok, err = pcall(function()
  local ours = measure(bandwidth, "vsq-wire", { "-b", "100mbit" })
  local anchor = measure(bandwidth, "wirefilter", { "-b", "12500000" })
  print(("fabric_wire bandwidth 100 Mbit/s, 1500-byte frames: vsq-wire %.2f Mbit/s, anchor " ..
    "wirefilter %.2f Mbit/s, ratio %.3f (goal 95-100 Mbit/s: %s)"):format(ours, anchor, ours / anchor,
    ours >= 95 and ours <= 100.5 and "met" or "not met"))
  local within, anchor_within
  ours, within = measure(delay, "vsq-wire", { "-d", "10" })
  anchor, anchor_within = measure(delay, "wirefilter", { "-d", "10" })
  print(("fabric_wire delay 10 ms at 1000 frames/s: vsq-wire median %.2f ms (%.0f%% within 10-11 ms), " ..
    "anchor wirefilter median %.2f ms (%.0f%%), ratio %.3f (goal median 10-11 ms: %s)"):format(ours,
    100 * within, anchor, 100 * anchor_within, ours / anchor, ours >= 10 and ours <= 11 and "met" or "not met"))
end)
for i = #procs, 1, -1 do pcall(stop, procs[i]) end
vsq.exec({ "rm", "-rf", dir })
if not ok then
  io.stderr:write("fabric_wire: ", tostring(err), "\n")
  os.exit(1)
end
