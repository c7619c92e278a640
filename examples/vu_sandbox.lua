-- examples/vu_sandbox.lua: build a small C project in a view: the sources are shown read-only at
-- /src, the build happens in a copy-on-write overlay, secrets are hidden, a hook logs every file
-- the build opens for writing, and the program runs as a fake root with a frozen clock.
-- usage: ./vsq examples/vu_sandbox.lua
local vu = require "vsq.vu"

local work = os.tmpname()
os.remove(work)
assert(os.execute("mkdir -p " .. work .. "/src " .. work .. "/overlay"))
local f = assert(io.open(work .. "/src/hello.c", "w"))
f:write('#include <stdio.h>\nint main(void) { puts("hello from the view"); return 0; }\n')
f:close()

local written = {}
local view <close> = vu.view {
  fs = {
    { bind = work .. "/src", at = "/src" },
    { cow = "/src", overlay = work .. "/overlay" },
    { hide = os.getenv("HOME") or "/root" },
  },
  uid = 0, gid = 0,
  hostname = "builder",
  time = "@1700000000",
  hooks = {
    openat = function(call)
      local O_ACCMODE, O_CREAT = 3, 64
      if call.args[3] & (O_ACCMODE | O_CREAT) ~= 0 and call.resolved then
        written[#written + 1] = call.resolved
      end
    end,
  },
}

print(view:run { "sh", "-c", [[
  cd /src && gcc -o hello hello.c && ./hello
  echo "built on $(hostname) as $(id -un) at $(date -u +%F)"
  ls -l hello | cut -d' ' -f3,4
]] })

print("files written by the build:")
for _, p in ipairs(written) do print("  " .. p) end
print("the host's /src is untouched: hello is only in the overlay:",
  io.open(work .. "/src/hello") == nil, io.open(work .. "/overlay/hello") ~= nil)
os.execute("rm -rf " .. work)
