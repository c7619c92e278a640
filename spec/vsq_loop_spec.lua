-- The loop: tasks, sleeping, timers, fds and signals, as scripts rely on them.
local h = require "helpers.vsq"

describe("vsq tasks", function()
  it("wake from sleep in the order of their deadlines, across 1000 tasks", function()
    local woke, tasks = {}, {}
    for i = 1, 1000 do
      local delay = (1000 - i) * 0.0002 -- the last spawned sleeps least
      tasks[i] = vsq.spawn(function() vsq.sleep(delay) woke[#woke + 1] = i end)
    end
    for _, t in ipairs(tasks) do t:join() end
    assert.are.equal(1000, #woke)
    assert.are.equal(1000, woke[1]) -- zero delay first
  end)

  it("wake in deadline order with sleep_until, across 1000 tasks started in any order", function()
    local woke, tasks = {}, {}
    local start = vsq.now() + 0.05
    for i = 1, 1000 do
      local deadline = start + ((i * 7919) % 1000) * 0.0001 -- a permutation of the slots
      tasks[i] = vsq.spawn(function() vsq.sleep_until(deadline) woke[#woke + 1] = (i * 7919) % 1000 end)
    end
    for _, t in ipairs(tasks) do t:join() end
    assert.are.equal(1000, #woke)
    for k = 1, 1000 do assert.are.equal(k - 1, woke[k]) end
  end)

  it("run after the spawning task yields, not inside spawn", function()
    local log = {}
    local t = vsq.spawn(function() log[#log + 1] = "task" end)
    log[#log + 1] = "spawner"
    t:join()
    assert.are.same({ "spawner", "task" }, log)
  end)

  it("return their results through join", function()
    local t = vsq.spawn(function(a, b) vsq.sleep(0.001) return a + b, "x" end, 2, 3)
    assert.are.same({ true, 5, "x" }, { t:join() })
    assert.are.equal("done", t.status)
  end)

  it("give their error and traceback to join instead of losing them", function()
    local t = vsq.spawn(function() error("task broke") end)
    local ok, err, tb = t:join()
    assert.is_false(ok)
    assert.matches("task broke", err)
    assert.matches("stack traceback", tb)
  end)

  it("report an error nobody joins on stderr with its traceback", function()
    local r = h.run({ "-e", "vsq.spawn(function() error('lost?') end)" })
    assert.matches("lost%?", r.stderr)
    assert.matches("stack traceback", r.stderr)
  end)

  it("still report an error after a join that timed out", function()
    local r = h.run({ "-e", "local t = vsq.spawn(function() vsq.sleep(0.05) error('late failure') end) print(t:join(0.01))" })
    assert.are.equal("nil\ttimeout\t110\n", r.stdout)
    assert.matches("late failure", r.stderr)
  end)

  it("can be joined with a timeout", function()
    local t = vsq.spawn(function() vsq.sleep(1) end)
    assert.are.same({ nil, "timeout", 110 }, { t:join(0.01) })
    t:cancel()
    assert.are.same({ false, "cancelled" }, { t:join() })
  end)

  it("can be cancelled while sleeping", function()
    local after = false
    local t = vsq.spawn(function() vsq.sleep(10) after = true end)
    vsq.sleep(0.01)
    assert.is_true(t:cancel())
    assert.are.same({ false, "cancelled" }, { t:join() })
    assert.is_false(after)
  end)

  it("go on after a plain coroutine.yield, and a cancel reaches them at their next wait", function()
    local steps = 0
    local t = vsq.spawn(function()
      for _ = 1, 3 do coroutine.yield() steps = steps + 1 end
      vsq.sleep(10)
    end)
    vsq.yield()
    t:cancel()
    assert.are.same({ false, "cancelled" }, { t:join() })
    assert.are.equal(3, steps)
  end)

  it("close their to-be-closed variables when they fail or are cancelled", function()
    local closed = {}
    local function guard(name) return setmetatable({}, { __close = function() closed[#closed + 1] = name end }) end
    local failing = vsq.spawn(function() local g <close> = guard("failed") vsq.sleep(0) error("boom") end)
    local sleeping = vsq.spawn(function() local g <close> = guard("cancelled") vsq.sleep(10) end)
    vsq.sleep(0.01)
    sleeping:cancel()
    failing:join()
    sleeping:join()
    table.sort(closed)
    assert.are.same({ "cancelled", "failed" }, closed)
  end)

  it("can be cancelled while waiting on a pipe", function()
    local p <close> = vsq.process({ "sleep", "5" }, { stdout = "pipe" })
    local t = vsq.spawn(function() return p.stdout:read("a") end)
    vsq.sleep(0.01)
    t:cancel()
    assert.are.same({ false, "cancelled" }, { t:join() })
    assert.are.equal("cancelled", t.status)
  end)

  it("keep the script alive until every task has finished", function()
    local r = h.run({ "-e", "vsq.spawn(function() vsq.sleep(0.05) print('late task') end) print('main done')" })
    assert.are.equal("main done\nlate task\n", r.stdout)
  end)

  it("reject a bad sleep with an error naming the argument", function()
    assert.has_error(function() vsq.sleep(-1) end,
      "bad argument #1 to 'sleep' (non-negative number expected, got -1)")
    assert.has_error(function() vsq.sleep("soon") end)
  end)
end)

describe("vsq.timer", function()
  it("fires once after the delay, or repeatedly until stopped", function()
    local once, many = 0, 0
    vsq.timer(0.01, function() once = once + 1 end)
    local rep = vsq.timer(0, 0.005, function() many = many + 1 end)
    vsq.sleep(0.1)
    rep:stop()
    local seen = many
    vsq.sleep(0.03)
    assert.are.equal(1, once)
    assert.is_true(seen >= 3)
    assert.are.equal(seen, many)
  end)
end)

describe("vsq.now", function()
  it("is monotonic and measures sleeps", function()
    local t0 = vsq.now()
    vsq.sleep(0.02)
    assert.is_true(vsq.now() - t0 >= 0.02)
  end)
end)

describe("vsq.wait_fd", function()
  it("waits until a pipe becomes readable while other tasks run", function()
    local p <close> = vsq.process({ "sh", "-c", "sleep 0.05; echo ready" }, { stdout = "pipe" })
    local ticks = 0
    local ticker = vsq.timer(0, 0.005, function() ticks = ticks + 1 end)
    assert.is_true(vsq.wait_fd(p.stdout:fd(), "r"))
    ticker:stop()
    assert.are.equal("ready", p.stdout:read())
    assert.is_true(ticks > 0)
    p:wait()
  end)

  it("times out", function()
    local p <close> = vsq.process({ "sleep", "5" }, { stdout = "pipe" })
    assert.are.same({ nil, "timeout", 110 }, { vsq.wait_fd(p.stdout:fd(), "r", 0.01) })
  end)
end)

describe("vsq.run", function()
  it("serves until vsq.stop()", function()
    vsq.timer(0.02, function() vsq.stop() end)
    assert.are.equal("stop", vsq.run())
  end)

  it("ends cleanly on SIGINT and SIGTERM", function()
    for _, sig in ipairs({ "INT", "TERM" }) do
      local p <close> = assert(vsq.process({ h.bin, "-e", [[
        io.stdout:setvbuf("no")
        vsq.timer(0, function() print("serving") end)
        local why = vsq.run()
        print("stopped by " .. why)
      ]] }, { stdout = "pipe" }))
      assert.are.equal("serving", p.stdout:read())
      p:kill(sig)
      assert.are.equal("stopped by SIG" .. sig, p.stdout:read())
      assert.are.same({ true, "exit", 0 }, { p:wait() })
    end
  end)

  it("interrupts a script that is not serving, with exit status 130", function()
    local p <close> = assert(vsq.process({ h.bin, "-e", [[
      io.stdout:setvbuf("no") print("sleeping") vsq.sleep(30)
    ]] }, { stdout = "pipe", stderr = "pipe" }))
    assert.are.equal("sleeping", p.stdout:read())
    p:kill("INT")
    assert.are.same({ nil, "exit", 130 }, { p:wait() })
    assert.matches("interrupted", p.stderr:read("a"))
  end)

  it("interrupts a script whose main chunk is done but whose tasks still run", function()
    local p <close> = assert(vsq.process({ h.bin, "-e", [[
      io.stdout:setvbuf("no") vsq.spawn(function() vsq.sleep(30) end) print("main done")
    ]] }, { stdout = "pipe", stderr = "pipe" }))
    assert.are.equal("main done", p.stdout:read())
    p:kill("INT")
    assert.are.same({ nil, "exit", 130 }, { p:wait() })
  end)

  it("exits non-zero, naming the tasks, when every task waits for what cannot happen", function()
    local r = h.run({ "-e", "vsq._park(vsq.current())" })
    assert.are.equal(1, r.code)
    assert.matches("every task waits for something that can no longer happen: task 1 %(main, running%)", r.stderr)
  end)

  it("interrupts busy Lua code on SIGINT", function()
    local p <close> = assert(vsq.process({ h.bin, "-e", [[
      io.stdout:setvbuf("no") print("spinning") while true do end
    ]] }, { stdout = "pipe", stderr = "pipe" }))
    assert.are.equal("spinning", p.stdout:read())
    p:kill("INT")
    assert.are.same({ nil, "exit", 130 }, { p:wait() })
  end)
end)
