-- The vsq command line behaves as lua5.4's does, with vsq's modules built in.
local h = require "helpers.vsq"
local tmp = require "helpers.tmp"

describe("the vsq command line", function()
  local dir
  before_each(function() dir = tmp.dir("cli") end)
  after_each(function() tmp.remove(dir) end)

  it("executes -e statements", function()
    local r = h.run({ "-e", "print(1+1)" })
    assert.is_true(r.ok)
    assert.are.equal("2\n", r.stdout)
  end)

  it("runs -e statements and -l libraries in the order given", function()
    local r = h.run({ "-e", "x = 1", "-l", "string", "-e", "print(x, type(string.format))" })
    assert.are.equal("1\tfunction\n", r.stdout)
  end)

  it("puts -l g=mod into the global g", function()
    local r = h.run({ "-l", "fab=vsq.pretty", "-e", "print(type(fab.format))" })
    assert.are.equal("function\n", r.stdout)
  end)

  it("gives a script its arguments in arg as lua5.4 does", function()
    local script = tmp.write(dir .. "/args.lua", [[
      print(#arg, arg[0], arg[1], arg[2], arg[-1] ~= nil, select("#", ...), ...)
    ]])
    local r = h.run({ script, "a", "b c" })
    local l = lua_out -- luacheck: ignore
    local expect = assert(vsq.exec({ "lua5.4", script, "a", "b c" })).stdout
    assert.are.equal(expect, r.stdout)
    assert.are.equal("2\t" .. script .. "\ta\tb c\ttrue\t2\ta\tb c\n", r.stdout)
  end)

  it("exits with the code given to os.exit, as lua5.4 does", function()
    local r = h.run({ "-e", "os.exit(7)" })
    assert.are.equal(7, r.code)
    assert.are.equal(1, h.run({ "-e", "os.exit(false)" }).code)
    assert.are.equal(0, h.run({ "-e", "os.exit(true)" }).code)
  end)

  it("prints an error with a traceback and exits 1", function()
    local script = tmp.write(dir .. "/fail.lua", "local function f() error('bad thing') end\nf()\n")
    local r = h.run({ script })
    assert.are.equal(1, r.code)
    assert.matches("fail.lua:1: bad thing", r.stderr, 1, true)
    assert.matches("stack traceback", r.stderr, 1, true)
    assert.matches("fail.lua:2", r.stderr, 1, true)
  end)

  it("reports syntax errors with the file and line", function()
    local script = tmp.write(dir .. "/syntax.lua", "x = = 1\n")
    local r = h.run({ script })
    assert.are.equal(1, r.code)
    assert.matches("syntax.lua:1:", r.stderr, 1, true)
  end)

  it("runs shebang scripts directly", function()
    local script = tmp.write(dir .. "/hello", "#!/usr/bin/env vsq\nprint('hello', arg[1])\n", "0755")
    local r = assert(vsq.exec({ script, "world" }, { env = { PATH = h.top .. ":" .. os.getenv("PATH") } }))
    assert.are.equal("hello\tworld\n", r.stdout)
  end)

  it("reads the script from stdin with -", function()
    local r = h.run({ "-", "x" }, { input = "print('from stdin', ...)" })
    assert.are.equal("from stdin\tx\n", r.stdout)
  end)

  it("treats arguments after -- as the script and its arguments", function()
    local script = tmp.write(dir .. "/dash.lua", "print(...)")
    local r = h.run({ "--", script, "-e" })
    assert.are.equal("-e\n", r.stdout)
  end)

  it("runs LUA_INIT first, and ignores it with -E", function()
    local r = h.run({ "-e", "print(initialized)" }, { env = { LUA_INIT = "initialized = 'yes'" } })
    assert.are.equal("yes\n", r.stdout)
    r = h.run({ "-E", "-e", "print(initialized)" }, { env = { LUA_INIT = "initialized = 'yes'" } })
    assert.are.equal("nil\n", r.stdout)
    local init = tmp.write(dir .. "/init.lua", "initialized = 'from file'")
    r = h.run({ "-e", "print(initialized)" }, { env = { LUA_INIT = "@" .. init } })
    assert.are.equal("from file\n", r.stdout)
  end)

  it("shows the version with -v", function()
    local r = h.run({ "-v" })
    assert.matches("^vsq %d+%.%d+%.%d+ %(Lua 5%.4", r.stdout)
  end)

  it("explains itself with --help", function()
    local r = h.run({ "--help" })
    assert.is_true(r.ok)
    assert.matches("usage: .*vsq %[options%] %[script %[args%]%]", r.stdout)
    assert.matches("-e stat", r.stdout, 1, true)
  end)

  it("rejects an unknown option with usage and exit code 1", function()
    local r = h.run({ "-Z" })
    assert.are.equal(1, r.code)
    assert.matches("unrecognized option '-Z'", r.stderr, 1, true)
  end)

  it("has every vsq module built in", function()
    local r = h.run({ "-e", "print(type(vsq.spawn), type(require('vsq.pretty').format))" })
    assert.are.equal("function\tfunction\n", r.stdout)
  end)

  it("lets stock lua5.4 require vsq from the build tree", function()
    local r = assert(vsq.exec({ "lua5.4", "-e", [[
      local vsq = require "vsq"
      vsq.spawn(function() vsq.sleep(0.01) print("tick") end)
      vsq.sleep(0.05)
      print(vsq.version)
    ]] }, { env = { LUA_CPATH = h.top .. "/build/?.so" } }))
    assert.are.equal("tick\n" .. "vsq 0.1.0\n", r.stdout)
  end)

  it("works as an unprivileged user", function()
    local bin = h.unprivileged_copy()
    local r = h.as_nobody({ bin .. "/vsq", "-e", [[
      vsq.spawn(function() print("task as", os.getenv("USER") or "nobody") end)
      print(vsq.exec({"id", "-un"}).stdout)
    ]] }, nil, bin)
    assert.is_true(r.ok, r.stderr)
    assert.matches("nobody", r.stdout)
    tmp.remove(bin)
  end)
end)
