-- spec/helpers/vu.lua: running commands under views in specs: vsq-run with its output captured,
-- small C programs compiled once per run, and runs as an unprivileged user.
local tmp = require "helpers.tmp"
local hv = require "helpers.vsq"
local M = {}

M.vsq_run = hv.top .. "/scripts/vsq-run"

--- vsq-run with the given arguments (a list); returns vsq.exec's table {ok, code, stdout, stderr}.
function M.run(args, opts)
  local argv = { hv.bin, M.vsq_run }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  opts = opts or {}
  opts.timeout = opts.timeout or 60
  return assert(vsq.exec(argv, opts))
end

--- Run a shell script under the view options `view` (a list of vsq-run options).
function M.sh(view, script, opts)
  local args = {}
  for _, a in ipairs(view) do args[#args + 1] = a end
  args[#args + 1] = "--"
  args[#args + 1] = "sh"
  args[#args + 1] = "-c"
  args[#args + 1] = script
  return M.run(args, opts)
end

local built, dirs = {}, {}

--- Remove what the helpers made (call it in teardown).
function M.cleanup()
  for _, d in ipairs(dirs) do tmp.remove(d) end
  dirs, built, M._copy = {}, {}, nil
end

--- Compile C source `src` into a program named `name` (in a 0755 scratch dir, so that nobody can
-- run it too); returns its path. Extra compiler flags in `flags` (a string).
function M.cc(name, src, flags)
  local key = name .. (flags or "")
  if built[key] then return built[key] end
  local d = tmp.dir("cc")
  dirs[#dirs + 1] = d
  local f = assert(io.open(d .. "/" .. name .. ".c", "w"))
  f:write(src)
  f:close()
  local out = d .. "/" .. name
  local r = assert(vsq.exec({ "sh", "-c", ("cc -O1 -o %s %s %s -lpthread"):format(
    tmp.quote(out), tmp.quote(d .. "/" .. name .. ".c"), flags or "") }))
  assert(r.ok, "cannot compile " .. name .. ": " .. (r.stderr or ""))
  os.execute("chmod -R a+rX " .. tmp.quote(d))
  built[key] = out
  return out
end

--- vsq-run as user nobody (setpriv) with the given arguments; returns vsq.exec's table.
function M.run_as_nobody(args, opts)
  if not M._copy then
    M._copy = hv.unprivileged_copy()
    dirs[#dirs + 1] = M._copy
  end
  local copy = M._copy
  local argv = { copy .. "/vsq", copy .. "/vsq-run" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  opts = opts or {}
  opts.timeout = opts.timeout or 60
  return hv.as_nobody(argv, opts, copy)
end

--- Write `content` to file `path`.
function M.write(path, content)
  local f = assert(io.open(path, "w"))
  f:write(content)
  f:close()
end

--- The content of file `path`, or nil.
function M.read(path)
  local f = io.open(path)
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

return M
