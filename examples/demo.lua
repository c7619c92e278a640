#!/usr/bin/env vsq
-- examples/demo.lua: what `make demo` runs: a small lab, no root needed.
-- Three kernel-stack hosts (network namespaces) on a vsq switch that also serves a VDE
-- directory; host c sits behind a wire with 20 ms of delay each way. Hosts ping each other,
-- a capture of c's traffic is read back with tcpdump, and the switch shows its state.
local fabric = require "vsq.fabric"
local host = require "vsq.host"

local dir = os.tmpname()
os.remove(dir)
local sw <close> = assert(fabric.switch{ name = "lab", path = dir })
local a <close> = assert(host.new{ name = "a", ip = "10.0.0.1/24", link = sw })
local b <close> = assert(host.new{ name = "b", ip = "10.0.0.2/24", link = sw })
local c <close> = assert(host.new{ name = "c", ip = "10.0.0.3/24" })
local wire <close> = assert(fabric.link(sw, c, { delay = "20ms" }))
local pcap = dir .. ".pcap"
local cap <close> = assert(wire:capture{ file = pcap })

print("== switch serving VDE clients at " .. dir .. " (try: vde_plug vde://" .. dir .. ")")
for _, target in ipairs({ b, c }) do
  local r = a:run({ "ping", "-c", "3", "-i", "0.2", target.ip })
  print(("== a pings %s (%s):"):format(target.name, target.ip))
  print((r.stdout:match("rtt min/avg/max/mdev = [^\n]*") or r.stdout .. r.stderr))
end

-- the hosts ping in parallel, as tasks
local jobs = {}
for _, h in ipairs({ a, b }) do
  jobs[#jobs + 1] = vsq.spawn(function() return h:run({ "ping", "-c", "2", "-i", "0.2", c.ip }).ok end)
end
for i, j in ipairs(jobs) do print(("== %s reached c: %s"):format(({ "a", "b" })[i], select(2, j:join()))) end

cap:close()
print("== what tcpdump reads from the capture of the wire to c:")
local r = vsq.exec({ "tcpdump", "-nn", "-r", pcap, "icmp" })
io.write(r.ok and r.stdout or ("(tcpdump: " .. r.stderr .. ")\n"))
os.remove(pcap)

print("== the switch:")
print(sw)
print("== the wire:")
print(wire)
