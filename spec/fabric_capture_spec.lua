-- Captures: pcap and pcapng files of what crosses a port, as tcpdump and tshark read them.
local fabric = require "vsq.fabric"
local H = require "helpers.plug"
local tmp = require "helpers.tmp"
local hv = require "helpers.vsq"

-- Two udp:// endpoints joined to each other over loopback: frames sent on one arrive on the
-- other. Returns a, b.
local function pair()
  local p1, p2 = H.free_port(), H.free_port()
  local a = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p1, p2)))
  local b = assert(fabric.open(("udp://127.0.0.1:%d->127.0.0.1:%d"):format(p2, p1)))
  return a, b
end

local function lines(cmd)
  local r = vsq.exec({ "sh", "-c", cmd .. " 2>/dev/null" })
  local out = {}
  for l in r.stdout:gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- The frames of a capture file as tshark reads them: their test tags, in order.
local function tags(file)
  local out = {}
  for _, l in ipairs(lines("tshark -r " .. file .. " -T fields -e data.data")) do
    local bytes = l:gsub("%x%x", function(h) return string.char(tonumber(h, 16)) end)
    out[#out + 1] = bytes:match("^[^.]*")
  end
  return out
end

-- How many frames tcpdump reads in a capture file.
local function count(file)
  local r = vsq.exec({ "sh", "-c", "tcpdump -nn -r " .. file .. " 2>/dev/null | grep -c '^[0-9]'" })
  return tonumber(r.stdout)
end

local function exchange(a, b, n, tag)
  for i = 1, n do
    a:send(H.test_frame((tag or "f") .. i, 60 + i, H.mac("02:00:00:00:00:0a")))
    assert(b:recv(2))
  end
end

describe("capture", function()
  it("writes pcap files that tcpdump reads: every frame, with its addresses and type", function()
    local d = tmp.dir("cap")
    local a, b = pair()
    finally(function() a:close() b:close() tmp.remove(d) end)
    local cap = assert(a:capture{ file = d .. "/a.pcap" })
    exchange(a, b, 3)
    exchange(b, a, 2)
    cap:close()
    local out = lines("tcpdump -nn -e -r " .. d .. "/a.pcap | grep '^[0-9]'")
    assert.are.equal(5, #out)
    assert.matches("02:00:00:00:00:0a > ff:ff:ff:ff:ff:ff, ethertype Unknown %(0x88b5%), length 61", out[1])
    local lens = lines("tshark -r " .. d .. "/a.pcap -T fields -e frame.len")
    assert.are.same({ "61", "62", "63", "61", "62" }, lens)
  end)

  it("writes pcapng with nanosecond timestamps and directions, as tshark shows", function()
    local d = tmp.dir("cap")
    local a, b = pair()
    finally(function() a:close() b:close() tmp.remove(d) end)
    local cap = assert(a:capture{ file = d .. "/a.pcapng" })
    assert.are.equal("pcapng", cap:stats().format)
    exchange(a, b, 1) -- out of the endpoint's port: towards the URL
    exchange(b, a, 1) -- into the fabric from the URL
    cap:close()
    local out = lines("tshark -r " .. d .. "/a.pcapng -T fields -e frame.len -e frame.p2p_dir"
      .. " -e frame.time_epoch")
    assert.are.equal(2, #out)
    local len1, dir1, t1 = out[1]:match("^(%d+)\t(%d)\t(%d+%.%d+)$")
    local _, dir2 = out[2]:match("^(%d+)\t(%d)")
    assert.are.equal("61", len1)
    assert.are_not.equal(dir1, dir2)
    assert.are.equal(9, #t1:match("%.(%d+)$")) -- nanoseconds
    assert.is_true(math.abs(tonumber(t1) - os.time()) < 60) -- wall clock, not uptime
  end)

  it("can be stopped and started again while the traffic goes on", function()
    local d = tmp.dir("cap")
    local a, b = pair()
    finally(function() a:close() b:close() tmp.remove(d) end)
    local cap = assert(a:capture{ file = d .. "/s.pcap" })
    exchange(a, b, 2, "before")
    cap:stop()
    assert.is_false(cap:stats().running)
    exchange(a, b, 3, "while-stopped")
    assert.is_true(cap:start())
    exchange(a, b, 1, "after")
    cap:close()
    assert.are.same({ "before1", "before2", "after1" }, tags(d .. "/s.pcap"))
  end)

  it("stops by itself after a number of frames, and will not start again", function()
    local d = tmp.dir("cap")
    local a, b = pair()
    finally(function() a:close() b:close() tmp.remove(d) end)
    local cap = assert(a:capture{ file = d .. "/n.pcap", frames = 4 })
    exchange(a, b, 10)
    local s = cap:stats()
    assert.are.equal(4, s.frames)
    assert.is_false(s.running)
    assert.is_true(s.limit_reached)
    local ok, err = cap:start()
    assert.is_nil(ok)
    assert.matches("limit", err)
    assert.are.equal(4, count(d .. "/n.pcap"))
    cap:close()
  end)

  it("keeps the file under a size limit", function()
    local d = tmp.dir("cap")
    local a, b = pair()
    finally(function() a:close() b:close() tmp.remove(d) end)
    local cap = assert(a:capture{ file = d .. "/b.pcap", bytes = 300 })
    exchange(a, b, 10)
    cap:close()
    local f = assert(io.open(d .. "/b.pcap"))
    local size = f:seek("end")
    f:close()
    assert.is_true(size <= 300)
    assert.are.equal(3, count(d .. "/b.pcap")) -- 24 + 3 * (16 + ~62)
  end)

  it("truncates frames to snaplen", function()
    local d = tmp.dir("cap")
    local a, b = pair()
    finally(function() a:close() b:close() tmp.remove(d) end)
    local cap = assert(a:capture{ file = d .. "/t.pcap", snaplen = 20 })
    a:send(H.test_frame("long", 1000))
    assert(b:recv(2))
    cap:close()
    assert.are.same({ "20\t1000" }, lines("tshark -r " .. d .. "/t.pcap -T fields -e frame.cap_len -e frame.len"))
  end)

  it("reaches the file soon enough for a reader to follow it while it grows", function()
    local d = tmp.dir("cap")
    local a, b = pair()
    finally(function() a:close() b:close() tmp.remove(d) end)
    local cap <close> = assert(a:capture{ file = d .. "/live.pcap", flush = 0.05 })
    exchange(a, b, 2)
    vsq.sleep(0.2)
    assert.are.equal(2, count(d .. "/live.pcap"))
    assert.is_true(cap:stats().running)
    exchange(a, b, 1)
    cap:flush()
    assert.are.equal(3, count(d .. "/live.pcap"))
  end)

  it("records a link's traffic in both directions", function()
    local d = tmp.dir("cap")
    local a, b = pair()
    local c, e = pair()
    finally(function() a:close() b:close() c:close() e:close() tmp.remove(d) end)
    local link <close> = fabric.link(b, c) -- a ~ b == c ~ e
    local cap = assert(link:capture{ file = d .. "/link.pcap" })
    a:send(H.test_frame("right"))
    assert(e:recv(2))
    e:send(H.test_frame("left"))
    assert(a:recv(2))
    cap:close()
    assert.are.same({ "right", "left" }, tags(d .. "/link.pcap"))
  end)

  it("ends when its endpoint closes, keeping what it wrote", function()
    local d = tmp.dir("cap")
    local a, b = pair()
    finally(function() a:close() b:close() tmp.remove(d) end)
    local cap <close> = assert(a:capture{ file = d .. "/c.pcap" })
    exchange(a, b, 2)
    a:close()
    assert.is_false(cap:stats().running)
    local ok, err = cap:start()
    assert.is_nil(ok)
    assert.matches("gone", err)
    assert.are.equal(2, count(d .. "/c.pcap"))
  end)

  it("ends when the switch whose port it records closes", function()
    local d = tmp.dir("cap")
    local sw = fabric.switch{}
    local a, b = pair()
    finally(function() a:close() b:close() sw:close() tmp.remove(d) end)
    local l <close> = assert(fabric.link(sw, a))
    local cap <close> = assert(sw:capture(1, { file = d .. "/sw.pcap" }))
    b:send(H.test_frame("s1", 60, H.mac("02:00:00:00:00:0b")))
    vsq.sleep(0.05)
    sw:close()
    assert.is_false(cap:stats().running)
    assert.is_nil((cap:start()))
    assert.are.equal(1, count(d .. "/sw.pcap"))
  end)

  it("works for an unprivileged user", function()
    local bin = hv.unprivileged_copy()
    local work = tmp.dir("nobodycap")
    finally(function() tmp.remove(bin) tmp.remove(work) end)
    os.execute("chown nobody " .. tmp.quote(work))
    local r = hv.as_nobody({ bin .. "/vsq", "-e", ([[
      local fabric = require "vsq.fabric"
      local ep = assert(fabric.open("cmd://cat"))
      local cap = assert(ep:capture{ file = %q })
      for i = 1, 3 do
        ep:send(("\255"):rep(6) .. "\2\0\0\0\0\1\136\181" .. ("z"):rep(50))
        assert(ep:recv(2))
      end
      cap:close()
      ep:close()
    ]]):format(work .. "/nobody.pcapng") }, nil, bin)
    assert.is_true(r.ok, r.stderr)
    -- out to cat and back in: six frames
    assert.are.equal(6, count(work .. "/nobody.pcapng"))
  end)

  it("says why it cannot write its file", function()
    local ep <close> = assert(fabric.open("null://"))
    local cap, err, errno = ep:capture{ file = "/nonexistent-dir/x.pcap" }
    assert.is_nil(cap)
    assert.matches("cannot create /nonexistent%-dir/x.pcap: No such file or directory", err)
    assert.are.equal(2, errno)
  end)

  it("rejects unknown options, a missing file and an unknown format", function()
    local ep <close> = assert(fabric.open("null://"))
    assert.has_error(function() ep:capture{ file = "/tmp/x.pcap", fromat = "pcap" } end)
    assert.has_error(function() ep:capture{} end)
    assert.has_error(function() ep:capture{ file = "/tmp/x", format = "erf" } end)
  end)

  it("shows its state when printed", function()
    local d = tmp.dir("cap")
    finally(function() tmp.remove(d) end)
    local ep <close> = assert(fabric.open("null://"))
    local cap = assert(ep:capture{ file = d .. "/p.pcap" })
    assert.matches("^capture .*/p%.pcap %(pcap running, 0 frames, 24 bytes%)$", tostring(cap))
    cap:close()
    assert.are.equal("capture (closed)", tostring(cap))
  end)
end)
