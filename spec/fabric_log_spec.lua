-- spec/fabric_log_spec.lua: fabric.log: the core messages of the objects a Lua state makes go
-- where that state said, and nowhere else, even with two states in one process.
local hv = require "helpers.vsq"
local vu = require "helpers.vu"
local tmp = require "helpers.tmp"

-- Two Lua states in one process (a C program embedding Lua, loading vsq.so as stock lua5.4
-- does), each with its own fabric.log setting and its own switch refusing clients.
local TWO_STATES = [[
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>

static lua_State *state(const char *cpath, const char *dir)
{
	lua_State *L = luaL_newstate();

	luaL_openlibs(L);
	lua_pushstring(L, cpath);
	lua_setglobal(L, "CPATH");
	lua_pushstring(L, dir);
	lua_setglobal(L, "DIR");
	return L;
}

static void run(lua_State *L, const char *code)
{
	if (luaL_dostring(L, code)) {
		printf("error: %s\n", lua_tostring(L, -1));
		exit(1);
	}
}

int main(int argc, char **argv)
{
	lua_State *a = state(argv[1], argv[2]), *b = state(argv[1], argv[2]);

	run(a, "package.cpath = CPATH; fabric = require 'vsq.fabric'");
	run(b, "package.cpath = CPATH; fabric = require 'vsq.fabric'");
	run(a, "fabric.log('warn', 'A'); sw = assert(fabric.switch{path = DIR .. '/a', ports = 2})");
	run(b, "fabric.log('warn', 'B'); sw = assert(fabric.switch{path = DIR .. '/b', ports = 2})");
	run(a, "print(sw:name(), (fabric.open('vde://' .. DIR .. '/a[9]')))");
	run(b, "print(sw:name(), (fabric.open('vde://' .. DIR .. '/b[9]')))");
	run(b, "fabric.log('off')");
	run(a, "assert(not fabric.open('vde://' .. DIR .. '/a[8]'))");
	run(b, "assert(not fabric.open('vde://' .. DIR .. '/b[8]'))");
	lua_close(a);
	lua_close(b);
	return 0;
}
]]

describe("fabric.log", function()
  after_each(vu.cleanup)

  it("belongs to its Lua state: two states in one process keep their own setting", function()
    local prog = vu.cc("two_states", TWO_STATES, "-I/usr/include/lua5.4 -llua5.4 -lm -ldl")
    local dir = tmp.dir("log")
    finally(function() tmp.remove(dir) end)
    local r = assert(vsq.exec({ prog, hv.top .. "/build/?.so", dir }, { timeout = 20 }))
    assert.equal("sw0\tnil\nsw0\tnil\n", r.stdout)
    local seen = {}
    for prefix, port in r.stderr:gmatch('([AB]): warning: switch "sw0": client "[^"]*" asked for port (%d)') do
      seen[#seen + 1] = prefix .. port
    end
    assert.same({ "A9", "B9", "A8" }, seen, r.stderr)
    assert.is_true(r.ok, r.stderr)
  end)
end)
