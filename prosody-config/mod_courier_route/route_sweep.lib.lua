-- mod_courier_route, part: Courier's liveness, and the one repeating timer (the
-- sweep) that notices reconnects, pings Courier, and falls back on timeouts.
-- Loaded by mod_courier_route.lua with module:require(); R is its shared table.

local st = require "util.stanza";
local uuid = require "util.uuid".generate;
local monotonic = require "util.time".monotonic; -- every timeout
local poller = require "util.poll";

return function(R)
	local host, courier_host = R.host, R.courier_host;
	local ack_timeout, ack_deadline = R.ack_timeout, R.ack_deadline;
	local pending, component_session = R.pending, R.component_session;

	---------------------------------------------------------------------------
	-- Liveness: Courier is alive while it answers.  Any ack, release or answer
	-- to our XEP-0199 ping counts; Courier answers the ping only once its store
	-- has committed (a store that cannot commit makes it "not alive").  Pending
	-- hand-offs fall back when Courier is gone or silent for ack_timeout — not
	-- because one message is slow.  ack_deadline is the last resort for a
	-- hand-off Courier never answers while answering everything else.
	---------------------------------------------------------------------------
	local last_heard = monotonic();
	local ping_out = false; -- a ping is awaiting its answer
	local last_ping = 0;

	local function heard()
		last_heard = monotonic();
	end
	R.heard = heard;

	local function ping_courier(now)
		if ping_out or now - last_ping < ack_timeout / 2 then return; end
		ping_out, last_ping = true, now;
		local iq = st.iq({ type = "get", from = host, to = courier_host, id = "courier-ping-" .. uuid() })
			:tag("ping", { xmlns = "urn:xmpp:ping" });
		module:send_iq(iq, nil, ack_timeout):next(function()
			ping_out = false;
			heard();
		end, function(err)
			ping_out = false;
			module:log("debug", "Courier did not answer a ping: %s", tostring(err and err.text or err));
		end);
	end

	local function courier_alive(now)
		return component_session() ~= nil and now - last_heard < ack_timeout;
	end

	-- Whether Courier's connection has input this Prosody has not read yet.  After a pause of
	-- Prosody itself (SIGSTOP, a VM paused, swap, an overloaded host) its loop runs the timers,
	-- this sweep among them, before it reads the sockets: Courier's answers may be waiting there
	-- while last_heard says it has been silent.  A zero-timeout poll of the one descriptor.
	local probe; -- util.poll state, made on first use
	local function unread_input(session)
		local conn = session.conn;
		local fd = conn and conn.getfd and conn:getfd();
		if type(fd) ~= "number" or fd < 0 then return false; end
		probe = probe or poller.new();
		if not probe or not probe:add(fd, true, false) then return false; end
		local ready = probe:wait(0);
		probe:del(fd);
		return ready == fd;
	end
	-- The last_heard a fall-back was put off for: once each.  The loop turn after this sweep
	-- reads what is waiting; if that holds no answer, the next sweep falls back as before.
	local put_off_for = nil;

	-- The session we last saw; a new one means Courier (re)connected.
	local seen_session = nil;

	local function sweep()
		local now = monotonic();
		local session = component_session();
		if session ~= seen_session then
			seen_session = session;
			if session then
				module:log("info", "Courier connected on %s (%d messages were delivered without it while it was away)",
					courier_host, R.bypassed);
				R.bypassed = 0;
				heard();
				R.resend_pending(session);
				R.resend_fallback_notices();
			else
				module:log("warn", "Courier disconnected: %d hand-offs pending; new messages are delivered normally until it is back",
					R.pending_count);
			end
		end
		if not session then
			R.resume_senders("Courier disconnected"); -- (also one whose short connection this sweep never saw)
		end
		if R.pending_count > 0 and session then
			ping_courier(now);
		end
		local alive = courier_alive(now);
		if not alive and session and R.pending_count > 0 and put_off_for ~= last_heard and unread_input(session) then
			put_off_for = last_heard;
			alive = true;
			module:log("warn", "Courier's answers are waiting unread: nothing read from it for %.1fs, but its "
				.. "connection has input (this server was paused or is behind); %d hand-offs pending stay with Courier",
				now - last_heard, R.pending_count);
		end
		local expired, overdue = {}, {};
		for hid, entry in pairs(pending) do
			local age = now - entry.first_sent;
			if age >= ack_timeout and not alive then
				expired[#expired + 1] = hid;
			elseif age >= ack_deadline then
				overdue[#overdue + 1] = hid;
			end
		end
		local function oldest_first(a, b) return pending[a].first_sent < pending[b].first_sent; end
		if #expired > 0 then
			table.sort(expired, oldest_first);
			R.fall_back(expired, session and string.format("Courier has not answered for %gs", ack_timeout)
				or "Courier is not connected");
		end
		if #overdue > 0 then
			table.sort(overdue, oldest_first);
			R.fall_back(overdue, string.format("Courier answers but did not acknowledge within %gs", ack_deadline));
		end
		R.rotate_released(now);
		R.expire_fallbacks();
	end

	module:add_timer(R.sweep_interval, R.guarded("sweep", sweep, R.sweep_interval));
end
