#!/usr/bin/env vsq
-- examples/demo.lua: what `make demo` runs. Tasks on one loop: a ticker, a child process read
-- line by line, and a join, all written in blocking style.
local ticks = 0
local ticker = vsq.timer(0, 0.1, function() ticks = ticks + 1 end)

local p <close> = vsq.process({ "sh", "-c", "for i in 1 2 3; do echo step $i; sleep 0.1; done" },
  { stdout = "pipe" })
for line in p.stdout:lines() do print("child says: " .. line) end
local _, how, code = p:wait()
print(("child ended (%s %d); the timer ticked %d times meanwhile"):format(how, code, ticks))

local workers = {}
for i = 1, 3 do
  workers[i] = vsq.spawn(function() vsq.sleep(0.05 * i) return i * i end)
end
for i, w in ipairs(workers) do print("worker " .. i .. " returned", select(2, w:join())) end
ticker:stop()
