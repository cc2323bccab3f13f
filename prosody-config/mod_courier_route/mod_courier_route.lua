-- mod_courier_route: hand local users' 1:1 messages to the Courier component,
-- with acknowledgement, and deliver Courier's privileged re-injections.
--
-- Protocol: xeps/courier-route.xml (namespace https://courier.chat/ns/route/0).
-- Options and behaviour: README.md beside this file.
--
-- Copyright (C) 2026 the Courier team. MIT licensed.

local st = require "util.stanza";
local jid_split = require "util.jid".split;
local jid_bare = require "util.jid".bare;
local uuid = require "util.uuid".generate;
local datetime = require "util.datetime".datetime;
local time_now = require "util.time".now; -- wall clock: delay stamps and persisted fallback times only
local monotonic = require "util.time".monotonic; -- every timeout
local user_exists = require "core.usermanager".user_exists;

local NS = "https://courier.chat/ns/route/0";
local NS_FORWARD = "urn:xmpp:forward:0";
local NS_DELAY = "urn:xmpp:delay";
local NS_RETRACT1 = "urn:xmpp:message-retract:1";
local NS_FASTEN = "urn:xmpp:fasten:0";
local NS_RECEIPTS = "urn:xmpp:receipts";
local NS_MARKERS = "urn:xmpp:chat-markers:0";
local OUR_NS_PREFIX = "https://courier.chat/ns/";

local host = module.host;
local courier_host = module:get_option_string("courier_component", "courier." .. host);
local ack_timeout = module:get_option_number("courier_ack_timeout", 5);
local ack_deadline = module:get_option_number("courier_ack_deadline", 120);
local release_memory = module:get_option_number("courier_release_memory", 900);
local fallback_ttl = module:get_option_number("courier_fallback_ttl", 30 * 86400);
local sweep_interval = module:get_option_number("courier_sweep_interval", 0.5);

local hosts = prosody.hosts;
local bare_sessions = prosody.bare_sessions;
local core_post_stanza = prosody.core_post_stanza;

-- hid -> { stanza = original, origin = c2s session, first_sent = monotonic t, stamp = delay stamp }
local pending = {};
local pending_count = 0;
-- Released hids and originated ids, remembered for release_memory to
-- 2 * release_memory seconds so that a duplicate (a re-send) is dropped: two
-- generations, rotated.
local released, released_old, released_rotated = {}, {}, monotonic();
-- hid -> time: hids whose message the server delivered itself; persisted
local fallback_store = module:open_store("courier_route", "keyval");
local fell_back = fallback_store:get("fallback") or {};
local fell_back_dirty = false;

-- The session we last saw; a new one means Courier (re)connected.
local seen_session = nil;
-- Messages delivered normally because Courier was not connected, this outage.
local bypassed = 0;

-- The component's stream session, or nil while Courier is not connected.
local function component_session()
	local h = hosts[courier_host];
	local env = h and h.modules and h.modules.component;
	return env and env.connected and env.session or nil;
end

local function is_online(username, user_host)
	local user = bare_sessions[username .. "@" .. user_host];
	if not user then return false; end
	for _, session in pairs(user.sessions) do
		if session.presence and (session.priority or 0) >= 0 then
			return true;
		end
	end
	return false;
end

-- Which messages Courier processes: chat/normal with a body or a retraction,
-- and the receipts and markers that acknowledge messages (hop tracking).
local function wanted(stanza)
	local t = stanza.attr.type;
	if t ~= nil and t ~= "chat" and t ~= "normal" then return false; end
	if stanza:get_child("body") then return true; end
	if stanza:get_child("retract", NS_RETRACT1) then return true; end
	local fasten = stanza:get_child("apply-to", NS_FASTEN);
	if fasten and fasten:get_child("retract", "urn:xmpp:message-retract:0") then return true; end
	if stanza:get_child("received", NS_RECEIPTS) then return true; end
	for marker in stanza:childtags(nil, NS_MARKERS) do
		if marker.name ~= "markable" then return true; end
	end
	return false;
end

-- Only Courier speaks Courier's namespaces: a client's forgeries are removed
-- from every message it sends, handed off or not, at any depth (one nested in a
-- foreign element would otherwise reach the recipient as Courier's).
local function is_ours(tag)
	local xmlns = tag.attr.xmlns;
	return xmlns ~= nil and xmlns:sub(1, #OUR_NS_PREFIX) == OUR_NS_PREFIX;
end

local function has_ours(stanza)
	for _, child in ipairs(stanza.tags) do -- (childtags() would only see jabber:client children)
		if is_ours(child) or has_ours(child) then return true; end
	end
	return false;
end

local function remove_ours(stanza)
	stanza:maptags(function(child)
		if is_ours(child) then return nil; end
		remove_ours(child);
		return child;
	end);
end

local function strip_ours(stanza)
	if has_ours(stanza) then remove_ours(stanza); end
end

-- "online" | "offline" | "unknown" | "remote" | nil (nil: not ours to hand off)
local function recipient_kind(stanza, origin)
	local to = stanza.attr.to;
	if not to then return nil; end -- to self
	local node, to_host = jid_split(to);
	if not node then return nil; end
	if to_host == courier_host then return nil; end
	local h = hosts[to_host];
	if h then
		if h.type ~= "local" then return nil; end -- MUC and other components
		if node == origin.username and to_host == origin.host then return nil; end -- own resources
		if is_online(node, to_host) then return "online"; end
		-- (a user with a session exists; only look the account up for the others)
		if not bare_sessions[node .. "@" .. to_host] and not user_exists(node, to_host) then
			return "unknown"; -- Courier records the failure; on release the server bounces its usual error
		end
		return "offline";
	end
	return "remote";
end

-- XEP-0082 with milliseconds: 2026-11-23T10:00:00.123Z (the date part formatted once a second)
local stamp_second, stamp_prefix = nil, nil;
local function stamp(t)
	local whole = math.floor(t);
	if whole ~= stamp_second then
		stamp_second, stamp_prefix = whole, datetime(whole):sub(1, -2);
	end
	return stamp_prefix .. string.format(".%03dZ", math.floor((t - whole) * 1000));
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
			kind = (bare_sessions[node .. "@" .. to_host] or user_exists(node, to_host)) and "offline" or "unknown";
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
	-- 'unknown', which is not kept.  (hid, kind and the stamp need no escaping.)
	local copy = kind == "unknown" and "" or "' copy='kept";
	session.send(HANDOFF_OPEN .. hid .. HANDOFF_MIDDLE .. hid .. "' recipient='" .. kind .. copy
		.. HANDOFF_FORWARDED .. entry.stamp .. "'/>" .. message .. HANDOFF_CLOSE);
end

local passing_mark; -- set below: marks stanzas posted by this module (federation)

local function deliver_normally(entry)
	-- No pre-events: the sender's archive and carbons already saw it.
	strip_ours(entry.stanza);
	if entry.s2s then passing_mark(entry.stanza); end
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

local function send_fallback_notice(hids)
	if #hids == 0 or not component_session() then return; end
	local notice = st.message({ from = host, to = courier_host }):tag("fallback", { xmlns = NS });
	for _, hid in ipairs(hids) do
		notice:tag("item", { id = hid }):up();
	end
	module:send(notice);
end

local function resolve(hid)
	local entry = pending[hid];
	if entry then
		pending[hid] = nil;
		pending_count = pending_count - 1;
	end
	return entry;
end

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

---------------------------------------------------------------------------
-- Confirmations: every release and every message Courier originates is
-- confirmed to Courier once routed (batched: one <routed/> per turn), so
-- Courier re-sends what a crash of this server lost before routing it.
---------------------------------------------------------------------------
-- Every timer callback is guarded: an error is logged and the timer goes on.
local function guarded(name, fn, interval)
	return function()
		local ok, err = pcall(fn);
		if not ok then module:log("error", "%s failed (a repeating timer runs again): %s", name, err); end
		return interval;
	end
end

local to_confirm = {};
local confirm_timer = nil;

local function send_confirmations()
	confirm_timer = nil; -- (first: an error below must not stop later confirmations)
	if #to_confirm == 0 then return; end
	local ids = to_confirm;
	to_confirm = {};
	if not component_session() then return; end -- Courier re-sends on reconnect; duplicates are dropped
	local notice = st.message({ from = host, to = courier_host }):tag("routed", { xmlns = NS });
	for _, id in ipairs(ids) do
		notice:tag("item", { id = id }):up();
	end
	local ok, err = pcall(module.send, module, notice);
	if not ok then module:log("error", "Could not confirm %d routed messages to Courier: %s", #ids, err); end
end

local function confirm_routed(id)
	to_confirm[#to_confirm + 1] = id;
	if not confirm_timer then
		confirm_timer = module:add_timer(0, guarded("confirm", send_confirmations, nil));
	end
end

-- Intercept: priority -2 runs after mod_mam (0), mod_carbons (-0.5) and
-- mod_mam's stanza-id stripping (-1) on the sender's side.
local function intercept(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "c2s" or not origin.full_jid then return; end -- re-injections and s2s
	local _, to_host = jid_split(stanza.attr.to);
	if to_host == courier_host then return; end -- what is addressed to Courier, Courier judges
	local kind = wanted(stanza) and recipient_kind(stanza, origin);
	if not kind then
		strip_ours(stanza);
		return;
	end
	local session = component_session();
	if not session then
		strip_ours(stanza);
		bypassed = bypassed + 1;
		module:log(bypassed == 1 and "warn" or "debug",
			"Courier (%s) is not connected: delivering %s -> %s normally", courier_host, origin.full_jid, stanza.attr.to);
		return;
	end
	local hid = uuid();
	local entry = {
		stanza = stanza, origin = origin, first_sent = monotonic(), session = session,
		stamp = stamp(time_now()),
	};
	if kind == "unknown" then
		-- No such account: Courier only records the failure (nothing to acknowledge);
		-- the server bounces its usual error to the sender's own session.
		pcall(send_handoff, hid, entry, kind);
		strip_ours(stanza);
		return;
	end
	pending[hid] = entry;
	pending_count = pending_count + 1;
	local ok, err = pcall(send_handoff, hid, entry, kind);
	if not ok then
		resolve(hid); -- not handed off: the caller delivers it normally
		error(err, 0);
	end
	return true;
end

-- A bug here must never lose a message: on error, Prosody delivers it normally.
local function safe_intercept(event)
	local ok, result = pcall(intercept, event);
	if ok then return result; end
	module:log("error", "Hand-off failed, delivering normally: %s", result);
	return nil;
end

module:hook("pre-message/bare", safe_intercept, -2);
module:hook("pre-message/full", safe_intercept, -2);


-- Courier's privileged re-injection: mod_privilege posts it with a session
-- that has no full_jid.  A <release/> is delivered directly, without a second
-- pass through the sender's archive, carbons or our interception; an
-- <originate/> (a message Courier composed: list copy, draft, receipt) takes
-- the normal path.  Both are confirmed once routed; a re-send is dropped.
local function reinjected(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.full_jid or origin.type ~= "c2s" then return; end
	local release = stanza:get_child("release", NS);
	local originate = not release and stanza:get_child("originate", NS);
	if not (release or originate) then return; end -- an old Courier's new messages take the normal path
	heard();
	stanza:remove_children("release", NS);
	stanza:remove_children("originate", NS);
	local hid = (release or originate).attr.id;
	if not hid then
		module:log("warn", "Release without id from Courier dropped");
		return true;
	end
	if originate then
		if released[hid] or released_old[hid] then
			module:log("debug", "Re-sent message %s from Courier dropped: already routed", hid);
			confirm_routed(hid);
			return true;
		end
		released[hid] = true;
		confirm_routed(hid); -- sent next turn, after the rest of this event routed it
		return; -- the normal path: archive, carbons, delivery
	end
	if fell_back[hid] then
		module:log("warn", "Courier released %s after the server delivered it by fallback; dropped", hid);
		send_fallback_notice({ hid });
		confirm_routed(hid);
		return true;
	end
	if released[hid] or released_old[hid] then
		module:log("debug", "Duplicate release of %s dropped", hid);
		confirm_routed(hid);
		return true;
	end
	resolve(hid);
	released[hid] = true;
	core_post_stanza(origin, stanza, false);
	confirm_routed(hid);
	return true;
end

module:hook("pre-message/bare", reinjected, 1000);
module:hook("pre-message/full", reinjected, 1000);

-- Courier's copy for the sender only (a retraction after a recall by command): the
-- server archives it and copies it to the sender's devices like her own outgoing
-- message (mod_mam at 0, mod_carbons at -0.5), then does not deliver it. Marked by
-- its id (Courier's UUID): mod_mam replaces event.stanza with a clone on the way.
local sender_only = {};

local function sender_only_marked(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.full_jid or origin.type ~= "c2s" then return; end -- only Courier's re-injections
	if not stanza:get_child("sender-only", NS) or not stanza.attr.id then return; end
	stanza:remove_children("sender-only", NS);
	sender_only[stanza.attr.id] = true;
end

local function sender_only_kept(event)
	local origin, id = event.origin, event.stanza.attr.id;
	if origin.full_jid or not id or not sender_only[id] then return; end
	sender_only[id] = nil;
	return true;
end

module:hook("pre-message/bare", sender_only_marked, 999);
module:hook("pre-message/full", sender_only_marked, 999);
module:hook("pre-message/bare", sender_only_kept, -3);
module:hook("pre-message/full", sender_only_kept, -3);

local post_inbound; -- set below: posts a message that came over s2s (federation)

-- Release by reference: Courier stored the hand-off and released it unchanged, so
-- this server routes the original it kept (the body never comes back to it).
-- The same rules as a <release/>: once per HID, never after a fallback, confirmed.
local function release_copy(hid)
	if fell_back[hid] then
		module:log("warn", "Courier released %s after the server delivered it by fallback; dropped", hid);
		send_fallback_notice({ hid });
		confirm_routed(hid);
		return;
	end
	if released[hid] or released_old[hid] then
		confirm_routed(hid);
		return;
	end
	local entry = resolve(hid);
	if not entry then
		-- (e.g. this server restarted since): Courier re-sends the full release from its
		-- outbox at its next connection, since it is not confirmed.
		module:log("warn", "Release by reference of %s, which this server does not hold; awaiting the full release", hid);
		return;
	end
	released[hid] = true;
	local stanza = entry.stanza;
	strip_ours(stanza);
	if entry.s2s then
		post_inbound(entry.origin, stanza);
	else
		stanza.attr.from = jid_bare(stanza.attr.from); -- as a privileged release carries it
		core_post_stanza(entry.origin, stanza, false);
	end
	confirm_routed(hid);
end

-- A route stanza (<ack/>, <deliver/>) counts only from Courier's own component session.
local function from_courier(origin, stanza, what)
	if origin.type == "component" and origin.host == courier_host then return true; end
	module:log("warn", "Route %s from %s ignored: not from %s", what, tostring(stanza.attr.from), courier_host);
	return false;
end

-- Acknowledgements (and releases by reference) from Courier, addressed to the host.
-- Priority 2: before mod_privilege (0) and the <deliver/> handler (1).
module:hook("message/host", function(event)
	local origin, stanza = event.origin, event.stanza;
	local ack = stanza:get_child("ack", NS);
	if not ack then return; end
	if not from_courier(origin, stanza, "ack") then return true; end
	heard();
	local items = ack.tags;
	for i = 1, #items do -- in order: releases by reference keep Courier's order
		local item = items[i];
		local attr = item.attr;
		local hid = attr.id;
		if hid and item.name == "item" then
			local release = attr.release;
			if release == "true" or release == "1" then
				release_copy(hid);
			elseif not resolve(hid) and fell_back[hid] then
				-- Courier stored a message the server already delivered; tell it again.
				send_fallback_notice({ hid });
			end
		end
	end
	return true;
end, 2);

-- Federation (xeps/courier-federation.xml): messages arriving over s2s for
-- local users are handed to Courier like local ones (the same acknowledged
-- protocol); Courier sends them back with <deliver/>, addressed to the host,
-- since XEP-0356 re-injects only stanzas from local users.
-- Stanzas this module posts itself (a delivery, a fallback) pass untouched.
local passing = setmetatable({}, { __mode = "k" });
function passing_mark(stanza) passing[stanza] = true; end

local function s2s_recipient_kind(stanza)
	local node, to_host = jid_split(stanza.attr.to);
	if not node or to_host ~= host then return nil; end
	if is_online(node, to_host) then return "online"; end
	if not bare_sessions[node .. "@" .. to_host] and not user_exists(node, to_host) then
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
	local kind = wanted(stanza) and s2s_recipient_kind(stanza);
	if not kind then return; end
	local session = component_session();
	if not session then
		bypassed = bypassed + 1;
		module:log(bypassed == 1 and "warn" or "debug",
			"Courier (%s) is not connected: delivering %s -> %s (s2s) normally", courier_host,
			tostring(stanza.attr.from), stanza.attr.to);
		return;
	end
	keep_tracked(stanza, tracked);
	local hid = uuid();
	pending[hid] = {
		stanza = stanza, origin = origin, first_sent = monotonic(), session = session,
		stamp = stamp(time_now()), s2s = true,
	};
	pending_count = pending_count + 1;
	local ok, err = pcall(send_handoff, hid, pending[hid], kind);
	if not ok then
		resolve(hid);
		module:log("error", "s2s hand-off failed, delivering normally: %s", err);
		return;
	end
	return true;
end

local function safe_intercept_s2s(event)
	local ok, result = pcall(intercept_s2s, event);
	if ok then return result; end
	module:log("error", "s2s hand-off failed, delivering normally: %s", result);
	return nil;
end

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
function post_inbound(origin, stanza)
	passing[stanza] = true;
	clean_xmlns(stanza);
	core_post_stanza(origin, stanza, false);
end

-- Courier delivers a message that came from another server: <deliver id/>
-- around the forwarded message, from the component to the host.
module:hook("message/host", function(event)
	local origin, stanza = event.origin, event.stanza;
	local deliver = stanza:get_child("deliver", NS);
	if not deliver then return; end
	if not from_courier(origin, stanza, "deliver") then return true; end
	heard();
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
	if fell_back[hid] then
		send_fallback_notice({ hid });
		confirm_routed(hid);
		return true;
	end
	if released[hid] or released_old[hid] then
		confirm_routed(hid);
		return true;
	end
	local entry = resolve(hid);
	released[hid] = true;
	post_inbound(entry and entry.origin or origin, inner);
	confirm_routed(hid);
	return true;
end, 1);

-- mod_privilege advertises privileges to every session at its first presence,
-- as an empty <privilege/> message to ordinary users: meant for the
-- component, noise to users.  A c2s session with no privilege gets none.
-- (mod_privilege sends it from its presence/initial hook, priority 0: this runs first.)
module:hook("presence/initial", function(event)
	local privileges = event.origin and event.origin.privileges;
	if privileges and privileges[host] and next(privileges[host]) == nil then
		privileges[host] = nil;
	end
end, 10);

local resend_pending;

-- Deliver these pending hand-offs normally; the fallback is persisted first.
local function fall_back(hids, why)
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

local function resend_fallback_notices()
	local hids = {};
	for hid in pairs(fell_back) do
		hids[#hids + 1] = hid;
		if #hids == 500 then send_fallback_notice(hids); hids = {}; end
	end
	send_fallback_notice(hids);
end

local function sweep()
	local now = monotonic();
	local session = component_session();
	if session ~= seen_session then
		seen_session = session;
		if session then
			module:log("info", "Courier connected on %s (%d messages were delivered without it while it was away)",
				courier_host, bypassed);
			bypassed = 0;
			heard();
			resend_pending(session);
			resend_fallback_notices();
		else
			module:log("warn", "Courier disconnected: %d hand-offs pending; new messages are delivered normally until it is back",
				pending_count);
		end
	end
	if pending_count > 0 and session then
		ping_courier(now);
	end
	local alive = courier_alive(now);
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
		fall_back(expired, session and string.format("Courier has not answered for %gs", ack_timeout)
			or "Courier is not connected");
	end
	if #overdue > 0 then
		table.sort(overdue, oldest_first);
		fall_back(overdue, string.format("Courier answers but did not acknowledge within %gs", ack_deadline));
	end
	if now - released_rotated > release_memory then
		released, released_old, released_rotated = {}, released, now;
	end
	local wall = time_now();
	for hid, t in pairs(fell_back) do
		if wall - t > fallback_ttl then fell_back[hid] = nil; fell_back_dirty = true; end
	end
	save_fallbacks();
end

function resend_pending(session)
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

module:add_timer(sweep_interval, guarded("sweep", sweep, sweep_interval));

function module.load()
	module:log("info", "Routing 1:1 messages through %s (fallback after %gs of silence, or %gs for one hand-off)",
		courier_host, ack_timeout, ack_deadline);
end

function module.unload()
	-- Nothing may be lost: whatever is still pending is delivered now.
	local hids = {};
	for hid in pairs(pending) do hids[#hids + 1] = hid; end
	if #hids > 0 then fall_back(hids, "Unloading"); end
	save_fallbacks();
end

module:hook_global("server-stopping", function()
	module.unload();
end);
