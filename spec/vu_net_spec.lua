-- Network views: a program in a network namespace of its own, plugged into the fabric.
local vu = require "vsq.vu"
local fabric = require "vsq.fabric"
local tmp = require "helpers.tmp"
local hv = require "helpers.vsq"
local hvu = require "helpers.vu"

local two_views = [[
local vu = require "vsq.vu"
local fabric = require "vsq.fabric"
local dir = arg[1]
local sw <close> = assert(fabric.switch { path = dir })
local a <close> = vu.view { net = "vde://" .. dir }
local b <close> = vu.view { net = "vde://" .. dir }
local srv <close> = assert(a:spawn { "sh", "-c", "ip link set eth0 up && ip addr add 10.77.0.1/24 dev eth0 && sleep 10" })
local ok, how, code = b:run { "sh", "-c",
  "ip link set eth0 up && ip addr add 10.77.0.2/24 dev eth0 && ip -br link | cut -d' ' -f1 | sort | tr '\\n' ' ' && ping -c 1 -W 3 10.77.0.1 >/dev/null && echo reached" }
srv:kill("KILL")
srv:wait()
os.exit(ok and 0 or 1)
]]

describe("vu network views", function()
  teardown(hvu.cleanup)

  it("give a program only a tap plugged into the fabric, and reach another view through a switch", function()
    local d = tmp.dir("net")
    finally(function() tmp.remove(d) end)
    hvu.write(d .. "/two.lua", two_views)
    local r = assert(vsq.exec({ hv.bin, d .. "/two.lua", d .. "/sw" }, { timeout = 60 }))
    assert.are.equal("eth0 lo reached\n", r.stdout, r.stderr)
  end)

  it("refuse a URL that cannot be opened, saying why", function()
    local v <close> = vu.view { net = "nosuchscheme://x" }
    local ok, msg = v:run { "true" }
    assert.is_nil(ok)
    assert.matches("unknown scheme", msg)
  end)

  it("work for an unprivileged user (inside a user namespace)", function()
    local d = tmp.dir("net")
    local copy = hv.unprivileged_copy()
    finally(function() tmp.remove(d); tmp.remove(copy) end)
    hvu.write(d .. "/two.lua", two_views)
    os.execute("chmod -R a+rwX " .. d)
    local r = hv.as_nobody({ copy .. "/vsq", d .. "/two.lua", d .. "/sw" }, { timeout = 60 }, copy)
    assert.are.equal("eth0 lo reached\n", r.stdout, r.stderr)
  end)
end)
