-- File-system views: bind, hide, deny, ro, root, cow, tmp, and real programs running in them.
local tmp = require "helpers.tmp"
local hvu = require "helpers.vu"

local function tree(d)
  os.execute(("mkdir -p %s/sub && printf 'one\\n' > %s/a && printf 'two\\n' > %s/sub/b && ln -s a %s/link")
    :format(d, d, d, d))
end

describe("vu file-system views", function()
  teardown(hvu.cleanup)

  it("bind shows a host directory or file at a path, listed in its parent", function()
    local d = tmp.dir("vu")
    finally(function() tmp.remove(d) end)
    tree(d)
    local r = hvu.sh({ "--bind", d .. ":/mnt/data", "--bind", d .. "/a:/etc/motd-test" },
      "cat /mnt/data/a /mnt/data/sub/b /etc/motd-test; ls /mnt | grep -x data; cd /mnt/data/sub && pwd && cat ../link")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("one\ntwo\none\ndata\n/mnt/data/sub\none\n", r.stdout)
  end)

  it("hide makes a path and what is under it vanish, from lookups and listings", function()
    local d = tmp.dir("vu")
    finally(function() tmp.remove(d) end)
    tree(d)
    local r = hvu.sh({ "--hide", d .. "/sub", "--hide", d .. "/a" },
      ("ls %s; cat %s/sub/b; cat %s/link; test -e %s/a || echo gone"):format(d, d, d, d))
    assert.are.equal("link\ngone\n", r.stdout)
    assert.matches("sub/b: No such file or directory", r.stderr)
    assert.matches("link: No such file or directory", r.stderr)
  end)

  it("deny refuses a path with EACCES", function()
    local d = tmp.dir("vu")
    finally(function() tmp.remove(d) end)
    tree(d)
    local r = hvu.sh({ "--deny", d .. "/sub" }, ("cat %s/sub/b; ls %s/sub; ls %s"):format(d, d, d))
    assert.matches("sub/b: Permission denied", r.stderr)
    assert.matches("a\nlink\nsub\n", r.stdout)
  end)

  it("ro refuses every change with EROFS and keeps reads working", function()
    local d = tmp.dir("vu")
    finally(function() tmp.remove(d) end)
    tree(d)
    local r = hvu.sh({ "--ro", d }, ([[cat %s/a
      echo x >> %s/a; touch %s/new; rm %s/a; mkdir %s/dir; mv %s/a %s/c; chmod 600 %s/a; ln -s a %s/l2
      true]]):format(d, d, d, d, d, d, d, d, d))
    assert.are.equal("one\n", r.stdout)
    local _, n = r.stderr:gsub("Read%-only file system", "")
    assert.are.equal(7, n, r.stderr)
    assert.are.equal("one\n", hvu.read(d .. "/a"))
  end)

  it("root gives a new / that .., symlinks and /proc/self/root stay inside", function()
    local d = tmp.dir("vu")
    finally(function() tmp.remove(d) end)
    os.execute(("cd %s && mkdir -p usr etc proc tmp && ln -s usr/bin bin && ln -s usr/lib lib && ln -s usr/lib64 lib64 && echo inside > etc/motd && ln -s /etc/motd etc/abs"):format(d))
    local r = hvu.sh({ "--root", d, "--bind", "/usr:/usr", "--bind", "/proc:/proc" },
      "cat /etc/motd /etc/abs; cd /tmp/../../..; pwd; ls /; cat /proc/self/root/etc/motd; readlink /proc/self/root")
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("inside\ninside\n/\nbin\netc\nlib\nlib64\nproc\ntmp\nusr\ninside\n/\n", r.stdout)
  end)

  it("cow leaves the original untouched and keeps changes in the overlay", function()
    local d, o = tmp.dir("vu"), tmp.dir("ovl")
    finally(function() tmp.remove(d); tmp.remove(o) end)
    tree(d)
    local r = hvu.sh({ "--cow", d .. ":" .. o }, ([[cd %s
      echo more >> a; rm sub/b; mkdir new; echo n > new/f; mv a a2; ln -s a2 l2
      ls; cat a2 l2; ls sub | wc -l; rm -r sub; mkdir sub; ls sub | wc -l]]):format(d))
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("a2\nl2\nlink\nnew\nsub\none\nmore\none\nmore\n0\n0\n", r.stdout)
    -- the lower tree as it was
    assert.are.equal("one\n", hvu.read(d .. "/a"))
    assert.are.equal("two\n", hvu.read(d .. "/sub/b"))
    -- the changes, in the overlay, seen again by a second run
    assert.are.equal("one\nmore\n", hvu.read(o .. "/a2"))
    r = hvu.sh({ "--cow", d .. ":" .. o }, "cd " .. d .. " && ls && test ! -e a && echo no-a")
    assert.are.equal("a2\nl2\nlink\nnew\nsub\nno-a\n", r.stdout)
  end)

  it("tmp gives an empty writable tree that is gone afterwards", function()
    local r = hvu.sh({ "--tmp", "/scratch" },
      "ls -A /scratch | wc -l; mkdir -p /scratch/a/b && echo x > /scratch/a/b/f && cat /scratch/a/b/f; stat -c %a /scratch")
    assert.are.equal("0\nx\n755\n", r.stdout)
    local p = io.popen("ls -d /tmp/vsq-vu-tmp.* 2>/dev/null")
    local left = p:read("a")
    p:close()
    assert.are.equal("", left)
  end)

  it("shows programs the paths of the view: getcwd, /proc/self/cwd, /proc/self/exe, fds", function()
    local d = tmp.dir("vu")
    finally(function() tmp.remove(d) end)
    tree(d)
    local r = hvu.sh({ "--bind", d .. ":/work" },
      "cd /work/sub && pwd -P && readlink /proc/self/cwd && readlink /proc/self/exe && exec 3</work/a && readlink /proc/self/fd/3 && cat /dev/fd/3"
        -- /proc/self/cwd is the cwd of the process asking, when it asks
        .. " && cat /proc/self/cwd/b && cd /work && cat /proc/self/cwd/a && (cd sub && cat /proc/self/cwd/b)")
    assert.are.equal("/work/sub\n/work/sub\n/usr/bin/readlink\n/work/a\none\ntwo\none\ntwo\n", r.stdout)
  end)

  it("runs coreutils, bash, python3, gcc, make, git and tar in a bind and cow view", function()
    local src, o = tmp.dir("proj"), tmp.dir("ovl")
    finally(function() tmp.remove(src); tmp.remove(o) end)
    hvu.write(src .. "/main.c", '#include <stdio.h>\nint main(void) { puts("built"); return 0; }\n')
    hvu.write(src .. "/Makefile", "hello: main.c\n\tgcc -o hello main.c\n")
    local r = hvu.run({ "--bind", src .. ":/proj", "--cow", "/proj:" .. o, "--", "bash", "-c", [[
      set -e
      cd /proj
      make -s && ./hello
      python3 -c 'import os; print(sorted(os.listdir(".")))'
      git init -q . && git add main.c Makefile && git -c user.email=a@b -c user.name=n commit -qm one && git log --oneline | wc -l
      tar cf /tmp/vu-spec-$$.tar main.c Makefile && tar tf /tmp/vu-spec-$$.tar | sort | tr '\n' ' '; rm /tmp/vu-spec-$$.tar
      echo; wc -l < main.c
    ]] }, { timeout = 120 })
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("built\n['Makefile', 'hello', 'main.c']\n1\nMakefile main.c \n2\n", r.stdout)
    -- the host's project is untouched: the build and the repository are in the overlay
    assert.is_nil(io.open(src .. "/hello"))
    assert.is_nil(io.open(src .. "/.git/HEAD"))
    assert.is_not_nil(hvu.read(o .. "/hello"))
  end)

  it("work for an unprivileged user: bind, hide, ro and cow as nobody", function()
    local d, o = tmp.dir("vu"), tmp.dir("ovl")
    finally(function() tmp.remove(d); tmp.remove(o) end)
    tree(d)
    os.execute("chmod -R a+rwX " .. d .. " " .. o)
    local r = hvu.run_as_nobody { "--bind", d .. ":/srv", "--hide", "/srv/sub", "--ro", "/etc",
      "--cow", "/srv:" .. o, "--", "sh", "-c",
      "cat /srv/a; ls /srv; touch /etc/x 2>&1; echo new > /srv/n; cat /srv/n" }
    assert.are.equal(0, r.code, r.stderr)
    assert.are.equal("one\na\nlink\ntouch: cannot touch '/etc/x': Read-only file system\nnew\n", r.stdout)
    assert.is_nil(io.open(d .. "/n"))
  end)
end)
