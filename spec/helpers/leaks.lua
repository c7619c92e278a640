-- spec/helpers/leaks.lua: what a spec run must not leave behind: child processes, socket
-- files and directories under the specs' scratch root, network namespaces named vsq-spec-*.
local tmp = require "helpers.tmp"
local M = {}

local function my_pid()
  local f = assert(io.open("/proc/self/stat"))
  local pid = f:read("n")
  f:close()
  return pid
end

--- Processes whose parent is this vsq (they should all have been waited for).
function M.children()
  local pid, kids = my_pid(), {}
  local p = io.popen("ps -o pid=,stat=,args= --ppid " .. pid)
  for line in p:lines() do
    local kpid, stat, args = line:match("^%s*(%d+)%s+(%S+)%s+(.*)$")
    if kpid and not args:match("ps %-o pid=") then
      kids[#kids + 1] = ("process %s (%s) %s"):format(kpid, stat, args)
    end
  end
  p:close()
  return kids
end

local function netns_names()
  local names = {}
  local p = io.popen("ip netns list 2>/dev/null")
  if p then
    for line in p:lines() do
      local name = line:match("^(%S+)")
      if name then names[name] = true end
    end
    p:close()
  end
  return names
end

-- namespaces that were there before the run are not the run's doing
local netns_before = netns_names()

function M.check()
  local found = M.children()
  for _, what in ipairs(tmp.leftovers()) do found[#found + 1] = what end
  for name in pairs(netns_names()) do
    if not netns_before[name] then found[#found + 1] = "network namespace " .. name end
  end
  table.sort(found)
  return found
end

function M.cleanup()
  tmp.remove_root()
end

return M
