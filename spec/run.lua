-- spec/run.lua: runs the busted specs inside vsq, so every `it` is a task on the loop.
-- usage: ./vsq spec/run.lua [busted options] [spec files or directories]
-- The run ends with the line "N passed, N failed" (and ", N skipped").
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "spec"
package.path = here .. "/?.lua;" .. here .. "/?/init.lua;" .. package.path

local args, has_path = {}, false
for i = 1, #arg do
  args[#args + 1] = arg[i]
  if arg[i]:sub(1, 1) ~= "-" and (arg[i - 1] or ""):sub(1, 1) ~= "-" then has_path = true end
end
if not has_path then args[#args + 1] = here end
table.insert(args, 1, "--output=" .. here .. "/helpers/output.lua")
table.insert(args, 1, "--pattern=_spec")
for i = #arg, 1, -1 do arg[i] = nil end
for i, a in ipairs(args) do arg[i] = a end

require "busted.runner" ({ standalone = false })
