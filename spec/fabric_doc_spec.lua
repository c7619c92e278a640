-- spec/fabric_doc_spec.lua: the Lua examples of man/vsq-fabric.3 run, so that the page cannot
-- rot. An example is a `.Bd -literal` block right after a text line containing "Lua:".
local h = require "helpers.vsq"
local tmp = require "helpers.tmp"

local PAGE = h.top .. "/man/vsq-fabric.3"

-- The roff escapes an example may use, and what they stand for.
local ESCAPES = {
  e = "\\", ["&"] = "", ["-"] = "-",
  ["(dq"] = '"', ["(aq"] = "'", ["(ha"] = "^", ["(ti"] = "~", ["(rs"] = "\\",
}

--- A line of a literal block as the reader sees it; an escape not in ESCAPES is an error, so
-- that a new one is added here rather than mangled.
local function unroff(line, where)
  if line:match("^[.']") then
    error(("%s: a roff request inside an example: %s"):format(where, line))
  end
  local out, i = {}, 1
  while i <= #line do
    local c = line:sub(i, i)
    if c ~= "\\" then
      out[#out + 1] = c
      i = i + 1
    else
      local key = line:sub(i + 1, i + 1)
      if key == "(" then key = line:sub(i + 1, i + 3) end
      local text = ESCAPES[key]
      if not text then error(("%s: unknown roff escape \\%s"):format(where, key)) end
      out[#out + 1] = text
      i = i + 1 + #key
    end
  end
  return table.concat(out)
end

--- The Lua examples of a page: a list of {line = n, code = "..."}.
local function lua_examples(path)
  local found, block, previous, n = {}, nil, "", 0
  for line in io.lines(path) do
    n = n + 1
    if block then
      if line:match("^%.Ed") then
        block.code = table.concat(block.code, "\n") .. "\n"
        found[#found + 1] = block
        block = nil
      else
        block.code[#block.code + 1] = unroff(line, path .. ":" .. n)
      end
    elseif line:match("^%.Bd%s+%-literal") and previous:find("Lua:", 1, true) then
      block = { line = n, code = {} }
    end
    previous = line
  end
  assert(not block, path .. ": an example block is not closed with .Ed")
  return found
end

--- Names in a directory.
local function entries(dir)
  local names = {}
  local p = io.popen("ls -A " .. tmp.quote(dir))
  for name in p:lines() do names[#names + 1] = name end
  p:close()
  return names
end

describe("man/vsq-fabric.3", function()
  local examples = lua_examples(PAGE)

  it("has its Lua examples marked so that they are run", function()
    assert.is_true(#examples >= 5, ("only %d Lua examples found"):format(#examples))
  end)

  for _, ex in ipairs(examples) do
    -- examples that start programs (nc, vde_plug...) need those programs
    local peer = (ex.code:find("vsq.exec", 1, true) or ex.code:find("vsq.process", 1, true))
        and " #peer" or ""
    it(("runs the Lua example at line %d and leaves nothing behind%s"):format(ex.line, peer),
      function()
        local bin, work = tmp.dir("fabric-doc"), tmp.dir("fabric-doc-cwd")
        finally(function()
          tmp.remove(bin)
          tmp.remove(work)
        end)
        local script = tmp.write(bin .. "/example.lua", ex.code)
        local r = h.run({ script }, { cwd = work, timeout = 30 })
        assert.is_true(r.ok, ("the example at line %d failed (%s):\n%s%s"):format(ex.line,
          r.timed_out and "timed out" or ("exit " .. tostring(r.code or r.signal)),
          r.stdout, r.stderr))
        assert.are.same({}, entries(work),
          ("the example at line %d left files behind"):format(ex.line))
      end)
  end
end)
