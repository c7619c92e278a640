--- vsq.repl: the interactive prompt. The prompt is one more thing the event loop waits on,
-- so timers, tasks, switches and stacks keep running while you type. Each statement runs
-- as a task; Ctrl-C cancels it (or clears the line being typed); Ctrl-D leaves.
local vsq = require "vsq"
local rl = require "vsq.readline"
local pretty = require "vsq.pretty"

local M = {}
local core = vsq._core

local PROMPT, PROMPT2 = "> ", ">> "

local function print_values(n, ...)
  if n == 0 then return end
  local out = {}
  for i = 1, n do out[i] = pretty.format((select(i, ...))) end
  io.write(table.concat(out, "\t"), "\n")
end

local function compile(src)
  -- an expression first ("1+1" prints 2), then a statement; "=expr" as in Lua 5.1
  if src:sub(1, 1) == "=" then src = "return " .. src:sub(2) end
  local fn = load("return " .. src, "=stdin", "t")
  if fn then return fn end
  return load(src, "=stdin", "t")
end

local function incomplete(err)
  return err and err:sub(-5) == "<eof>"
end

--- The names that complete `word` (globals, fields after "." and methods after ":").
function M.complete(word)
  local path, sep, partial = word:match("^(.-)([%.:])([%w_]*)$")
  local base
  if path then
    base = _ENV
    for part in path:gmatch("[^%.:]+") do
      if type(base) ~= "table" and not (getmetatable(base) or {}).__index then return {} end
      local ok, v = pcall(function() return base[part] end)
      if not ok or v == nil then return {} end
      base = v
    end
  else
    base, partial, path, sep = _ENV, word, "", ""
  end
  local names, seen = {}, {}
  local function add_from(t, depth)
    if depth > 4 or type(t) ~= "table" then return end
    for k, v in pairs(t) do
      if type(k) == "string" and k:sub(1, #partial) == partial and not seen[k]
        and k:match("^[%a_][%w_]*$") and (sep ~= ":" or type(v) == "function") then
        seen[k] = true
        names[#names + 1] = path .. sep .. k
      end
    end
    local mt = getmetatable(t)
    if type(mt) == "table" and type(mt.__index) == "table" then add_from(mt.__index, depth + 1) end
  end
  if type(base) == "table" then add_from(base, 0) end
  local mt = getmetatable(base)
  if type(mt) == "table" and type(mt.__index) == "table" then add_from(mt.__index, 1) end
  table.sort(names)
  return names
end

--- Run the REPL until end of input (Ctrl-D). Called by the vsq interpreter.
function M.start()
  local buffer, running, done = nil, nil, false
  local stdin_w

  local original_print = print
  -- output from tasks while the prompt waits must not mangle the line being typed
  _G.print = function(...)
    if not running then rl.hide() end
    original_print(...)
    io.stdout:flush()
    if not running then rl.show() end
  end

  local function prompt(p)
    rl.install(p, M._on_line, function(word) return M.complete(word) end)
    stdin_w = core.watch(0, "r", function() rl.read_char() end)
  end

  local function pause_prompt()
    if stdin_w then stdin_w:stop() stdin_w = nil end
    rl.remove()
  end

  local function run_statement(fn, src)
    pause_prompt()
    rl.add_history(src)
    running = vsq.spawn_named("repl", function() return fn() end)
    running.reported = true -- the REPL prints the error itself
    vsq.spawn_named("repl-wait", function()
      local r = table.pack(running:join())
      local t = running
      running = nil
      if r[1] then
        print_values(r.n - 1, table.unpack(r, 2, r.n))
      elseif t.status == "cancelled" then
        io.stderr:write("interrupted\n")
      else
        io.stderr:write(t.traceback or tostring(r[2]), "\n")
      end
      io.stdout:flush()
      if not done then prompt(PROMPT) end
    end)
  end

  function M._on_line(line)
    if line == nil then -- Ctrl-D
      io.write("\n")
      done = true
      pause_prompt()
      return
    end
    local src = buffer and (buffer .. "\n" .. line) or line
    if not buffer and line:match("^%s*$") then return end
    local fn, err = compile(src)
    if not fn and incomplete(err) then
      buffer = src
      rl.remove()
      rl.install(PROMPT2, M._on_line, function(word) return M.complete(word) end)
      return
    end
    buffer = nil
    if not fn then
      rl.add_history(src)
      io.stderr:write(err, "\n")
      rl.remove()
      rl.install(PROMPT, M._on_line, function(word) return M.complete(word) end)
      return
    end
    run_statement(fn, src)
  end

  vsq._on_signal = function(signo, interrupted_running_code)
    if signo ~= 2 then done = true; pause_prompt(); return end
    if interrupted_running_code then return end
    if running then
      running:cancel()
    else
      buffer = nil
      rl.cancel_line()
      rl.remove()
      rl.install(PROMPT, M._on_line, function(word) return M.complete(word) end)
    end
  end

  local home = os.getenv("HOME")
  if home and rl.isatty(0) and not os.getenv("VSQ_NO_HISTORY") then
    pcall(rl.history_file, home .. "/.vsq_history")
  end
  prompt(PROMPT)
  while not done do
    core.run_once()
  end
  pause_prompt()
  _G.print = original_print
  vsq._on_signal = nil
end

return M
