#!/usr/bin/env vsq
-- multihost_lan.lua: one Ethernet LAN spanning two machines.
--
-- Each "machine" is a network namespace running its own vsq process: a switch with the
-- machine's host on one port and a vxvde:// endpoint on another, through a wire that adds WAN
-- delay. The machines reach each other over a veth pair, and vxvde carries the LAN between
-- them as VXLAN over UDP multicast (and learnt unicast). Each host is a further namespace
-- holding a tap that its machine's vsq serves. The hosts ping each other and talk TCP.
--
--   h1 [tap lan0] --- m1: vsq (switch + wire + vxvde) ===veth=== m2: vsq (...) --- [tap lan0] h2
--
-- Run as root:   vsq examples/multihost_lan.lua
-- (One machine's part, which the lab starts inside each machine namespace:
--   vsq examples/multihost_lan.lua machine TAPNAME VXVDE-URL [DELAY])
local vsq = require "vsq"
local fabric = require "vsq.fabric"

-- ---- one machine: the vsq process inside a machine namespace --------------------------------

if arg[1] == "machine" then
  local tap_name, url, delay = arg[2], arg[3], arg[4]
  local sw = fabric.switch { name = "lan" }
  local lan = assert(fabric.open(url))
  local host = assert(fabric.open("tap://" .. tap_name))
  fabric.link(sw, host)
  local wan = fabric.link(sw, lan, { delay = delay or "0ms" })
  print("ready")
  io.stdout:flush()
  vsq.run() -- until SIGTERM
  local s = wan:stats()
  print(("wire: %d frames to the LAN, %d from it"):format(s.LR.out_frames, s.RL.out_frames))
  print(tostring(lan))
  io.stdout:flush()
  wan:close()
  host:close()
  lan:close()
  sw:close()
  return
end

-- ---- the lab ----------------------------------------------------------------------------------

local here = arg[0]
if here:sub(1, 1) ~= "/" then here = (os.getenv("PWD") or ".") .. "/" .. here end
local vsq_bin = arg[-1] or "vsq"
if vsq_bin:sub(1, 1) ~= "/" and vsq_bin:find("/") then vsq_bin = (os.getenv("PWD") or ".") .. "/" .. vsq_bin end

local stat = assert(io.open("/proc/self/stat"))
local prefix = ("vsq-lab-%d-"):format(stat:read("n"))
stat:close()
local ns = { m1 = prefix .. "m1", m2 = prefix .. "m2", h1 = prefix .. "h1", h2 = prefix .. "h2" }
local URL = "vxvde://239.30.0.1/port=14789/vni=30/if=eth0"
local machines = {}

local function run(argv)
  local r = assert(vsq.exec(argv, { timeout = 30 }))
  if not r.ok then
    error(("%s: %s%s"):format(table.concat(argv, " "), r.stdout or "", r.stderr or ""), 2)
  end
  return r.stdout
end

local function inside(name, cmd)
  return run({ "ip", "netns", "exec", ns[name], "sh", "-c", cmd })
end

local function take_down()
  for _, p in pairs(machines) do
    if p:running() then p:kill("TERM") end
    p:wait(5)
  end
  for _, name in pairs(ns) do vsq.exec({ "ip", "netns", "del", name }) end
end

local function lab()
  -- four namespaces: two machines, a host for each
  for _, name in pairs(ns) do
    run({ "ip", "netns", "add", name })
    run({ "ip", "-n", name, "link", "set", "lo", "up" })
  end
  -- the machines' own network: a veth pair
  run({ "ip", "link", "add", "eth0", "netns", ns.m1, "type", "veth", "peer", "name", "eth0", "netns", ns.m2 })
  inside("m1", "ip addr add 10.30.0.1/24 dev eth0 && ip link set eth0 up")
  inside("m2", "ip addr add 10.30.0.2/24 dev eth0 && ip link set eth0 up")

  -- a vsq process on each machine; its tap then moves into the machine's host namespace
  for i, m in ipairs({ "m1", "m2" }) do
    local p = assert(vsq.process({ "ip", "netns", "exec", ns[m], vsq_bin, here, "machine", "lan0", URL, "5ms" },
      { stdout = "pipe" }))
    machines[m] = p
    assert(p.stdout:read("l", 10) == "ready", m .. ": vsq did not start")
    local h = "h" .. i
    run({ "ip", "-n", ns[m], "link", "set", "lan0", "netns", ns[h] })
    inside(h, ("ip addr add 192.168.30.%d/24 dev lan0 && ip link set lan0 up"):format(i))
  end

  -- ping both ways
  for _, pair in ipairs({ { "h1", 2 }, { "h2", 1 } }) do
    local out = inside(pair[1], ("ping -c 3 -i 0.2 -W 2 192.168.30.%d"):format(pair[2]))
    print(("%s -> 192.168.30.%d: %s"):format(pair[1], pair[2], out:match("(%d+ packets transmitted[^\n]*)")))
  end

  -- TCP: h2 listens and answers, h1 connects and says hello
  local server = assert(vsq.process({ "ip", "netns", "exec", ns.h2, "sh", "-c",
    "echo 'hello from h2' | nc -N -l 192.168.30.2 7000" }, { stdout = "pipe" }))
  for _ = 1, 100 do
    if inside("h2", "ss -ltn"):find("192.168.30.2:7000", 1, true) then break end
    vsq.sleep(0.05)
  end
  local answer = inside("h1", "echo 'hello from h1' | nc -N -w 5 192.168.30.2 7000")
  local heard = server.stdout:read("a", 10)
  server:wait(5)
  print("h1 heard over TCP: " .. answer:gsub("\n$", ""))
  print("h2 heard over TCP: " .. heard:gsub("\n$", ""))

  -- the machines report what crossed their part of the LAN
  for _, m in ipairs({ "m1", "m2" }) do
    machines[m]:kill("TERM")
    for line in machines[m].stdout:lines() do print(m .. ": " .. line) end
    machines[m]:wait(5)
  end
end

local ok, err = pcall(lab)
take_down()
if not ok then
  io.stderr:write("multihost_lan: ", tostring(err), "\n")
  os.exit(1)
end
