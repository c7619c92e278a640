-- spec/helpers/tmp.lua: scratch directories for specs, under one root per run, so the run can
-- check that nothing (socket files above all) was left behind.
local M = {}
local root
local seq = 0

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
M.quote = quote

function M.root()
  if not root then
    local f = assert(io.open("/proc/self/stat"))
    local pid = f:read("n")
    f:close()
    root = (os.getenv("TMPDIR") or "/tmp") .. "/vsq-spec-" .. pid
    sh("rm -rf " .. quote(root) .. " && mkdir -p -m 0755 " .. quote(root))
  end
  return root
end

--- A new empty directory (mode 0755 so that specs run as nobody can use it too).
function M.dir(name)
  seq = seq + 1
  local d = ("%s/%s%d"):format(M.root(), name or "d", seq)
  assert(sh("mkdir -p -m 0755 " .. quote(d)))
  return d
end

--- Remove a directory made by M.dir.
function M.remove(d)
  assert(d:sub(1, #M.root()) == M.root(), "not a spec scratch directory: " .. d)
  sh("rm -rf " .. quote(d))
end

--- Socket files and directories still under the root.
function M.leftovers()
  if not root then return {} end
  local found = {}
  local p = io.popen("find " .. quote(root) .. " -mindepth 1 -maxdepth 1 2>/dev/null")
  for line in p:lines() do found[#found + 1] = "scratch entry " .. line end
  p:close()
  return found
end

function M.remove_root()
  if root then sh("rm -rf " .. quote(root)) end
end

--- Write a file (for scripts and fixtures); returns its path.
function M.write(path, content, mode)
  local f = assert(io.open(path, "w"))
  f:write(content)
  f:close()
  if mode then sh(("chmod %s %s"):format(mode, quote(path))) end
  return path
end

return M
