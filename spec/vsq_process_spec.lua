-- Child processes: start, read, write, wait and kill without blocking the loop.
describe("vsq.process", function()
  it("reads a child's output line by line while it runs", function()
    local p <close> = vsq.process({ "sh", "-c", "echo one; sleep 0.02; echo two" }, { stdout = "pipe" })
    local lines = {}
    for l in p.stdout:lines() do lines[#lines + 1] = l end
    assert.are.same({ "one", "two" }, lines)
    assert.are.same({ true, "exit", 0 }, { p:wait() })
  end)

  it("writes to a child's stdin", function()
    local p <close> = vsq.process({ "tr", "a-z", "A-Z" }, { stdin = "pipe", stdout = "pipe" })
    p.stdin:write("hello ", "world\n")
    p.stdin:close()
    assert.are.equal("HELLO WORLD\n", p.stdout:read("a"))
    p:wait()
  end)

  it("reports exit codes and signals as os.execute does", function()
    local p <close> = vsq.process({ "sh", "-c", "exit 3" })
    assert.are.same({ nil, "exit", 3 }, { p:wait() })
    local q <close> = vsq.process({ "sleep", "10" })
    assert.is_true(q:running())
    q:kill("KILL")
    assert.are.same({ nil, "signal", 9 }, { q:wait() })
  end)

  it("waits with a timeout, and says so as every wait of vsq does (nil, \"timeout\", ETIMEDOUT)", function()
    local p <close> = vsq.process({ "sleep", "10" }, { stdout = "pipe" })
    assert.are.same({ nil, "timeout", 110 }, { p:wait(0.01) })
    assert.are.same({ nil, "timeout", 110 }, { p.stdout:read("l", 0.01) })
  end)

  it("lets other tasks run while waiting for a child", function()
    local ticks = 0
    local ticker = vsq.timer(0, 0.005, function() ticks = ticks + 1 end)
    local r = vsq.exec({ "sleep", "0.1" })
    ticker:stop()
    assert.is_true(r.ok)
    assert.is_true(ticks >= 5)
  end)

  it("kills and reaps a child still running when closed", function()
    local pid
    do
      local p <close> = vsq.process({ "sleep", "30" })
      pid = p.pid
    end
    assert.is_nil(io.open("/proc/" .. pid .. "/stat"))
  end)

  it("says why a program cannot be started", function()
    local p, err = vsq.process({ "/no/such/program" })
    assert.is_nil(p)
    assert.are.equal("cannot run /no/such/program: No such file or directory", err)
  end)

  it("rejects unknown options and bad stdio settings", function()
    assert.has_error(function() vsq.process({ "true" }, { stdot = "pipe" }) end)
    assert.has_error(function() vsq.process({ "true" }, { stdout = "pip" }) end,
      'process: option stdout must be "inherit", "null", "pipe" or an fd, got pip')
  end)

  it("passes environment changes and the working directory", function()
    local r = vsq.exec({ "sh", "-c", "echo $VSQ_TEST_VAR; pwd" }, { env = { VSQ_TEST_VAR = "set" }, cwd = "/" })
    assert.are.equal("set\n/\n", r.stdout)
  end)

  it("runs a shell command given as a string", function()
    local r = vsq.exec("echo $((6*7))")
    assert.are.equal("42\n", r.stdout)
  end)

  it("kills a program that outlives the exec timeout", function()
    local r = vsq.exec({ "sleep", "10" }, { timeout = 0.05 })
    assert.is_false(r.ok)
    assert.is_true(r.timed_out)
    assert.are.equal(9, r.signal)
  end)
end)
