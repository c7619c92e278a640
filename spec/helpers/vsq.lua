-- spec/helpers/vsq.lua: running the vsq binary and the scripts of this tree from specs.
local tmp = require "helpers.tmp"
local M = {}

local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/helpers/[^/]*$")
M.top = here and (here:sub(1, 1) == "/" and here or (os.getenv("PWD") .. "/" .. here)) or os.getenv("PWD")
if M.top:match("/%.$") then M.top = M.top:sub(1, -3) end
M.bin = M.top .. "/vsq"

--- Run ./vsq with arguments (a list); opts as vsq.exec's. Returns exec's result table.
function M.run(args, opts)
  local argv = { M.bin }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return assert(vsq.exec(argv, opts))
end

--- A copy of the vsq binary (and optionally scripts) in a 0755 directory, for specs that
-- run it as an unprivileged user who cannot reach the build tree.
function M.unprivileged_copy()
  local d = tmp.dir("bin")
  assert(os.execute(("cp %s %s/vsq && cp %s/scripts/vsq-* %s/ 2>/dev/null; chmod -R a+rX %s"):format(
    tmp.quote(M.bin), tmp.quote(d), tmp.quote(M.top), tmp.quote(d), tmp.quote(d))))
  return d
end

--- Run argv as user nobody (setpriv), with PATH led by dir. Returns exec's result table.
function M.as_nobody(argv, opts, dir)
  local cmd = { "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--" }
  for _, a in ipairs(argv) do cmd[#cmd + 1] = a end
  opts = opts or {}
  opts.env = opts.env or {}
  opts.env.PATH = (dir and (dir .. ":") or "") .. "/usr/sbin:/usr/bin:/sbin:/bin"
  opts.env.HOME = "/nonexistent"
  opts.cwd = opts.cwd or dir or "/"
  return assert(vsq.exec(cmd, opts))
end

return M
