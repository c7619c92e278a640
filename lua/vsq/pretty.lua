--- vsq.pretty: values written the way a person wants to read them in the REPL: tables to a
-- sane depth with sorted keys, cycles marked, objects by their __tostring.
local M = {}

local function is_identifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

local function sort_keys(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then
    if ta == "number" then return true end
    if tb == "number" then return false end
    return ta < tb
  end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function scalar(v)
  local t = type(v)
  if t == "string" then return ("%q"):format(v):gsub("\\\n", "\\n") end
  if t == "number" or t == "boolean" or t == "nil" then return tostring(v) end
  local mt = getmetatable(v)
  if mt and type(mt) == "table" and mt.__tostring then
    local ok, s = pcall(tostring, v)
    if ok then return s end
  end
  return nil
end

--- Format any value. opts: depth (default 3), indent (default "  "), width (default 100).
function M.format(v, opts)
  opts = opts or {}
  local max_depth = opts.depth or 3
  local indent = opts.indent or "  "
  local width = opts.width or 100
  local seen = {}

  local function fmt(x, depth, prefix)
    local s = scalar(x)
    if s then return s end
    if type(x) ~= "table" then return tostring(x) end
    if seen[x] then return "<cycle: " .. tostring(x) .. ">" end
    if depth >= max_depth then return "{...}" end
    seen[x] = true
    local keys, n = {}, #x
    for k in pairs(x) do
      if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
    end
    table.sort(keys, sort_keys)
    local items = {}
    for i = 1, n do items[#items + 1] = fmt(x[i], depth + 1, prefix .. indent) end
    for _, k in ipairs(keys) do
      local ks = is_identifier(k) and k or ("[" .. (scalar(k) or tostring(k)) .. "]")
      items[#items + 1] = ks .. " = " .. fmt(x[k], depth + 1, prefix .. indent)
    end
    seen[x] = nil
    if #items == 0 then return "{}" end
    local one = "{ " .. table.concat(items, ", ") .. " }"
    if #one + #prefix <= width and not one:find("\n") then return one end
    return "{\n" .. prefix .. indent .. table.concat(items, ",\n" .. prefix .. indent) .. "\n" .. prefix .. "}"
  end

  return fmt(v, 0, "")
end

return M
