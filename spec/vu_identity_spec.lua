-- Identity, UTS names and clocks a view shows.
local vu = require "vsq.vu"
local tmp = require "helpers.tmp"
local hvu = require "helpers.vu"

describe("vu identity", function()
  teardown(hvu.cleanup)

  it("shows a program itself as root, and the user's files as root's", function()
    local d = tmp.dir("id")
    finally(function() tmp.remove(d) end)
    hvu.write(d .. "/mine", "x")
    local r = hvu.sh({ "-0" }, "id; stat -c '%u:%g' " .. d .. "/mine; whoami")
    assert.are.equal("uid=0(root) gid=0(root) groups=0(root)\n0:0\nroot\n", r.stdout)
  end)

  it("extracts a tar with its ownership and shows it with ls -l, across runs", function()
    local src, dst = tmp.dir("tarsrc"), tmp.dir("tarx")
    finally(function() tmp.remove(src); tmp.remove(dst) end)
    os.execute(("mkdir -p %s/pkg/bin && echo hi > %s/pkg/bin/tool && chmod 4755 %s/pkg/bin/tool && ln -s tool %s/pkg/bin/link && tar --owner=1234 --group=55 -C %s -cf %s/p.tar pkg")
      :format(src, src, src, src, src, src))
    local r = hvu.sh({ "-0" }, ("cd %s && tar xpf %s/p.tar && ls -ln pkg/bin | awk 'NR > 1 {print $1, $3, $4, $9}'")
      :format(dst, src))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("lrwxrwxrwx 1234 55 link\n-rwsr-xr-x 1234 55 tool\n", r.stdout)
    -- a later run sees the same owners (kept with the files); the host sees the real ones
    r = hvu.sh({ "-0" }, ("stat -c '%%u:%%g %%a' %s/pkg/bin/tool"):format(dst))
    assert.are.equal("1234:55 4755\n", r.stdout)
    local p = io.popen(("stat -c %%u %s/pkg/bin/tool"):format(dst))
    assert.are.equal(tostring(select(1, vsq.exec { "id", "-u" }).stdout):gsub("\n", ""), p:read("l"))
    p:close()
  end)

  it("keeps chown, chmod and device nodes made by a fake root", function()
    local d = tmp.dir("id")
    finally(function() tmp.remove(d) end)
    local r = hvu.sh({ "-0" }, ([[cd %s && touch f && chown 7:8 f && mknod null c 1 3 && mkfifo p
      stat -c '%%u:%%g %%F' f; stat -c '%%t,%%T %%F' null; stat -c %%F p]]):format(d))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("7:8 regular empty file\n1,3 character special file\nfifo\n", r.stdout)
  end)

  it("emulates set*id calls of a fake root, and refuses them to others", function()
    local r = hvu.run { "-0", "--", "python3", "-c", [[
import os
os.setgroups([4, 5]); os.setgid(100); os.setuid(1000)
print(os.getuid(), os.geteuid(), os.getgid(), sorted(os.getgroups()))
try:
    os.setuid(0)
except PermissionError:
    print("refused")
]] }
    assert.are.equal("1000 1000 100 [4, 5]\nrefused\n", r.stdout, r.stderr)
  end)

  it("shows the host name and uname fields of the view", function()
    local r = hvu.sh({ "--hostname", "box", "--uname", "release=9.9.9-vsq", "--uname", "machine=vax" },
      "hostname; uname -r; uname -m; hostname other && hostname")
    assert.are.equal("box\n9.9.9-vsq\nvax\nother\n", r.stdout)
  end)

  it("shifts or freezes the wall clock, vDSO included", function()
    local r = hvu.run { "--time", "@1000000000", "--", "date", "-u", "+%s" }
    assert.are.equal("1000000000\n", r.stdout)
    r = hvu.run { "--time", "86400", "--", "python3", "-c", "import time; print(int(time.time()))" }
    assert.is_true(math.abs(tonumber(r.stdout) - (os.time() + 86400)) < 30)
    local v <close> = vu.view { time = { frozen = 0 } }
    local d = tmp.dir("id")
    finally(function() tmp.remove(d) end)
    v:run { "sh", "-c", "date -u +%Y > " .. d .. "/year" }
    assert.are.equal("1970\n", hvu.read(d .. "/year"))
  end)

  it("works for an unprivileged user: fake root, names and clock as nobody", function()
    local d = tmp.dir("id")
    finally(function() tmp.remove(d) end)
    os.execute("chmod 777 " .. d)
    local r = hvu.run_as_nobody { "-0", "--hostname", "nb", "--time", "@0", "--", "sh", "-c",
      ("id -u; hostname; date -u +%%Y; cd %s && touch f && chown 3:3 f && stat -c %%u:%%g f"):format(d) }
    assert.are.equal("0\nnb\n1970\n3:3\n", r.stdout, r.stderr)
  end)
end)
