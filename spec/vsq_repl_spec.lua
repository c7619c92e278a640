-- The REPL, driven through a pseudo-terminal (util-linux `script`), as a person uses it.
local h = require "helpers.vsq"

-- A REPL session: send keys, wait for what the screen shows.
local function session()
  local p = assert(vsq.process({ "script", "-qfec", h.bin, "/dev/null" },
    { stdin = "pipe", stdout = "pipe", env = { VSQ_NO_HISTORY = "1", TERM = "dumb" } }))
  local s = { p = p, seen = "" }
  --- Wait until the output since the last expect matches pattern; returns that output.
  function s.expect(pattern, timeout)
    local deadline = vsq.now() + (timeout or 10)
    while true do
      local from, to = s.seen:find(pattern)
      if from then
        local got = s.seen:sub(1, to)
        s.seen = s.seen:sub(to + 1)
        return got
      end
      local left = deadline - vsq.now()
      if left <= 0 then error(("REPL never showed %q; it showed %q"):format(pattern, s.seen), 2) end
      local chunk = p.stdout:read(4096, left)
      if not chunk then error(("REPL ended before showing %q; it showed %q"):format(pattern, s.seen), 2) end
      s.seen = s.seen .. chunk:gsub("\27%[[%d;?]*[a-zA-Z]", ""):gsub("[\r\7]", "")
    end
  end
  function s.send(keys) p.stdin:write(keys) end
  function s.close()
    p.stdin:close()
    p:wait(5)
    p:close()
  end
  s.expect("> ")
  return s
end

describe("the REPL", function()
  local s
  before_each(function() s = session() end)
  after_each(function() s.close() end)

  it("prints the value of an expression", function()
    s.send("1+1\n")
    assert.matches("\n2\n> ", s.expect("\n> "))
  end)

  it("keeps the loop running while the prompt waits", function()
    s.send('vsq.spawn(function() vsq.sleep(0.2) print("tick") end)\n')
    s.expect("> ")
    -- nothing more is typed: the task still wakes and prints
    s.expect("tick")
  end)

  it("continues an unfinished statement on the next line", function()
    s.send("for i = 1, 2 do\n")
    s.expect(">> ")
    s.send("print('line', i) end\n")
    local out = s.expect("> ")
    assert.matches("line\t1\nline\t2", out)
  end)

  it("pretty-prints tables", function()
    s.send("{ b = { c = 2 }, a = 1, 'x' }\n")
    assert.matches('{ "x", a = 1, b = { c = 2 } }', s.expect("\n> "), 1, true)
  end)

  it("completes globals and fields with tab", function()
    s.send("vsq.wai\t")
    s.expect("vsq%.wait_fd")
    s.send("\21\n") -- erase the line
    s.expect("> ")
  end)

  it("interrupts a running statement on Ctrl-C and stays up", function()
    s.send("vsq.sleep(30)\n")
    vsq.sleep(0.2)
    s.send("\3")
    s.expect("interrupted")
    s.send("while true do end\n")
    vsq.sleep(0.2)
    s.send("\3")
    s.expect("interrupted!")
    s.send("print('still here')\n")
    s.expect("still here")
  end)

  it("reports errors with a traceback and goes on", function()
    s.send("error('oops')\n")
    assert.matches("oops", s.expect("stack traceback"))
    s.send("print(40 + 2)\n")
    s.expect("42")
  end)

  it("leaves on Ctrl-D", function()
    s.send("\4")
    assert.are.same({ true, "exit", 0 }, { s.p:wait(5) })
  end)
end)
