-- Impaired wires: fabric.link(a, b, {impairments}), the vsq.wire object and vsq-wire.
local fabric = require "vsq.fabric"
local W = require "helpers.wire"
local tmp = require "helpers.tmp"
local vsqbin = require "helpers.vsq"

local function send_numbered(ep, n, size, first)
  for i = first or 1, (first or 1) + n - 1 do W.send(ep, W.frame(i, size)) end
end

local function range(a, b)
  local t = {}
  for i = a, b do t[#t + 1] = i end
  return t
end

describe("fabric.link with impairments", function()
  it("passes frames unchanged and in order when nothing is impaired", function()
    local c <close> = W.cable {}
    local sent = {}
    for i = 1, 50 do
      sent[i] = W.frame(i, 60 + i * 20)
      W.send(c.a, sent[i])
    end
    assert.are.same(sent, W.collect(c.b))
    local s = c.wire:stats()
    assert.are.equal(50, s.LR.in_frames)
    assert.are.equal(50, s.LR.out_frames)
    assert.are.equal(0, s.LR.delayed)
  end)

  it("holds frames back for the delay and delivers them later, in order", function()
    local c <close> = W.cable { delay = "300ms" }
    send_numbered(c.a, 5, 100)
    assert.is_nil(c.b:recv(0.05)) -- nothing before the delay
    assert.are.equal(5, c.wire:stats().LR.queued_frames)
    assert.are.same(range(1, 5), W.seqs(W.collect(c.b, 1)))
    assert.are.equal(5, c.wire:stats().LR.delayed)
  end)

  it("loses about the set share of frames, the same ones again with the same seed", function()
    local function run(seed)
      local c <close> = W.cable { loss = "20%", seed = seed }
      send_numbered(c.a, 1000, 60)
      return W.seqs(W.collect(c.b)), c.wire:stats().LR
    end
    local got, st = run(42)
    assert.is_true(#got > 700 and #got < 900, "delivered " .. #got .. " of 1000")
    assert.are.equal(1000 - #got, st.lost)
    assert.are.same(got, (run(42)))
    assert.are_not.same(got, (run(43)))
  end)

  it("loses frames in bursts of the set mean length (Gilbert model)", function()
    local c <close> = W.cable { loss = "10%", lostburst = 8, seed = 7 }
    send_numbered(c.a, 4000, 60)
    local got = W.seqs(W.collect(c.b))
    local st = c.wire:stats().LR
    assert.are.equal(4000 - #got, st.lost)
    assert.is_true(st.lost > 200 and st.lost < 650, "lost " .. st.lost .. " of 4000")
    local mean = st.lost / st.bursts
    assert.is_true(mean > 4 and mean < 14, "mean burst " .. mean)
    -- the gaps in the numbering are the bursts
    local gaps, prev = 0, 0
    for _, n in ipairs(got) do
      if n ~= prev + 1 then gaps = gaps + 1 end
      prev = n
    end
    assert.is_true(math.abs(gaps - st.bursts) <= 1)
  end)

  it("duplicates frames and counts the copies", function()
    local c <close> = W.cable { dup = "50%", seed = 3 }
    send_numbered(c.a, 200, 60)
    local got = W.seqs(W.collect(c.b))
    local st = c.wire:stats().LR
    assert.are.equal(200 + st.duplicates, #got)
    assert.is_true(st.duplicates > 100, "duplicates " .. st.duplicates)
    local seen = {}
    for _, n in ipairs(got) do seen[n] = (seen[n] or 0) + 1 end
    for i = 1, 200 do assert.is_true(seen[i] >= 1) end
  end)

  it("keeps arrival order under jitter, and reorders when fifo is off", function()
    local function run(fifo)
      local c <close> = W.cable { delay = "30ms+25ms", fifo = fifo, seed = 11 }
      for i = 1, 60 do
        W.send(c.a, W.frame(i))
        vsq.sleep(0.002)
      end
      return W.seqs(W.collect(c.b, 0.3)), c.wire:stats().LR.reordered
    end
    local ordered, n1 = run(true)
    assert.are.same(range(1, 60), ordered)
    assert.are.equal(0, n1)
    local mixed, n2 = run(false)
    assert.are.equal(60, #mixed)
    assert.are_not.same(range(1, 60), mixed)
    assert.is_true(n2 > 0)
  end)

  it("queues for the bandwidth and tail-drops beyond the channel buffer", function()
    local c <close> = W.cable { bandwidth = "1mbit", buffer = "15000B" }
    send_numbered(c.a, 40, 1500)
    W.arrived(c.wire, "LR", 40)
    local st = c.wire:stats().LR
    assert.are.equal(10, st.queued_frames)
    assert.are.equal(30, st.buffer_drops)
    assert.is_true(st.queued_bytes <= 15000)
    assert.are.same(range(1, 10), W.seqs(W.collect(c.b, 0.5)))
  end)

  it("reads input at the interface speed and drops what its input queue cannot hold", function()
    local c <close> = W.cable { speed = "2mbit" }
    send_numbered(c.a, 20, 1000)
    W.arrived(c.wire, "LR", 20)
    assert.is_true(c.wire:stats().LR.queued_frames > 0)
    assert.are.same(range(1, 20), W.seqs(W.collect(c.b, 0.5)))
    c.wire:set { speed = "10kbit" }
    send_numbered(c.a, 300, 1000, 21)
    W.arrived(c.wire, "LR", 320)
    assert.is_true(c.wire:stats().LR.input_drops > 0)
  end)

  it("drops frames longer than the MTU and counts them", function()
    local c <close> = W.cable { mtu = "1500B" }
    W.send(c.a, W.frame(1, 1514))
    W.send(c.a, W.frame(2, 1515))
    W.send(c.a, W.frame(3, 60))
    assert.are.same({ 1, 3 }, W.seqs(W.collect(c.b)))
    assert.are.equal(1, c.wire:stats().LR.mtu_drops)
  end)

  it("flips bits with noise", function()
    local c <close> = W.cable { noise = 20000, seed = 5 }
    local frame = W.frame(1, 1500)
    for _ = 1, 100 do W.send(c.a, frame) end
    local got = W.collect(c.b)
    assert.are.equal(100, #got)
    local changed = 0
    for _, f in ipairs(got) do if f ~= frame then changed = changed + 1 end end
    local st = c.wire:stats().LR
    assert.is_true(changed > 0)
    assert.are.equal(changed, st.noisy_frames)
    assert.is_true(st.flipped_bits >= changed)
  end)

  it("applies LR and RL settings to their own direction", function()
    local c <close> = W.cable { LR = { loss = "100%" }, RL = { delay = "1ms" } }
    send_numbered(c.a, 10, 60)
    send_numbered(c.b, 10, 60, 101)
    assert.are.same({}, W.collect(c.b))
    assert.are.same(range(101, 110), W.seqs(W.collect(c.a)))
    local s = c.wire:settings()
    assert.are.equal("100%", s.LR.loss)
    assert.are.equal("0%", s.RL.loss)
    assert.are.equal("1ms", s.RL.delay)
  end)

  it("changes settings at run time without dropping queued frames", function()
    local c <close> = W.cable { delay = "400ms" }
    send_numbered(c.a, 5, 100)
    W.arrived(c.wire, "LR", 5)
    c.wire:set { delay = "0ms" }
    send_numbered(c.a, 5, 100, 6)
    W.arrived(c.wire, "LR", 10)
    assert.is_nil(c.b:recv(0.05)) -- the new frames wait behind the queued ones
    assert.are.same(range(1, 10), W.seqs(W.collect(c.b, 1)))
  end)

  it("switches between Markov states with their own settings", function()
    local c <close> = W.cable {}
    c.wire:markov { states = 2, names = { [0] = "good", "down" }, period = "1min" }
    c.wire:set { state = 1, loss = "100%" }
    send_numbered(c.a, 5, 60)
    W.arrived(c.wire, "LR", 5)
    c.wire:markov { current = 1 }
    send_numbered(c.a, 5, 60, 6)
    W.arrived(c.wire, "LR", 10)
    c.wire:markov { current = 0 }
    send_numbered(c.a, 5, 60, 11)
    local got = W.seqs(W.collect(c.b))
    assert.are.same({ 1, 2, 3, 4, 5, 11, 12, 13, 14, 15 }, got)
    local m = c.wire:markov()
    assert.are.equal(2, m.states)
    assert.are.equal("down", m.names[1])
  end)

  it("answers wirefilter's management commands", function()
    local c <close> = W.cable {}
    local reply, status = c.wire:command("loss LR12.5")
    assert.are.equal("1000 Success\n", reply)
    assert.are.equal(0, status)
    assert.are.equal("12.5%", c.wire:settings().LR.loss)
    assert.are.equal("0%", c.wire:settings().RL.loss)
    c.wire:command("delay 20+5N")
    assert.are.equal("20ms+5ms N", c.wire:settings().RL.delay)
    reply = c.wire:command("showinfo")
    assert.truthy(reply:find("Loss   L->R 12.5+0U   R->L 0+0U", 1, true))
    assert.truthy(reply:find("Delay  L->R 20+5N   R->L 20+5N", 1, true))
    reply, status = c.wire:command("delay fast")
    assert.are.equal(22, status)
    assert.truthy(reply:find('bad delay "fast"', 1, true))
    assert.truthy(reply:find("1022 Invalid argument", 1, true))
    assert.are.same({ "1038 Function not implemented\n", 38 }, { c.wire:command("frobnicate") })
    assert.are.equal("logout", select(2, c.wire:command("logout")))
  end)

  it("rejects unknown options and bad values with messages that say why", function()
    local c <close> = W.cable {}
    local e1 <close> = assert(fabric.open("null://"))
    local e2 <close> = assert(fabric.open("null://"))
    assert.has_error(function() fabric.link(e1, e2, { dealy = "1ms" }) end, 'link: unknown option "dealy"')
    assert.has_error(function() fabric.link(e1, e2, { delay = "20" }) end,
      'link: bad delay "20": a time needs a unit, e.g. "20ms" (ns, us, ms, s, min)')
    assert.has_error(function() c.wire:set { loss = "150%" } end, "wire:set: loss 150 is above the largest allowed, 100")
    assert.has_error(function() c.wire:set { bandwidth = "10 parsecs" } end)
    assert.has_error(function() c.wire:set { LR = { fifo = false } } end, 'wire:set: LR: unknown option "fifo"')
    assert.has_error(function() c.wire:set { state = 3 } end, "wire:set: no Markov state 3 (the wire has 1)")
    assert.has_error(function() c.wire:set { delay = true } end,
      "wire:set: delay must be a string with a unit or a number, got boolean")
    -- nothing changed
    assert.are.equal("0ms", c.wire:settings().LR.delay)
  end)

  it("ends when either object goes away; close is idempotent", function()
    local c <close> = W.cable { delay = "1ms" }
    assert.is_true(c.wire:stats().up)
    local a, b = c.wire:ends()
    assert.truthy(a and b)
    assert.truthy(tostring(c.wire):find("delay 1ms", 1, true))
    b:close()
    assert.is_false(c.wire:stats().up)
    assert.truthy(tostring(c.wire):find("unlinked", 1, true))
    c.wire:close()
    c.wire:close()
    assert.are.equal("wire (closed)", tostring(c.wire))
  end)

  it("reports every delivered frame to a blink socket, as wirefilter's --blink", function()
    local c <close> = W.cable { LR = { loss = "100%" } }
    local sock = c.dir .. "/blink"
    -- a ptp:// endpoint binds a unix datagram socket and hands up what it gets (14 bytes or
    -- more: hence the long id)
    local listener <close> = assert(fabric.open("ptp://" .. sock))
    assert(c.wire:blink(sock, "blink-spec-id"))
    send_numbered(c.a, 2, 100) -- lost: no report
    W.send(c.b, W.frame(3, 200))
    W.send(c.b, W.frame(4, 300))
    assert.are.equal(2, #W.collect(c.a))
    assert.are.equal("blink-spec-id RL 200\n", listener:recv(5))
    assert.are.equal("blink-spec-id RL 300\n", listener:recv(5))
    assert.is_nil(listener:recv(0.05))
    c.wire:blink(nil)
  end)

  it("captures what a side of the wire sees into a pcap file tcpdump reads", function()
    local c <close> = W.cable { loss = "50%", seed = 9 }
    local file = c.dir .. "/r.pcap"
    local cap = assert(c.wire:capture("R", { file = file }))
    send_numbered(c.a, 40, 100)
    local n = #W.collect(c.b)
    cap:close()
    local out = W.sh({ "tcpdump", "-nr", file })
    local frames = select(2, out:gsub("ethertype Unknown %(0x88b5%), length 100", ""))
    assert.is_true(n > 5 and n < 35, "delivered " .. n .. " of 40")
    assert.are.equal(n, frames)
  end)
end)

-- An unimpaired direction is a transparent hop that port.c crosses without calling the wire;
-- what users see of the wire must not change with it.
describe("a wire with nothing set", function()
  local H = require "helpers.fabric"

  local function sizes(frames)
    local n = 0
    for _, f in ipairs(frames) do n = n + #f end
    return n
  end

  -- Sends frames numbered first..last, of size(i) bytes, on `from`; returns them.
  local function exchange(from, first, last, size)
    local sent = {}
    for i = first, last do
      sent[#sent + 1] = W.frame(i, size(i))
      W.send(from, sent[#sent])
    end
    return sent
  end

  it("counts every frame and byte exactly in both directions while it passes them straight on", function()
    local c <close> = W.cable {}
    local s = c.wire:stats()
    assert.is_true(s.LR.transparent)
    assert.is_true(s.RL.transparent)
    local lr = exchange(c.a, 1, 40, function(i) return 60 + i * 7 end)
    local rl = exchange(c.b, 1, 25, function(i) return 100 + i end)
    assert.are.same(lr, W.collect(c.b))
    assert.are.same(rl, W.collect(c.a))
    s = c.wire:stats()
    assert.are.same({ 40, sizes(lr), 40, sizes(lr), 0 },
      { s.LR.in_frames, s.LR.in_bytes, s.LR.out_frames, s.LR.out_bytes, s.LR.refused })
    assert.are.same({ 25, sizes(rl), 25, sizes(rl), 0 },
      { s.RL.in_frames, s.RL.in_bytes, s.RL.out_frames, s.RL.out_bytes, s.RL.refused })
    assert.is_true(s.LR.transparent)
    assert.truthy(c.wire:command("stats"):find("L->R queued 0 frames 0 bytes (at most 0 bytes), transparent", 1, true))
  end)

  it("counts the frames the far side refuses, and the switch counts them too", function()
    local d = tmp.dir("refuse")
    local sw <close> = assert(fabric.switch {})
    local url = "ptp://" .. d .. "/x[seqpacket]"
    local x <close> = assert(fabric.open(url))
    local y <close> = assert(fabric.open(url))
    finally(function() tmp.remove(d) end)
    assert(x:wait("up", 5))
    local w <close> = fabric.link(y, sw:port(3), {})
    -- port 3 carries only VLAN 0 untagged: the switch refuses frames tagged for VLAN 7
    local good = H.frame(H.BROADCAST, H.mac(1), "good", 80)
    local bad = H.tagged(H.BROADCAST, H.mac(1), 7, "bad", 90)
    for _ = 1, 5 do W.send(x, good) end
    for _ = 1, 3 do W.send(x, bad) end
    W.arrived(w, "LR", 8)
    local s = w:stats().LR
    assert.are.same({ 8, 5 * 80 + 3 * 90, 5, 5 * 80, 3 },
      { s.in_frames, s.in_bytes, s.out_frames, s.out_bytes, s.refused })
    assert.is_true(s.transparent)
    assert.are.equal(3, sw:stats().vlan_drops)
    assert.are.equal(3, sw:port(3):info().drops)
    assert.are.equal(5, sw:port(3):info().in_frames)
  end)

  it("shows every frame to captures on both of its sides", function()
    local c <close> = W.cable {}
    local files = { L = c.dir .. "/l.pcap", R = c.dir .. "/r.pcap" }
    local l = assert(c.wire:capture("L", { file = files.L }))
    local r = assert(c.wire:capture("R", { file = files.R }))
    assert.is_true(c.wire:stats().LR.transparent) -- a capture does not change that
    exchange(c.a, 1, 30, function() return 100 end)
    exchange(c.b, 1, 20, function() return 200 end)
    assert.are.equal(30, #W.collect(c.b))
    assert.are.equal(20, #W.collect(c.a))
    l:close()
    r:close()
    for _, side in ipairs({ "L", "R" }) do
      local out = W.sh({ "tcpdump", "-nr", files[side] })
      assert.are.equal(30, select(2, out:gsub("ethertype Unknown %(0x88b5%), length 100", "")), side)
      assert.are.equal(20, select(2, out:gsub("ethertype Unknown %(0x88b5%), length 200", "")), side)
    end
  end)

  it("loses, copies and reorders nothing when impairments come and go while frames flow", function()
    local c <close> = W.cable {}
    -- each setting that impairs is followed by one that clears it, while frames keep coming
    local settings = {
      { delay = "20ms" }, { delay = "0ms" }, { speed = "10mbit" }, { speed = 0 },
      { LR = { delay = "5ms+5ms" }, RL = { bandwidth = "20mbit" } }, { delay = 0, bandwidth = 0 },
    }
    local n, done = 0, false
    -- receivers drain both ends all along
    local function receiver(ep)
      local got = {}
      local task = vsq.spawn(function()
        while true do
          local f = ep:recv(0.3)
          if f then got[#got + 1] = W.seq(f) elseif done then return end
        end
      end)
      return got, task
    end
    local at_b, task_b = receiver(c.b)
    local at_a, task_a = receiver(c.a)
    local function flow(count)
      for _ = 1, count do
        n = n + 1
        W.send(c.a, W.frame(n, 60 + n % 200))
        W.send(c.b, W.frame(n, 300 - n % 200))
        if n % 10 == 0 then vsq.sleep(0) end -- let the wire take some in
      end
    end
    -- a queue released at once must fit in the receiving socket: at most 60 frames in flight
    local function delivered()
      local deadline = vsq.now() + 10
      while (#at_b < n or #at_a < n) and vsq.now() < deadline do vsq.sleep(0.001) end
    end
    for _ = 1, 4 do
      for i, set in ipairs(settings) do
        flow(20)
        c.wire:set(set) -- while those 20 are on their way, and those before still queued
        flow(10)
        if i % 2 == 1 then
          assert.is_false(c.wire:stats().LR.transparent)
          W.arrived(c.wire, "LR", n) -- these met the impairment
        else
          delivered()
        end
      end
    end
    flow(30)
    done = true
    task_b:join(30)
    task_a:join(30)
    assert.are.same(range(1, n), at_b)
    assert.are.same(range(1, n), at_a)
    local s = c.wire:stats()
    for _, d in ipairs({ "LR", "RL" }) do
      assert.are.same({ n, n, 0, 0, 0 },
        { s[d].in_frames, s[d].out_frames, s[d].refused, s[d].duplicates, s[d].queued_frames }, d)
      assert.is_true(s[d].transparent, d) -- everything delivered: nothing left queued
      assert.is_true(s[d].delayed > 0, d)
    end
  end)

  it("can be closed while it passes frames, and its objects link again", function()
    local c <close> = W.cable {}
    local a_in, b_in = c.wire:ends()
    exchange(c.a, 1, 20, function() return 100 end)
    W.arrived(c.wire, "LR", 20)
    exchange(c.a, 21, 40, function() return 100 end) -- on their way as it closes
    c.wire:close()
    assert.are.equal("wire (closed)", tostring(c.wire))
    local lk <close> = fabric.link(a_in, b_in)
    exchange(c.a, 41, 50, function() return 100 end)
    local got = W.seqs(W.collect(c.b, 0.3))
    -- 1..20 crossed the wire, 41..50 the new link; of those in between, each at most once
    assert.are.same(range(1, 20), { table.unpack(got, 1, 20) })
    assert.are.same(range(41, 50), { table.unpack(got, #got - 9, #got) })
    for i = 2, #got do assert.is_true(got[i] > got[i - 1], "in order, once each") end
  end)

  it("ends cleanly when an object it joins goes away while it passes frames", function()
    local c <close> = W.cable {}
    local _, b_in = c.wire:ends()
    exchange(c.a, 1, 10, function() return 100 end)
    assert.are.equal(10, #W.collect(c.b))
    b_in:close()
    assert.is_false(c.wire:stats().up)
    exchange(c.a, 11, 20, function() return 100 end)
    assert.are.same({}, W.collect(c.b))
    local s = c.wire:stats().LR
    assert.are.same({ 10, 10, 0 }, { s.in_frames, s.out_frames, s.refused })
    c.wire:close()
  end)
end)

describe("vsq-wire", function()
  local function exec(args, opts)
    local argv = { vsqbin.bin, vsqbin.top .. "/scripts/vsq-wire" }
    for _, a in ipairs(args) do argv[#argv + 1] = a end
    opts = opts or {}
    opts.timeout = opts.timeout or 20
    return assert(vsq.exec(argv, opts))
  end

  it("rejects bad values with a clear message and exit status 2", function()
    local r = exec({ "-d", "20xs", "null://", "null://" })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find('-d: bad delay "20xs": unknown unit "xs"', 1, true))
    r = exec({ "-l", "LR120", "null://", "null://" })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("loss 120 is above the largest allowed, 100", 1, true))
    r = exec({ "--bogus", "null://", "null://" })
    assert.are.equal(2, r.code)
    r = exec({ "null://" })
    assert.are.equal(2, r.code)
    assert.truthy(r.stderr:find("two URLs are needed, got 1", 1, true))
    r = exec({ "--help" })
    assert.are.equal(0, r.code)
    assert.truthy(r.stdout:find("Usage: vsq-wire", 1, true))
  end)

  it("says which URL cannot be opened, exit status 1", function()
    local r = exec({ "vde:///nonexistent/switch", "null://" })
    assert.are.equal(1, r.code)
    assert.truthy(r.stderr:find("vde:///nonexistent/switch", 1, true))
  end)

  it("joins two vde_switches with impairments set as wirefilter's and from its console #peer", function()
    local dir = tmp.dir("vw")
    finally(function()
      vsq.exec({ "sh", "-c", "kill $(cat " .. dir .. "/*.pid) 2>/dev/null; sleep 0.2" })
      tmp.remove(dir)
    end)
    for _, s in ipairs({ "s1", "s2" }) do
      W.sh({ "vde_switch", "-s", dir .. "/" .. s, "-d", "-p", dir .. "/" .. s .. ".pid" })
    end
    local wire <close> = vsq.process({ vsqbin.bin, vsqbin.top .. "/scripts/vsq-wire", "--nostdin",
      "-M", dir .. "/mgmt", "-l", "LR0", "-d", "RL5", "--seed", "1",
      "vde://" .. dir .. "/s1", "vde://" .. dir .. "/s2" }, { stderr = "pipe" })
    local e1 <close> = assert(fabric.open("vde://" .. dir .. "/s1"))
    local e2 <close> = assert(fabric.open("vde://" .. dir .. "/s2"))
    -- wait for the console, then talk to it
    local con
    for _ = 1, 100 do
      con = vsq.exec({ "sh", "-c", "test -S " .. dir .. "/mgmt" })
      if con.ok then break end
      vsq.sleep(0.05)
    end
    local r = assert(vsq.exec({ "nc", "-UN", dir .. "/mgmt" },
      { input = "loss LR100\nshowinfo\n=wire:settings().LR.loss\nlogout\n", timeout = 10 }))
    assert.truthy(r.stdout:find("Loss   L->R 100+0U   R->L 0+0U", 1, true))
    assert.truthy(r.stdout:find('"100%"', 1, true))
    -- LR (s1 to s2) now loses everything, RL passes
    for i = 1, 5 do
      W.send(e1, W.frame(i, 100, W.BROADCAST, 1))
      W.send(e2, W.frame(100 + i, 100, W.BROADCAST, 2))
    end
    assert.are.same({}, W.seqs(W.collect(e2, 0.3)))
    assert.are.same(range(101, 105), W.seqs(W.collect(e1, 0.3)))
    wire:kill("TERM")
    assert.are.same({ true, "exit", 0 }, { wire:wait(10) })
    assert.is_nil(io.open(dir .. "/mgmt")) -- the console socket is removed
  end)
end)

describe("vsq-wire --daemon", function()
  it("returns once the cable is up, writes its pid file and removes it when stopped #peer", function()
    local dir = tmp.dir("vwd")
    finally(function()
      vsq.exec({ "sh", "-c", "kill $(cat " .. dir .. "/*.pid) 2>/dev/null; sleep 0.2" })
      tmp.remove(dir)
    end)
    for _, sw in ipairs({ "s1", "s2" }) do
      W.sh({ "vde_switch", "-s", dir .. "/" .. sw, "-d", "-p", dir .. "/" .. sw .. ".pid" })
    end
    local pidfile = dir .. "/wire.pid"
    local r = assert(vsq.exec({ vsqbin.bin, vsqbin.top .. "/scripts/vsq-wire", "--daemon", "--pidfile",
      pidfile, "-d", "5", dir .. "/s1", dir .. "/s2" }, { timeout = 20 }))
    assert.is_true(r.ok, r.stderr)
    local f = assert(io.open(pidfile))
    local pid = f:read("n")
    f:close()
    assert.truthy(io.open("/proc/" .. pid .. "/stat"))
    W.sh({ "kill", tostring(pid) })
    for _ = 1, 100 do
      if not io.open(pidfile) then break end
      vsq.sleep(0.05)
    end
    assert.is_nil(io.open(pidfile))
    -- a URL that cannot be opened is reported by the command that started the daemon
    r = assert(vsq.exec({ vsqbin.bin, vsqbin.top .. "/scripts/vsq-wire", "--daemon",
      dir .. "/nonexistent", dir .. "/s2" }, { timeout = 20 }))
    assert.are.equal(1, r.code)
    assert.truthy(r.stderr:find("nonexistent", 1, true))
  end)
end)

describe("impaired wires without root", function()
  it("delay, loss and their counters work for an unprivileged user", function()
    local bindir = vsqbin.unprivileged_copy()
    local dir = tmp.dir("nobody")
    finally(function() tmp.remove(dir); tmp.remove(bindir) end)
    W.sh({ "chmod", "0777", dir })
    local script = W.script(dir, "w.lua", ([[
      local fabric = require "vsq.fabric"
      local a = assert(fabric.open("ptp://%s/a"))
      local a_in = assert(fabric.open("ptp://%s/a"))
      local b_in = assert(fabric.open("ptp://%s/b"))
      local b = assert(fabric.open("ptp://%s/b"))
      local w = fabric.link(a_in, b_in, { delay = "20ms", loss = "50%%", seed = 3 })
      for i = 1, 8 do assert(a:send(("\255"):rep(6) .. ("\2\0\0\0\0\1\136\181") .. ("x"):rep(50))) end
      local n = 0
      while b:recv(0.2) do n = n + 1 end
      local s = w:stats().LR
      print(n, s.out_frames, s.lost, s.in_frames)
      w:close(); a:close(); a_in:close(); b_in:close(); b:close()
    ]]):format(dir, dir, dir, dir))
    local r = vsqbin.as_nobody({ bindir .. "/vsq", script }, {}, bindir)
    assert.is_true(r.ok, r.stderr)
    local n, out, lost, total = r.stdout:match("^(%d+)\t(%d+)\t(%d+)\t(%d+)")
    assert.are.equal("8", total)
    assert.are.equal(n, out)
    assert.are.equal(8, tonumber(n) + tonumber(lost))
    assert.is_true(tonumber(n) > 0 and tonumber(lost) > 0) -- seed 3 loses some, not all
  end)
end)
