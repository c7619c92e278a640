-- vsq.vu views and vsq-run: running programs under a view, their status, hooks and traces.
local vu = require "vsq.vu"
local tmp = require "helpers.tmp"
local hvu = require "helpers.vu"

describe("vu.view", function()
  teardown(hvu.cleanup)

  it("runs a program and returns its status as os.execute does", function()
    local v <close> = vu.view {}
    assert.are.same({ true, "exit", 0 }, { v:run { "true" } })
    assert.are.same({ nil, "exit", 3 }, { v:run("exit 3") })
    assert.are.same({ nil, "signal", 9 }, { v:run("kill -9 $$") })
  end)

  it("says why a program cannot start", function()
    local v <close> = vu.view {}
    local ok, msg, errno = v:run { "/nonexistent/program" }
    assert.is_nil(ok)
    assert.matches("cannot run /nonexistent/program: No such file or directory", msg)
    assert.are.equal(2, errno)
  end)

  it("rejects unknown options and malformed rules, naming them", function()
    assert.has_error(function() vu.view { fss = {} } end, 'vu.view: unknown option "fss"')
    assert.has_error(function() vu.view { fs = { { bind = "/tmp" } } } end,
      'vu.view: fs[1]: bind needs "at" (the path in the view)')
    assert.has_error(function() vu.view { fs = { { hide = "relative" } } } end,
      'vu.view: fs[1]: hide: "relative" is not an absolute path in the view')
    assert.has_error(function() vu.view { uid = -1 } end)
    assert.has_error(function() vu.view { hooks = { nosuchcall = function() end } } end,
      'vu.view: hooks: no system call named "nosuchcall"')
  end)

  it("returns nil and a message when a host path of a rule is missing", function()
    local v <close> = vu.view { fs = { { bind = "/nonexistent/dir", at = "/x" } } }
    local ok, msg = v:run { "true" }
    assert.is_nil(ok)
    assert.matches("bind /nonexistent/dir:/x: No such file or directory", msg)
  end)

  it("spawns a process that can be waited for, killed and closed", function()
    local v <close> = vu.view {}
    local p <close> = v:spawn { "sleep", "30" }
    assert.is_true(p.pid > 0)
    assert.is_true(p:running())
    assert.are.same({ nil, "timeout", 110 }, { p:wait(0.05) })
    assert.is_true(p:kill("KILL"))
    assert.are.same({ nil, "signal", 9 }, { p:wait() })
    assert.is_false(p:running())
    assert.matches("killed by signal 9", tostring(p))
  end)

  it("kills everything still running under the view when the process is closed", function()
    local d = tmp.dir("vu")
    local v <close> = vu.view {}
    local pid
    do
      local p <close> = v:spawn { "sh", "-c", "sleep 30 & echo $! > " .. d .. "/pid; wait" }
      while not hvu.read(d .. "/pid") or hvu.read(d .. "/pid") == "" do vsq.sleep(0.01) end
      pid = tonumber(hvu.read(d .. "/pid"))
    end
    vsq.sleep(0.05)
    assert.is_nil(io.open("/proc/" .. pid .. "/stat"))
    tmp.remove(d)
  end)

  it("follows fork, threads and exec of static and dynamic programs", function()
    local threads = hvu.cc("threads", [[
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/wait.h>
static void *run(void *a) { return access((const char *)a, F_OK) == 0 ? (void *)1 : 0; }
int main(int argc, char **argv) {
  pthread_t t[4]; void *r; int seen = 0;
  for (int i = 0; i < 4; i++) pthread_create(&t[i], 0, run, argv[1]);
  for (int i = 0; i < 4; i++) { pthread_join(t[i], &r); seen += r != 0; }
  pid_t p = fork();
  if (p == 0) { execl(argv[2], argv[2], argv[1], (char *)0); _exit(99); }
  int st; waitpid(p, &st, 0);
  printf("%d %d\n", seen, WEXITSTATUS(st));
  return 0;
}]])
    local static = hvu.cc("probe_static", [[
#include <unistd.h>
int main(int c, char **v) { return access(v[1], F_OK) == 0 ? 7 : 8; }]], "-static")
    local d = tmp.dir("vu")
    -- the file exists in the host but the view hides it: threads, the child and the static
    -- program (whose calls go through the same filter) all see it missing
    hvu.write(d .. "/secret", "x")
    local r = hvu.run { "--hide", d .. "/secret", "--", threads, d .. "/secret", static }
    assert.are.equal("0 8\n", r.stdout)
    r = hvu.run { "--", threads, d .. "/secret", static }
    assert.are.equal("4 7\n", r.stdout)
    tmp.remove(d)
  end)

  it("gives hooks the decoded call and lets them deny, rewrite or allow it", function()
    local d = tmp.dir("vu")
    hvu.write(d .. "/a", "AAA\n")
    hvu.write(d .. "/b", "BBB\n")
    local seen = {}
    local v <close> = vu.view {
      fs = { { bind = d, at = "/data" } },
      hooks = {
        openat = function(call)
          if call.path and call.path:match("^/data/") then seen[#seen + 1] = call end
          if call.path == "/data/a" then return "/data/b" end   -- rewrite
          if call.path == "/data/none" then return 13 end       -- deny with EACCES
        end,
      },
    }
    finally(function() tmp.remove(d) end)
    local out = d .. "/out"
    assert.is_true((v:run { "sh", "-c", "cat /data/a > /data/out; cat /data/none 2>>/data/out; true" }))
    assert.are.equal("BBB\ncat: /data/none: Permission denied\n", hvu.read(out))
    local a
    for _, call in ipairs(seen) do if call.path == "/data/a" then a = call end end
    assert.are.equal("openat", a.name)
    assert.are.equal("/data/a", a.resolved)
    assert.is_true(a.pid > 0)
  end)

  it("refuses a call whose hook fails, rather than letting it through", function()
    local v <close> = vu.view { hooks = { unlinkat = function() error("hook bug (expected by the spec)") end } }
    local d = tmp.dir("vu")
    hvu.write(d .. "/f", "x")
    v:run { "rm", "-f", d .. "/f" }
    assert.is_not_nil(hvu.read(d .. "/f"))
    tmp.remove(d)
  end)
end)

describe("vsq-run", function()
  teardown(hvu.cleanup)

  it("exits with the command's status, 127 for a missing command, 125 for bad options", function()
    assert.are.equal(5, hvu.sh({}, "exit 5").code)
    local r = hvu.run { "--", "no-such-command-here" }
    assert.are.equal(127, r.code)
    assert.matches("cannot run no%-such%-command%-here: No such file or directory", r.stderr)
    r = hvu.run { "--bind", "nocolon", "--", "true" }
    assert.are.equal(125, r.code)
    assert.matches("%-%-bind needs A:B", r.stderr)
    r = hvu.run { "--frobnicate", "--", "true" }
    assert.are.equal(125, r.code)
    assert.matches("unknown option %-%-frobnicate", r.stderr)
  end)

  it("exits with 128+N when the command is killed by signal N", function()
    assert.are.equal(128 + 15, hvu.sh({}, "kill -TERM $$").code)
  end)

  it("reads view options from a Lua file given with -f", function()
    local d = tmp.dir("vu")
    hvu.write(d .. "/data", "from the file view\n")
    hvu.write(d .. "/view.lua", ('return { fs = { { bind = %q, at = "/srv" } }, hostname = "filebox" }'):format(d))
    local r = hvu.run { "-f", d .. "/view.lua", "--", "sh", "-c", "cat /srv/data; hostname" }
    assert.are.equal("from the file view\nfilebox\n", r.stdout)
    tmp.remove(d)
  end)

  it("prints the calls it handles with --trace", function()
    local r = hvu.run { "--trace", "--", "cat", "/etc/hostname" }
    assert.is_true(r.ok)
    assert.matches('openat%(AT_FDCWD, "/etc/hostname"', r.stderr)
    assert.matches('execve%("[^"]*cat"', r.stderr)
  end)

  it("works for an unprivileged user", function()
    local r = hvu.run_as_nobody { "--hide", "/etc/passwd", "--hostname", "nobodybox", "--",
      "sh", "-c", "hostname; cat /etc/passwd 2>&1; id -u" }
    assert.are.equal(0, r.code, r.stderr)
    assert.matches("^nobodybox\ncat: /etc/passwd: No such file or directory\n65534\n$", r.stdout)
  end)
end)
