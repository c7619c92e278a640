-- What vsq creates it releases: on normal exit, on error, on SIGINT and SIGTERM.
local h = require "helpers.vsq"
local tmp = require "helpers.tmp"

-- A lab script that serves a VDE directory, runs a host and a child, then ends as `how` says.
local function lab(dir, how)
  return ([[
    local fabric, host = require "vsq.fabric", require "vsq.host"
    io.stdout:setvbuf("no")
    local sw <close> = assert(fabric.switch{ path = %q })
    local a <close> = assert(host.new{ name = "a", ip = "10.9.9.1/24", link = sw })
    local child = vsq.process({ "sleep", "60" })
    local inner = a:spawn({ "sleep", "60" })
    print(child.pid, inner.pid)
    local how = %q
    if how == "error" then error("the lab broke") end
    if how == "exit" then os.exit(3) end
    if how == "serve" then vsq.run() end
    if how == "sleep" then vsq.sleep(60) end
  ]]):format(dir .. "/sw", how)
end

local function gone(pid) return io.open("/proc/" .. pid .. "/stat") == nil end

describe("vsq cleans up", function()
  for _, case in ipairs({
    { how = "done", code = 0 }, { how = "error", code = 1 }, { how = "exit", code = 3 },
    { how = "serve", signal = "TERM", code = 0 }, { how = "serve", signal = "INT", code = 0 },
    { how = "sleep", signal = "TERM", code = 143 }, { how = "sleep", signal = "INT", code = 130 },
  }) do
    local what = case.signal and ("on SIG" .. case.signal .. " while it " .. (case.how == "serve" and "serves" or "sleeps"))
      or ({ done = "when the script ends", error = "when the script fails", exit = "on os.exit" })[case.how]
    it("its socket files, hosts and children " .. what, function()
      local d = tmp.dir("clean")
      finally(function() tmp.remove(d) end)
      local p <close> = assert(vsq.process({ h.bin, "-e", lab(d, case.how) }, { stdout = "pipe", stderr = "null" }))
      local child, inner = p.stdout:read():match("^(%d+)\t(%d+)$")
      assert.is_not_nil(child)
      if case.signal then
        vsq.sleep(0.1)
        p:kill(case.signal)
      end
      local _, _, code = p:wait(10)
      assert.are.equal(case.code, code)
      assert.is_true(gone(child), "child process " .. child .. " is still there")
      assert.is_true(gone(inner), "process " .. inner .. " inside the host is still there")
      local left = vsq.exec({ "find", d, "-mindepth", "1" }).stdout
      assert.are.equal("", left)
    end)
  end
end)
