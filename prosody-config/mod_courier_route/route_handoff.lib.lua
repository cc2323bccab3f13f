-- mod_courier_route, part: hand-offs out (local senders), and the fallback:
-- a pending hand-off delivered normally, recorded (persisted) first.
-- Loaded by mod_courier_route.lua with module:require(); R is its shared table.

local st = require "util.stanza";
local jid_split = require "util.jid".split;
local uuid = require "util.uuid".generate;
local time_now = require "util.time".now; -- wall clock: delay stamps and persisted fallback times only
local monotonic = require "util.time".monotonic; -- every timeout

return function(R)
	local NS, NS_FORWARD, NS_DELAY = R.NS, R.NS_FORWARD, R.NS_DELAY;
	local host, courier_host = R.host, R.courier_host;
	local hosts = prosody.hosts;
	local core_post_stanza = prosody.core_post_stanza;
	local pending = R.pending;
	local component_session, is_online, account_exists = R.component_session, R.is_online, R.account_exists;
	local strip_ours, resolve = R.strip_ours, R.resolve;

	-- hid -> time: hids whose message the server delivered itself; persisted
	local fallback_store = module:open_store("courier_route", "keyval");
	local fell_back = fallback_store:get("fallback") or {};
	local fell_back_dirty = false;
	R.fell_back = fell_back;

	-- "online" | "offline" | "unknown" | "remote" | nil (nil: not ours to hand off)
	-- (node, to_host: the split 'to' of the stanza, nil for one to self)
	local function recipient_kind(node, to_host, origin)
		if not node then return nil; end
		if to_host == courier_host then return nil; end
		local h = hosts[to_host];
		if h then
			if h.type ~= "local" then return nil; end -- MUC and other components
			if node == origin.username and to_host == origin.host then return nil; end -- own resources
			if is_online(node, to_host) then return "online"; end
			if not account_exists(node, to_host) then
				return "unknown"; -- Courier records the failure; on release the server bounces its usual error
			end
			return "offline";
		end
		return "remote";
	end

	-- The hand-off's wrapper, as text: only the original message is serialised per
	-- hand-off (no wrapper stanza built, no routing events for it).  The same bytes
	-- as module:send() of the equivalent stanza, which mod_component writes as is.
	local xml_escape = st.xml_escape;
	local HANDOFF_OPEN = "<message from='" .. xml_escape(host) .. "' to='" .. xml_escape(courier_host) .. "' id='";
	local HANDOFF_MIDDLE = "'><handoff xmlns='" .. NS .. "' id='";
	local HANDOFF_FORWARDED = "'><forwarded xmlns='" .. NS_FORWARD .. "'><delay xmlns='" .. NS_DELAY .. "' stamp='";
	local HANDOFF_CLOSE = "</forwarded></handoff></message>";

	-- Send the hand-off for a pending entry; kind = the recipient's state now.
	local function send_handoff(hid, entry, kind)
		if not kind then
			local node, to_host = jid_split(entry.stanza.attr.to);
			if not hosts[to_host] then
				kind = "remote";
			elseif is_online(node, to_host) then
				kind = "online";
			else
				kind = account_exists(node, to_host) and "offline" or "unknown";
			end
		end
		local session = component_session();
		if not session then error("Courier is not connected", 0); end
		-- The original is serialised in place (no deep copy), then its namespace is restored.
		local inner = entry.stanza;
		local old_xmlns = inner.attr.xmlns;
		inner.attr.xmlns = "jabber:client";
		local ok, message = pcall(tostring, inner);
		inner.attr.xmlns = old_xmlns;
		if not ok then error(message, 0); end
		-- copy='kept': this server holds the original until it is answered, so Courier may
		-- answer "stored, deliver your copy" (an <ack/> item with release='true'); not for
		-- 'unknown', which is not kept; toward another server, adds='tracked': this server adds
		-- the <tracked/> given with such a release.  (hid, kind and the stamp need no escaping.)
		local copy = kind == "unknown" and "" or kind == "remote" and "' copy='kept' adds='tracked" or "' copy='kept";
		session.send(HANDOFF_OPEN .. hid .. HANDOFF_MIDDLE .. hid .. "' recipient='" .. kind .. copy
			.. HANDOFF_FORWARDED .. entry.stamp .. "'/>" .. message .. HANDOFF_CLOSE);
	end
	R.send_handoff = send_handoff;

	local function deliver_normally(entry)
		-- No pre-events: the sender's archive and carbons already saw it.
		strip_ours(entry.stanza);
		if entry.s2s then R.passing_mark(entry.stanza); end
		core_post_stanza(entry.origin, entry.stanza, false);
	end

	-- Persisted at once (Prosody's storage writes synchronously): a fallback is
	-- recorded before its message is delivered, so a crash cannot forget it.
	local function save_fallbacks()
		if fell_back_dirty then
			fell_back_dirty = false;
			local ok, err = fallback_store:set("fallback", fell_back);
			if not ok then
				module:log("error", "Could not persist fallback ids: %s", err);
			end
		end
	end
	R.save_fallbacks = save_fallbacks;

	local function send_fallback_notice(hids)
		if #hids == 0 or not component_session() then return; end
		local notice = st.message({ from = host, to = courier_host }):tag("fallback", { xmlns = NS });
		for _, hid in ipairs(hids) do
			notice:tag("item", { id = hid }):up();
		end
		module:send(notice);
	end
	R.send_fallback_notice = send_fallback_notice;

	-- Intercept: priority -2 runs after mod_mam (0), mod_carbons (-0.5) and
	-- mod_mam's stanza-id stripping (-1) on the sender's side.
	local function intercept(event)
		local origin, stanza = event.origin, event.stanza;
		if origin.type ~= "c2s" or not origin.full_jid then return; end -- re-injections and s2s
		local node, to_host = jid_split(stanza.attr.to);
		if to_host == courier_host then return; end -- what is addressed to Courier, Courier judges
		local kind = R.wanted(stanza) and recipient_kind(node, to_host, origin);
		if kind and kind ~= "unknown" and R.await_room(origin) then
			kind = not R.stopping and recipient_kind(node, to_host, origin); -- (it waited: the recipient may have changed)
		end
		if not kind then
			strip_ours(stanza);
			return;
		end
		local session = component_session();
		if not session then
			strip_ours(stanza);
			R.bypass("Courier (%s) is not connected: delivering %s -> %s normally",
				courier_host, origin.full_jid, stanza.attr.to);
			return;
		end
		local hid = uuid();
		local entry = {
			stanza = stanza, origin = origin, first_sent = monotonic(), session = session,
			stamp = R.stamp(time_now()),
		};
		if kind == "unknown" then
			-- No such account: Courier only records the failure (nothing to acknowledge);
			-- the server bounces its usual error to the sender's own session.
			pcall(send_handoff, hid, entry, kind);
			strip_ours(stanza);
			return;
		end
		R.add_pending(hid, entry);
		local ok, err = pcall(send_handoff, hid, entry, kind);
		if not ok then
			resolve(hid); -- not handed off: the caller delivers it normally
			error(err, 0);
		end
		return true;
	end

	local safe_intercept = R.safely("Hand-off", intercept);

	module:hook("pre-message/bare", safe_intercept, -2);
	module:hook("pre-message/full", safe_intercept, -2);

	-- Deliver these pending hand-offs normally; the fallback is persisted first.
	function R.fall_back(hids, why)
		-- only hand-offs still pending: one answered (or fallen back) meanwhile is not delivered again
		local entries, pending_hids = {}, {};
		for _, hid in ipairs(hids) do
			local entry = resolve(hid);
			if entry then
				entries[#entries + 1], pending_hids[#pending_hids + 1] = entry, hid;
			end
		end
		if #pending_hids == 0 then return; end
		local wall = time_now();
		for _, hid in ipairs(pending_hids) do
			fell_back[hid] = wall;
		end
		fell_back_dirty = true;
		save_fallbacks();
		for i, entry in ipairs(entries) do
			module:log("warn", "%s: delivering %s (%s -> %s) normally", why,
				pending_hids[i], tostring(entry.origin.full_jid), tostring(entry.stanza.attr.to));
			deliver_normally(entry);
		end
		send_fallback_notice(pending_hids);
	end

	function R.resend_fallback_notices()
		local hids = {};
		for hid in pairs(fell_back) do
			hids[#hids + 1] = hid;
			if #hids == 500 then send_fallback_notice(hids); hids = {}; end
		end
		send_fallback_notice(hids);
	end

	-- Forget fallen-back hids older than courier_fallback_ttl; persist what changed.
	function R.expire_fallbacks()
		local wall = time_now();
		for hid, t in pairs(fell_back) do
			if wall - t > R.fallback_ttl then fell_back[hid] = nil; fell_back_dirty = true; end
		end
		save_fallbacks();
	end

	-- Courier (re)connected on *session*: every hand-off not yet sent on it goes again, oldest first.
	function R.resend_pending(session)
		local order = {};
		for hid, entry in pairs(pending) do
			if entry.session ~= session then order[#order + 1] = hid; end
		end
		table.sort(order, function(a, b) return pending[a].first_sent < pending[b].first_sent; end);
		if #order > 0 then
			module:log("info", "Courier connected: re-sending %d pending hand-offs", #order);
		end
		for _, hid in ipairs(order) do
			pending[hid].session = session;
			send_handoff(hid, pending[hid]);
		end
	end
end
