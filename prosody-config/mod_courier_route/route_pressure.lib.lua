-- mod_courier_route, part: back-pressure.  A sender (a c2s session, or an
-- s2s stream) with courier_sender_limit hand-offs not yet answered by Courier
-- is not read from until half of them are answered: its next message waits in
-- the hook, on the session's own util.async runner, so that mod_c2s / mod_s2s
-- pause its connection and queue what was already read, in order.  Courier's
-- slowness then slows the sender, instead of growing the pending set (nothing
-- falls back for it: fallback is for a Courier that is gone or silent).
-- A sender waits only while Courier is connected; it is read again at once
-- when Courier disconnects, and at unload.
-- Loaded by mod_courier_route.lua with module:require(); R is its shared table.

local async = require "util.async";

return function(R)
	local limit = R.sender_limit;
	local resume_at = math.floor(limit / 2);
	local counts = {}; -- origin session -> its hand-offs pending
	local peaks = {}; -- origin session -> the most it had pending since it was last read again
	local waiting = {}; -- origin session -> done() of the waiter its runner is blocked on
	local due = {}; -- origin sessions to read again (on the next turn)
	local wake_timer = nil;

	local function who(origin)
		return tostring(origin.full_jid or origin.from_host or origin.id);
	end

	-- net.server_epoll (Prosody 0.12) reads what luasocket already buffered for a
	-- paused connection only when more bytes arrive: resume() does not look at it,
	-- so a sender that sent its last messages before it was paused would stall.
	-- Once the sender's runner is ready again (it resumed the connection), that
	-- input is read: pausefor(0) resumes through the path that reads it.
	local function read_buffered(origin)
		local tries = 0;
		return function()
			tries = tries + 1;
			local runner, conn = origin.thread, origin.conn;
			if waiting[origin] or type(runner) ~= "table" or not conn or tries > 100 then return nil; end
			if runner.state ~= "ready" then return 0.05; end -- (still working through what it queued)
			local sock = conn.socket and conn:socket();
			if sock and sock.dirty and sock:dirty() then conn:pausefor(0); end
			return nil;
		end
	end

	local function wake(origin, why)
		local done = waiting[origin];
		if not done then return; end
		waiting[origin] = nil;
		module:log("info", "Reading %s's stream again (%s): %d hand-offs pending, at most %d",
			who(origin), why, counts[origin] or 0, peaks[origin] or 0);
		peaks[origin] = counts[origin];
		local ok, err = pcall(done); -- the runner goes on with the waiting message, then with what it queued
		if not ok then module:log("error", "Could not resume %s: %s", who(origin), err); end
		module:add_timer(0, R.guarded("read buffered input", read_buffered(origin), nil));
	end

	local function wake_due()
		wake_timer = nil;
		local origins = due;
		due = {};
		for origin, why in pairs(origins) do wake(origin, why); end
	end

	-- (on the next turn: never inside the handler that answered or noticed, which may be iterating)
	local function wake_soon(origin, why)
		if not waiting[origin] or due[origin] then return; end
		due[origin] = why;
		if not wake_timer then wake_timer = module:add_timer(0, R.guarded("resume", wake_due, nil)); end
	end

	function R.sender_added(origin)
		local n = (counts[origin] or 0) + 1;
		counts[origin] = n;
		if n > (peaks[origin] or 0) then peaks[origin] = n; end
	end

	function R.sender_answered(origin)
		local n = (counts[origin] or 1) - 1;
		if n > 0 then
			counts[origin] = n;
		else
			counts[origin] = nil;
			if not waiting[origin] then peaks[origin] = nil; end
		end
		if n <= resume_at then wake_soon(origin, "fewer pending"); end
	end

	-- Called before a message of *origin* is handed off: returns once it may be,
	-- true if it waited.  Waits only in the sender's own runner (never blocks
	-- another session's processing).
	function R.await_room(origin)
		if limit <= 0 or (counts[origin] or 0) < limit then return false; end
		local runner = origin.thread;
		if type(runner) ~= "table" or runner.thread ~= coroutine.running() then return false; end
		while (counts[origin] or 0) >= limit and R.component_session() and not R.stopping do
			local wait, done = async.waiter();
			waiting[origin] = done;
			module:log("info", "%s has %d hand-offs not yet answered by Courier (limit %d): its stream is not read until %d are left",
				who(origin), counts[origin], limit, resume_at);
			wait();
		end
		return true;
	end

	-- Every waiting sender is read again: on the next turn (Courier disconnected),
	-- or now (unload: R.stopping is set, and the waiting messages are delivered normally).
	function R.resume_senders(why)
		for origin in pairs(waiting) do wake_soon(origin, why); end
		if R.stopping then wake_due(); end
	end
end
