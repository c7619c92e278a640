--- vsq.sched: tasks on the event loop. Internal: `require "vsq"` calls it with the C
-- primitives of lua/lvsq.c and returns the resulting table as the `vsq` module.
return function(core)
  local M = { version = "vsq 0.1.0" }

  local PARK, CANCEL = core.PARK, core.CANCEL
  -- the error a cancelled task's wait raises (from Lua or from C)
  local cancelled = setmetatable({}, { __tostring = function() return "cancelled" end })
  local ready, by_co = core.setup(function() M._drain() end, cancelled)
  local live = {}        -- task -> true while it has not finished
  local live_count = 0
  local task_seq = 0
  local main_task        -- the script's main chunk, when vsq runs one
  local run_state        -- { stopped = bool, reason = ..., waiter = task } while vsq.run() serves

  local Task = {}
  Task.__index = Task
  Task.__name = "vsq.task"

  local function current()
    local co, is_main = coroutine.running()
    if is_main then return nil end
    return by_co[co]
  end
  M._current = current

  --- Park the running task until something wakes it; returns what the waker passed.
  -- Raises the cancellation error when the task is cancelled while parked.
  local function park(t, cleanup)
    if t.cancel_requested then -- cancelled while it was not parked
      t.cancel_requested = false
      if cleanup then cleanup() end
      error(cancelled, 0)
    end
    t.parked = true
    local v = coroutine.yield(PARK)
    if v == CANCEL then
      if cleanup then cleanup() end
      error(cancelled, 0)
    end
    return v
  end

  local function report(t)
    if t.reported then return end
    t.reported = true
    io.stderr:write(("vsq: %s failed: %s\n"):format(tostring(t), t.traceback or tostring(t.error)))
    io.stderr:flush()
  end

  local function finish(t, status, ...)
    t.status = status
    if status == "done" then
      t.results = table.pack(...)
    else
      t.error = ...
    end
    if live[t] then live[t] = nil; live_count = live_count - 1 end
    local joiners = t.joiners
    t.joiners = nil
    if joiners then
      for _, j in ipairs(joiners) do core.wake(j.co) end
    end
    local joined = (joiners and #joiners > 0) or t.joined_outside
    if status == "failed" and not joined and t ~= main_task then report(t) end
    if live_count == 0 and not run_state then core.break_loop() end
  end

  local function step(t, ...)
    t.parked = false
    local r = table.pack(core.resume(t.co, ...))
    if not r[1] then
      local err = r[3]
      if err ~= cancelled then t.traceback = debug.traceback(t.co, tostring(err)) end
      -- an error leaves the task's to-be-closed variables open until the coroutine is closed
      local closed, close_err = coroutine.close(t.co)
      if not closed and close_err ~= err then
        io.stderr:write(("vsq: %s: error while closing its variables: %s\n"):format(tostring(t), tostring(close_err)))
      end
      if err == cancelled then
        finish(t, "cancelled", "cancelled")
      else
        finish(t, "failed", err)
      end
    elseif r[2] then
      t.parked = true
      if r[3] ~= PARK then -- a plain coroutine.yield(): let others run, then continue
        t.plain_yield = true
        core.wake(t.co)
      end
    else
      finish(t, "done", table.unpack(r, 3, r.n))
    end
  end

  --- Resume the tasks that were woken (called from the loop).
  function M._drain()
    while #ready > 0 do
      local batch = table.move(ready, 1, #ready, 1, {})
      for i = #ready, 1, -1 do ready[i] = nil end
      for _, co in ipairs(batch) do
        local t = by_co[co]
        if t and t.status == "running" then
          if t.start_args then
            local args = t.start_args
            t.start_args = nil
            step(t, table.unpack(args, 1, args.n))
          elseif t.parked and t.plain_yield then
            t.plain_yield = false -- a cancel waits for its next park
            step(t)
          elseif t.cancel_requested and t.parked then
            t.cancel_requested = false
            step(t, CANCEL)
          elseif t.parked then
            step(t)
          end
        end
      end
    end
  end

  --- Run `fn(...)` as a new task. Returns the task; it starts from the loop, not inside spawn.
  -- @param fn function (or a name string, then the function)
  -- @return task with `join`, `cancel`, `status`
  function M.spawn(fn, ...)
    local name
    if type(fn) == "string" then
      name = fn
      fn = select(1, ...)
      return M.spawn_named(name, fn, select(2, ...))
    end
    return M.spawn_named(nil, fn, ...)
  end

  function M.spawn_named(name, fn, ...)
    if type(fn) ~= "function" and not (getmetatable(fn) or {}).__call then
      error(("bad argument to 'spawn' (function expected, got %s)"):format(type(fn)), 3)
    end
    task_seq = task_seq + 1
    local t = setmetatable({
      id = task_seq, name = name or ("task " .. task_seq), status = "running",
      start_args = table.pack(...),
    }, Task)
    t.co = coroutine.create(function(...) return fn(...) end)
    by_co[t.co] = t
    live[t] = true
    live_count = live_count + 1
    core.wake(t.co)
    return t
  end

  function Task:__tostring()
    return ("task %d (%s%s)"):format(self.id, self.name ~= ("task " .. self.id) and (self.name .. ", ") or "",
      self.status)
  end

  --- Wait for the task to end. Returns true and its results, or false and the error
  -- ("cancelled" if it was cancelled), or nil, "timeout", ETIMEDOUT.
  function Task:join(timeout)
    if timeout ~= nil and (type(timeout) ~= "number" or timeout < 0) then
      error("bad argument #1 to 'join' (non-negative number of seconds expected)", 2)
    end
    if self.status == "running" then
      local me = current()
      if me == self then error("a task cannot join itself", 2) end
      local timed_out = false
      self.joiners = self.joiners or {}
      if me then
        table.insert(self.joiners, me)
        local tm <close> = timeout and core.timer(timeout, 0, function()
          timed_out = true
          core.wake(me.co)
        end) or nil
        while self.status == "running" and not timed_out do park(me) end
        for i, j in ipairs(self.joiners or {}) do
          if j == me then table.remove(self.joiners, i) break end
        end
      else
        local tm <close> = timeout and core.timer(timeout, 0, function() timed_out = true end) or nil
        self.joined_outside = true
        while self.status == "running" and not timed_out do
          if not core.run_once() and #ready == 0 and self.status == "running" then
            self.joined_outside = nil
            error(("%s waits for something that can no longer happen"):format(tostring(self)), 2)
          end
        end
        self.joined_outside = nil
      end
      if self.status == "running" then return nil, "timeout", core.ETIMEDOUT end
    end
    if self.status == "done" then return true, table.unpack(self.results, 1, self.results.n) end
    self.reported = true -- whoever joined now owns the error
    if self.status == "failed" then return false, self.error, self.traceback end
    return false, "cancelled"
  end

  --- Cancel the task: a parked task wakes with the error "cancelled" (which it may catch).
  function Task:cancel()
    if self.status ~= "running" then return false end
    if current() == self then error(cancelled, 0) end
    self.cancel_requested = true
    if self.start_args then -- never ran
      self.start_args = nil
      finish(self, "cancelled", "cancelled")
      return true
    end
    core.wake(self.co)
    return true
  end

  function Task:result()
    if self.status == "done" then return table.unpack(self.results, 1, self.results.n) end
    return nil, self.error or self.status
  end

  --- The running task, or nil outside tasks.
  function M.current() return current() end

  --- Seconds on a monotonic clock (for measuring intervals).
  M.now = core.now

  local function sleep_until(deadline, seconds)
    local t = current()
    local done = false
    if not t then
      local tm <close> = core.timer(seconds, 0, function() done = true end, deadline)
      while not done do core.run_once() end
      return
    end
    local tm <close> = core.timer(seconds, 0, function() done = true; core.wake(t.co) end, deadline)
    while not done do park(t) end
  end

  local function bad_time(name, v, what)
    error(("bad argument #1 to '%s' (%s expected, got %s)"):format(name, what,
      type(v) == "number" and tostring(v) or type(v)), 3)
  end

  --- Wait `seconds`. Inside a task it lets other tasks and the loop run; outside a task
  -- (stock lua5.4, the REPL's own code) it runs the loop for that long.
  function M.sleep(seconds)
    if type(seconds) ~= "number" or seconds ~= seconds or seconds < 0 then
      bad_time("sleep", seconds, "non-negative number")
    end
    sleep_until(core.now() + seconds, seconds)
  end

  --- Wait until vsq.now() reaches `deadline` (returns at once if it has). Tasks sleeping
  -- until deadlines wake in the order of their deadlines.
  function M.sleep_until(deadline)
    if type(deadline) ~= "number" or deadline ~= deadline then bad_time("sleep_until", deadline, "number") end
    sleep_until(deadline, 0)
  end

  --- Let other ready tasks run, then continue.
  function M.yield()
    local t = current()
    if not t then core.run_once(true) return end
    core.wake(t.co)
    park(t)
  end

  --- Wait until fd is readable ("r") or writable ("w"). Returns true, or nil, "timeout", ETIMEDOUT.
  function M.wait_fd(fd, how, timeout)
    if math.type(fd) ~= "integer" then error("bad argument #1 to 'wait_fd' (integer fd expected)", 2) end
    how = how or "r"
    if how ~= "r" and how ~= "w" and how ~= "rw" then
      error(("bad argument #2 to 'wait_fd' (\"r\", \"w\" or \"rw\" expected, got %q)"):format(tostring(how)), 2)
    end
    local t, ok, timed_out = current(), false, false
    local function wake() if t then core.wake(t.co) end end
    local watch
    watch = core.watch(fd, how, function() ok = true; watch:stop(); wake() end)
    local w <close> = watch
    local tm <close> = timeout and core.timer(timeout, 0, function() timed_out = true; wake() end) or nil
    while not ok and not timed_out do
      if t then park(t) else core.run_once() end
    end
    if ok then return true end
    return nil, "timeout", core.ETIMEDOUT
  end

  --- Call fn in a new task after `after` seconds, and then every `every` seconds if given.
  -- Returns the timer (`stop()`, `active()`, `remaining()`).
  function M.timer(after, every, fn)
    if fn == nil and type(every) == "function" then fn, every = every, nil end
    if type(after) ~= "number" or after < 0 then
      error("bad argument #1 to 'timer' (non-negative number of seconds expected)", 2)
    end
    if every ~= nil and (type(every) ~= "number" or every <= 0) then
      error("bad argument #2 to 'timer' (positive interval expected)", 2)
    end
    if type(fn) ~= "function" then error("bad argument to 'timer' (function expected)", 2) end
    return core.timer(after, every or 0, function() M.spawn_named("timer", fn) end)
  end

  --- Serve until SIGINT/SIGTERM or vsq.stop(). Returns the reason ("stop", "SIGINT", "SIGTERM").
  function M.run()
    if run_state then error("vsq.run() is already running", 2) end
    local st = { stopped = false }
    run_state = st
    local t = current()
    st.waiter = t
    -- serving keeps the loop alive even when nothing else is watched (signals still end it)
    local keepalive <close> = core.timer(86400, 86400, function() end)
    core.set_serving(true)
    while not st.stopped do
      if t then park(t, function() run_state = nil; core.set_serving(false) end) else core.run_once() end
    end
    core.set_serving(false)
    run_state = nil
    return st.reason
  end

  --- End vsq.run() (from a task, a timer or the REPL).
  function M.stop(reason)
    local st = run_state
    if not st then return false end
    st.stopped = true
    st.reason = reason or "stop"
    if st.waiter then core.wake(st.waiter.co) else core.break_loop() end
    return true
  end

  --- Start a program: `argv` is a list (run directly, looked up in PATH) or a string (run
  -- by /bin/sh -c). opts: stdin/stdout/stderr = "inherit" (default) | "null" | "pipe" | fd,
  -- env = {NAME = value or false}, clearenv, cwd, setsid. Returns a process with pid,
  -- stdin/stdout/stderr streams (for "pipe"), wait([timeout]), kill([sig]), running(), close().
  -- A process still running when closed or collected is killed and reaped.
  M.process = core.process

  --- Wrap an fd in a blocking-style stream (read, write, lines, close).
  M.stream = core.stream

  --- Run a program to completion without blocking the loop. opts: input (string for its
  -- stdin), env, cwd, timeout (seconds; the program is killed after it), stderr ("pipe" by
  -- default, or "inherit"). Returns {ok, code, signal, stdout, stderr}, or nil, message if it
  -- could not start.
  function M.exec(cmd, opts)
    return M._exec_with(core.process, cmd, opts, 2)
  end

  --- exec with another way to start the program (a host's spawn, a view's spawn).
  function M._exec_with(start, cmd, opts, level)
    opts = opts or {}
    local known = { input = true, env = true, cwd = true, timeout = true, stderr = true, clearenv = true }
    for k in pairs(opts) do
      if not known[k] then error(("exec: unknown option %q"):format(tostring(k)), (level or 1) + 1) end
    end
    local p <close>, err = start(cmd, {
      stdin = opts.input and "pipe" or "null", stdout = "pipe", stderr = opts.stderr or "pipe",
      env = opts.env, cwd = opts.cwd, clearenv = opts.clearenv,
    })
    if not p then return nil, err end
    local err_task = p.stderr and M.spawn_named("exec-stderr", function() return p.stderr:read("a") end)
    local in_task = opts.input and M.spawn_named("exec-stdin", function()
      p.stdin:write(opts.input)
      p.stdin:close()
    end)
    local out_task = M.spawn_named("exec-stdout", function() return p.stdout:read("a") end)
    local ok, how, code = p:wait(opts.timeout)
    local timed_out = how == "timeout"
    if timed_out then
      p:kill("KILL")
      ok, how, code = p:wait()
    end
    local r = { ok = ok == true and not timed_out, timed_out = timed_out or nil }
    if how == "exit" then r.code = code else r.signal = code end
    r.stdout = select(2, out_task:join()) or ""
    if err_task then r.stderr = select(2, err_task:join()) or "" end
    if in_task then in_task:join() end
    return r
  end

  --- Number of tasks that have not finished.
  function M.tasks() return live_count end

  local signames = { [2] = "SIGINT", [15] = "SIGTERM" }
  M._on_signal = nil -- the REPL sets its own
  core.handle_signals(function(signo, interrupted_running_code)
    local name = signames[signo] or ("signal " .. signo)
    if M._on_signal then return M._on_signal(signo, interrupted_running_code) end
    if run_state then M.stop(name) return end
    if interrupted_running_code then return end
    M.interrupted = signo
    if main_task and main_task.status == "running" then
      main_task.interrupt = name
      main_task:cancel()
    elseif main_task then -- the script is done and waits for its tasks: end them all
      main_task.interrupt = name
      for lt in pairs(live) do lt:cancel() end
    end
  end)

  --- Used by the vsq interpreter: run fn as the main task and drive the loop until it and
  -- every task it spawned have ended. Returns ok, error message (with traceback), signal.
  function M._main(fn, ...)
    local t = M.spawn_named("main", fn, ...)
    local stuck
    main_task = t
    while live_count > 0 do
      if t.status ~= "running" and t.status ~= "done" then break end
      local alive = core.run_once()
      if not alive and #ready == 0 and live_count > 0 then
        local names = {}
        for lt in pairs(live) do names[#names + 1] = tostring(lt) end
        table.sort(names)
        stuck = "every task waits for something that can no longer happen: " .. table.concat(names, ", ")
        break
      end
    end
    main_task = nil
    if t.interrupt and (t.status == "cancelled" or t.status == "done") then
      return false, "interrupted by " .. t.interrupt, M.interrupted
    end
    if stuck then return false, stuck end
    if t.status == "done" then return true end
    local msg = t.traceback or tostring(t.error)
    if t.status == "failed" and tostring(t.error):find("interrupted!", 1, true) and core.last_signal() ~= 0 then
      return false, msg, core.last_signal()
    end
    return false, msg
  end

  -- Every task and every parked Lua wait refers to the loop state kept by the C half.
  M._core = core
  M._park = park
  M._cancelled = cancelled
  return M
end
