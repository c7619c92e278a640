-- Escape attempts: whatever a program under a view tries, it stays inside or gets an error.
local tmp = require "helpers.tmp"
local hvu = require "helpers.vu"

-- A scratch dir with ok (readable in the view) and hidden/secret (hidden by the view).
local function setup()
  local d = tmp.dir("esc")
  os.execute(("mkdir -p %s/hidden %s/work && echo SECRET > %s/hidden/secret && echo ok > %s/ok && chmod -R a+rwX %s")
    :format(d, d, d, d, d))
  return d
end

local race_open = [[
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static char path[4096];
static const char *a, *b;
static volatile int stop;
static void *flip(void *x) {
  while (!stop) { strcpy(path, a); strcpy(path, b); }
  return x;
}
int main(int argc, char **argv) {
  a = argv[1]; b = argv[2];
  int n = atoi(argv[3]), escaped = 0, opened = 0;
  pthread_t t;
  strcpy(path, a);
  pthread_create(&t, 0, flip, 0);
  for (int i = 0; i < n; i++) {
    char buf[16] = {0};
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    opened++;
    if (read(fd, buf, 6) == 6 && memcmp(buf, "SECRET", 6) == 0) escaped++;
    close(fd);
  }
  stop = 1;
  pthread_join(t, 0);
  printf("opened>0 %d escaped %d\n", opened > 0, escaped);
  return 0;
}]]

local race_symlink = [[
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static const char *a, *b, *dir;
static volatile int stop;
static void *flip(void *x) {
  char tmpl[4096], link[4096];
  snprintf(tmpl, sizeof tmpl, "%s/tmp-link", dir);
  snprintf(link, sizeof link, "%s/link", dir);
  while (!stop) {
    unlink(tmpl); symlink(a, tmpl); rename(tmpl, link);
    unlink(tmpl); symlink(b, tmpl); rename(tmpl, link);
  }
  return x;
}
int main(int argc, char **argv) {
  dir = argv[1]; a = argv[2]; b = argv[3];
  int n = atoi(argv[4]), escaped = 0, opened = 0;
  char link[4096], deep[4096];
  pthread_t t;
  snprintf(link, sizeof link, "%s/link", dir);
  snprintf(deep, sizeof deep, "%s/link/../hidden/secret", dir);
  pthread_create(&t, 0, flip, 0);
  for (int i = 0; i < n; i++) {
    char buf[16] = {0};
    int fd = open(i % 2 ? link : deep, O_RDONLY);
    if (fd < 0) continue;
    opened++;
    if (read(fd, buf, 6) == 6 && memcmp(buf, "SECRET", 6) == 0) escaped++;
    close(fd);
  }
  stop = 1;
  pthread_join(t, 0);
  printf("opened>0 %d escaped %d\n", opened > 0, escaped);
  return 0;
}]]

local race_exec = [[
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static char path[4096];
static const char *a, *b;
static volatile int stop;
static void *flip(void *x) {
  while (!stop) { strcpy(path, a); strcpy(path, b); }
  return x;
}
int main(int argc, char **argv) {
  a = argv[1]; b = argv[2];
  int n = atoi(argv[3]), escaped = 0, ran = 0;
  pthread_t t;
  strcpy(path, a);
  pthread_create(&t, 0, flip, 0);
  for (int i = 0; i < n; i++) {
    pid_t p = vfork();  /* shares the memory the flipper writes */
    if (p == 0) { char *args[] = {path, 0}; execv(path, args); _exit(100); }
    int st; waitpid(p, &st, 0);
    if (WIFEXITED(st) && WEXITSTATUS(st) == 42) escaped++;
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0) ran++;
  }
  stop = 1;
  pthread_join(t, 0);
  printf("ran>0 %d escaped %d\n", ran > 0, escaped);
  return 0;
}]]

local fdpass = [[
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  strcpy(sa.sun_path, argv[2]);
  if (strcmp(argv[1], "send") == 0) {   /* outside the view: pass a dir fd of the hidden dir */
    bind(s, (void *)&sa, sizeof sa); listen(s, 1);
    int c = accept(s, 0, 0), fd = open(argv[3], O_RDONLY | O_DIRECTORY);
    char cbuf[CMSG_SPACE(sizeof(int))] = {0}, one = 'x';
    struct iovec iov = {&one, 1};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET; cm->cmsg_type = SCM_RIGHTS; cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    sendmsg(c, &mh, 0);
    close(c);
    return 0;
  }
  for (int i = 0; i < 200 && connect(s, (void *)&sa, sizeof sa) < 0; i++) usleep(10000);
  char cbuf[CMSG_SPACE(sizeof(int))], one;
  struct iovec iov = {&one, 1};
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
  if (recvmsg(s, &mh, 0) != 1) { puts("no message"); return 1; }
  int fd; memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&mh)), sizeof fd);
  char buf[16] = {0};
  int f = openat(fd, "secret", O_RDONLY);
  printf("openat %s\n", f < 0 ? strerror(errno) : (read(f, buf, 6), buf));
  f = openat(fd, "../ok", O_RDONLY);
  printf("openat.. %s\n", f < 0 ? strerror(errno) : "opened");
  printf("fchdir %s\n", fchdir(fd) < 0 ? strerror(errno) : "done");
  char p[64]; snprintf(p, sizeof p, "/proc/self/fd/%d/secret", fd);
  f = open(p, O_RDONLY);
  printf("proc %s\n", f < 0 ? strerror(errno) : "opened");
  return 0;
}]]

local misc = [[
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
static void say(const char *what, long r) { printf("%s %s\n", what, r < 0 ? strerrorname_np(errno) : "ok"); }
int main(int argc, char **argv) {
  char buf[8] = "xxxx", path[4096];
  struct iovec l = {buf, 4}, r = {buf, 4};
  say("io_uring_setup", syscall(SYS_io_uring_setup, 4, buf));
  say("ptrace", ptrace(PTRACE_ATTACH, getppid(), 0, 0));
  say("process_vm_writev", process_vm_writev(getppid(), &l, 1, &r, 1, 0));
  snprintf(path, sizeof path, "%s/hidden/secret", argv[1]);
  say("link", link(path, "/tmp/vu-escape-hardlink"));
  snprintf(path, sizeof path, "%s/work/../hidden/secret", argv[1]);
  say("dotdot", open(path, O_RDONLY));
  int d = open(argv[1], O_RDONLY | O_DIRECTORY);
  say("openat", openat(d, "hidden/../hidden/./secret", O_RDONLY));
  say("open_by_handle_at", syscall(SYS_open_by_handle_at, d, buf, O_RDONLY));
  say("x32", syscall(0x40000000 | SYS_getpid));
  say("mem", open("/proc/1/mem", O_RDONLY));
  snprintf(path, sizeof path, "/proc/%d/root/%s/hidden/secret", getppid(), argv[1]);
  say("parent-root", open(path, O_RDONLY));
  return 0;
}]]

describe("vu escapes", function()
  teardown(hvu.cleanup)

  it("a thread rewriting a path while it is opened never reaches a hidden file", function()
    local d = setup()
    finally(function() tmp.remove(d) end)
    local prog = hvu.cc("race_open", race_open)
    local r = hvu.run { "--hide", d .. "/hidden", "--", prog, d .. "/ok", d .. "/hidden/secret", "3000" }
    assert.are.equal("opened>0 1 escaped 0\n", r.stdout, r.stderr)
    -- the same program without the view does reach it (the race is real)
    r = assert(vsq.exec { prog, d .. "/ok", d .. "/hidden/secret", "3000" })
    assert.matches("escaped [1-9]", r.stdout)
  end)

  it("symlinks swapped under a walk, and .. after them, stay inside the view", function()
    local d = setup()
    finally(function() tmp.remove(d) end)
    local prog = hvu.cc("race_symlink", race_symlink)
    local r = hvu.run { "--hide", d .. "/hidden", "--", prog, d .. "/work", d .. "/ok",
      d .. "/hidden/secret", "2000" }
    assert.are.equal("opened>0 1 escaped 0\n", r.stdout, r.stderr)
  end)

  it("a thread rewriting the path of an exec never runs a hidden program", function()
    local d = setup()
    finally(function() tmp.remove(d) end)
    os.execute(("printf '#!/bin/sh\\nexit 42\\n' > %s/hidden/prog && chmod 755 %s/hidden/prog"):format(d, d))
    local prog = hvu.cc("race_exec", race_exec)
    local r = hvu.run({ "--hide", d .. "/hidden", "--", prog, "/bin/true", d .. "/hidden/prog", "300" },
      { timeout = 120 })
    assert.are.equal("ran>0 1 escaped 0\n", r.stdout, r.stderr)
  end)

  it("a directory fd passed in from outside reaches nothing through paths", function()
    local d = setup()
    finally(function() tmp.remove(d) end)
    local prog = hvu.cc("fdpass", fdpass)
    local sock = d .. "/work/sock"
    local sender <close> = vsq.process { prog, "send", sock, d .. "/hidden" }
    local r = hvu.run { "--hide", d .. "/hidden", "--", prog, "recv", sock }
    sender:wait(5)
    assert.are.equal(
      "openat Permission denied\nopenat.. Permission denied\nfchdir Permission denied\nproc Permission denied\n",
      r.stdout, r.stderr)
  end)

  it("io_uring, ptrace, process_vm_writev, hard links, .., handles, x32 and /proc stay closed", function()
    local d = setup()
    finally(function() tmp.remove(d); os.remove("/tmp/vu-escape-hardlink") end)
    local prog = hvu.cc("misc", misc)
    local r = hvu.run { "--hide", d .. "/hidden", "--", prog, d }
    assert.are.equal(table.concat({
      "io_uring_setup ENOSYS", "ptrace EPERM", "process_vm_writev EPERM", "link ENOENT",
      "dotdot ENOENT", "openat ENOENT", "open_by_handle_at EPERM", "x32 ENOSYS", "mem EACCES",
      "parent-root EACCES", "" }, "\n"), r.stdout, r.stderr)
  end)

  it("stays closed for an unprivileged user too", function()
    local d = setup()
    finally(function() tmp.remove(d) end)
    local prog = hvu.cc("race_open", race_open)
    local r = hvu.run_as_nobody { "--hide", d .. "/hidden", "--", prog, d .. "/ok", d .. "/hidden/secret", "2000" }
    assert.are.equal("opened>0 1 escaped 0\n", r.stdout, r.stderr)
  end)
end)
