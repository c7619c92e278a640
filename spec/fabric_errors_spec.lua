-- Wrong use of the fabric's Lua API gives errors that name what was wrong, never a crash.
local fabric = require "vsq.fabric"

describe("vsq.fabric wrong use", function()
  it("refuses option values of the wrong type, naming the option", function()
    assert.has_error(function() fabric.switch{ name = 123 } end, "switch: option name must be a string, got number")
    assert.has_error(function() fabric.switch{ path = 5 } end, "switch: option path must be a string, got number")
    assert.has_error(function() fabric.hub{ name = {} } end, "hub: option name must be a string, got table")
  end)

  it("refuses to use a port that sw:resize removed", function()
    local sw <close> = fabric.switch{ ports = 4 }
    local p = sw:port(4)
    assert(sw:resize(2))
    for _, call in ipairs({
      function() return p:capture{ file = "/nonexistent/never-written.pcap" } end,
      function() return p:set{} end,
      function() return p:disconnect() end,
      function() return p:info() end,
    }) do
      assert.has_error(call, 'port 4 of switch "' .. sw:name() .. '" no longer exists')
    end
  end)
end)
