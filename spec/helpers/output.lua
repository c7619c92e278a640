-- spec/helpers/output.lua: busted output for vsq: a line per spec, failures in full, and the
-- closing line "N passed, N failed" (CI reads it). What the run left behind counts as failed.
local leaks = require "helpers.leaks"

return function(options)
  local busted = require "busted"
  local handler = require "busted.outputHandlers.base"()
  local passed, failed, skipped = 0, 0, 0
  local started = {}

  local function name_of(element) return handler.getFullName(element) end

  local function show_failure(kind, t)
    local msg = t.message
    if type(msg) ~= "string" then msg = require("pl.pretty").write(msg) end
    local where = t.element and t.element.trace and
        (t.element.trace.short_src .. ":" .. t.element.trace.currentline) or "?"
    io.write(("FAIL  %s (%s)\n      %s\n"):format(t.name or "?", where, (msg or "nil"):gsub("\n", "\n      ")))
    if t.trace and t.trace.traceback and os.getenv("VSQ_SPEC_TRACE") then
      io.write(t.trace.traceback, "\n")
    end
  end

  handler.testStart = function(element)
    started[element] = vsq.now()
    return nil, true
  end

  handler.testEnd = function(element, parent, status)
    local secs = started[element] and (vsq.now() - started[element]) or 0
    started[element] = nil
    if status == "success" then
      passed = passed + 1
      io.write(("ok    %s (%.2fs)\n"):format(name_of(element), secs))
    elseif status == "pending" then
      skipped = skipped + 1
      io.write(("skip  %s\n"):format(name_of(element)))
    elseif status == "failure" then
      failed = failed + 1
      show_failure("failure", handler.failures[#handler.failures])
    elseif status == "error" then
      failed = failed + 1
      show_failure("error", handler.errors[#handler.errors])
    end
    io.flush()
    return nil, true
  end

  handler.error = function(element)
    if element.descriptor ~= "it" then
      failed = failed + 1
      show_failure("error", handler.errors[#handler.errors])
    end
    io.flush()
    return nil, true
  end

  handler.suiteEnd = function()
    for _, what in ipairs(leaks.check()) do
      failed = failed + 1
      io.write(("FAIL  the specs left something behind: %s\n"):format(what))
    end
    leaks.cleanup()
    local line = ("%d passed, %d failed"):format(passed, failed)
    if skipped > 0 then line = line .. (", %d skipped"):format(skipped) end
    io.write(line, "\n")
    io.flush()
    return nil, true
  end

  busted.subscribe({ "test", "start" }, handler.testStart, { predicate = handler.cancelOnPending })
  busted.subscribe({ "test", "end" }, handler.testEnd, { predicate = handler.cancelOnPending })
  busted.subscribe({ "error" }, handler.error)
  busted.subscribe({ "suite", "end" }, handler.suiteEnd)
  return handler
end
