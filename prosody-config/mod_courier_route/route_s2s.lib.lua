-- mod_courier_route, part: federation (xeps/courier-federation.xml).  Messages
-- arriving over s2s for local users are handed to Courier like local ones (the
-- same acknowledged protocol); Courier sends them back with <deliver/>,
-- addressed to the host, since XEP-0356 re-injects only stanzas from local
-- users.  A remote server's error for a released message is copied to Courier.
-- Loaded by mod_courier_route.lua with module:require(); R is its shared table.

local st = require "util.stanza";
local jid_split = require "util.jid".split;
local uuid = require "util.uuid".generate;
local time_now = require "util.time".now; -- wall clock: delay stamps only
local monotonic = require "util.time".monotonic; -- every timeout

return function(R)
	local NS, NS_FORWARD = R.NS, R.NS_FORWARD;
	local host, courier_host = R.host, R.courier_host;
	local hosts = prosody.hosts;
	local core_post_stanza = prosody.core_post_stanza;
	local component_session, strip_ours, resolve = R.component_session, R.strip_ours, R.resolve;

	-- Stanzas this module posts itself (a delivery, a fallback) pass untouched.
	local passing = setmetatable({}, { __mode = "k" });
	function R.passing_mark(stanza) passing[stanza] = true; end

	local function s2s_recipient_kind(stanza)
		local node, to_host = jid_split(stanza.attr.to);
		if not node or to_host ~= host then return nil; end
		if R.is_online(node, to_host) then return "online"; end
		if not R.account_exists(node, to_host) then
			return nil; -- no such account: the server bounces its usual error to the remote sender
		end
		return "offline";
	end

	-- A remote server's error for a message Courier released comes back to the
	-- sender's bare JID (the re-injection's from): Courier is told (a copy, so it
	-- records a failed hop); the server goes on with the error as it would.
	local function tell_bounce(stanza)
		local node, to_host, resource = jid_split(stanza.attr.to);
		if not node or to_host ~= host or resource or not component_session() then return; end
		local copy = st.clone(stanza);
		copy.attr.xmlns = "jabber:client";
		module:send(st.message({ from = host, to = courier_host })
			:tag("bounce", { xmlns = NS })
				:tag("forwarded", { xmlns = NS_FORWARD }):add_child(copy));
	end

	-- courier-federation (xeps/courier-federation.xml): the sending server's Courier names
	-- itself in <tracked/>; it is the one element of ours kept, for our Courier only (which
	-- checks it, and drops it before delivery). A fallback delivery strips it again.
	local NS_FEDERATION = "https://courier.chat/ns/federation/0";
	local function keep_tracked(stanza, tracked)
		if tracked and not stanza:get_child("tracked", NS_FEDERATION) then
			stanza:add_direct_child(tracked);
		end
	end

	-- A message Courier composes toward a peer (a list copy, a draft: <originate/>) carries
	-- its <tracked/> on the normal path, through the sender's archive (mod_mam at 0) and
	-- carbons (-0.5): it leaves before them and is put back after them, for the peer only,
	-- on the stanza that is routed (mod_mam hands the later handlers a clone in event.stanza).
	local tracked_out = {}; -- message id -> { the routed stanza, its <tracked/> }

	local function tracked_set_aside(event)
		local origin, stanza = event.origin, event.stanza;
		if origin.full_jid or origin.type ~= "c2s" or not stanza.attr.id then return; end -- Courier's only
		local tracked = stanza:get_child("tracked", NS_FEDERATION);
		if not tracked then return; end
		stanza:remove_children("tracked", NS_FEDERATION);
		tracked_out[stanza.attr.id] = { stanza, tracked };
	end

	local function tracked_put_back(event)
		local origin, id = event.origin, event.stanza.attr.id;
		local kept = not origin.full_jid and id and tracked_out[id];
		if not kept then return; end
		tracked_out[id] = nil;
		keep_tracked(kept[1], kept[2]);
	end

	module:hook("pre-message/bare", tracked_set_aside, 998);
	module:hook("pre-message/full", tracked_set_aside, 998);
	module:hook("pre-message/bare", tracked_put_back, -3);
	module:hook("pre-message/full", tracked_put_back, -3);

	local function intercept_s2s(event)
		local origin, stanza = event.origin, event.stanza;
		if origin.type ~= "s2sin" or passing[stanza] then return; end
		-- Only Courier speaks Courier's namespaces: what a remote *user* sends loses them
		-- (a remote Courier, courier.<domain>, has no node and keeps its reports and notices).
		local tracked = jid_split(stanza.attr.from) and stanza:get_child("tracked", NS_FEDERATION);
		if jid_split(stanza.attr.from) then strip_ours(stanza); end
		if stanza.attr.type == "error" then
			tell_bounce(stanza);
			return;
		end
		local kind = R.wanted(stanza) and s2s_recipient_kind(stanza);
		if kind and R.await_room(origin) then
			kind = not R.stopping and s2s_recipient_kind(stanza); -- (it waited: the recipient may have changed)
		end
		if not kind then return; end
		local session = component_session();
		if not session then
			R.bypass("Courier (%s) is not connected: delivering %s -> %s (s2s) normally", courier_host,
				tostring(stanza.attr.from), stanza.attr.to);
			return;
		end
		keep_tracked(stanza, tracked);
		local hid = uuid();
		R.add_pending(hid, {
			stanza = stanza, origin = origin, first_sent = monotonic(), session = session,
			stamp = R.stamp(time_now()), s2s = true,
		});
		local ok, err = pcall(R.send_handoff, hid, R.pending[hid], kind);
		if not ok then
			resolve(hid);
			module:log("error", "s2s hand-off failed, delivering normally: %s", err);
			return;
		end
		return true;
	end

	local safe_intercept_s2s = R.safely("s2s hand-off", intercept_s2s);

	-- Priority 10: before mod_mam (0), mod_carbons (-0.5) and mod_message, which
	-- then see the message when Courier delivers it.
	module:hook("message/bare", safe_intercept_s2s, 10);
	module:hook("message/full", safe_intercept_s2s, 10);

	-- The component stream gives every jabber:client element an explicit xmlns;
	-- modules match children of a plain stanza by a nil one (as mod_privilege does).
	local function clean_xmlns(node)
		if node.attr.xmlns == "jabber:client" then node.attr.xmlns = nil; end
		for _, child in ipairs(node.tags) do clean_xmlns(child); end
	end

	-- Post *stanza* to its local recipient the way an s2s arrival is processed.
	local function post_inbound(origin, stanza)
		passing[stanza] = true;
		clean_xmlns(stanza);
		core_post_stanza(origin, stanza, false);
	end
	R.post_inbound = post_inbound;

	-- Courier delivers a message that came from another server: <deliver id/>
	-- around the forwarded message, from the component to the host.
	module:hook("message/host", function(event)
		local origin, stanza = event.origin, event.stanza;
		local deliver = stanza:get_child("deliver", NS);
		if not deliver then return; end
		if not R.from_courier(origin, stanza, "deliver") then return true; end
		R.heard();
		local forwarded = deliver:get_child("forwarded", NS_FORWARD);
		local inner = forwarded and (forwarded:get_child("message", "jabber:client") or forwarded:get_child("message"));
		local hid = deliver.attr.id;
		local from_host = inner and select(2, jid_split(inner.attr.from));
		local _, to_host = jid_split(inner and inner.attr.to);
		if not (hid and inner and from_host and to_host == host) or hosts[from_host] then
			module:log("warn", "Malformed route deliver from Courier dropped");
			return true;
		end
		-- Confirmed like a release (Courier keeps it in its outbox until <routed/>).
		if R.fell_back[hid] then
			R.send_fallback_notice({ hid });
			R.confirm_routed(hid);
			return true;
		end
		if R.was_released(hid) then
			R.confirm_routed(hid);
			return true;
		end
		local entry = resolve(hid);
		R.mark_released(hid);
		post_inbound(entry and entry.origin or origin, inner);
		R.confirm_routed(hid);
		return true;
	end, 1);
end
