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
local time_now = require "util.time".now;
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
local release_memory = module:get_option_number("courier_release_memory", 120);
local fallback_ttl = module:get_option_number("courier_fallback_ttl", 7 * 86400);
local sweep_interval = module:get_option_number("courier_sweep_interval", 0.5);

local hosts = prosody.hosts;
local bare_sessions = prosody.bare_sessions;
local core_post_stanza = prosody.core_post_stanza;

-- hid -> { stanza = original, origin = c2s session, first_sent = t, to_user = bare }
local pending = {};
local pending_count = 0;
-- Released hids, remembered for release_memory to 2 * release_memory seconds
-- so that a duplicate release is dropped: two generations, rotated.
local released, released_old, released_rotated = {}, {}, time_now();
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

-- XEP-0082 with milliseconds: 2026-11-23T10:00:00.123Z
local function stamp(t)
	local whole = math.floor(t);
	return datetime(whole):sub(1, -2) .. string.format(".%03dZ", math.floor((t - whole) * 1000));
end

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
	-- The original is serialised in place (no deep copy): the component
	-- session writes it out synchronously, then the namespace is restored.
	local inner = entry.stanza;
	local old_xmlns = inner.attr.xmlns;
	inner.attr.xmlns = "jabber:client";
	local handoff = st.message({ from = host, to = courier_host, id = hid })
		:tag("handoff", { xmlns = NS, id = hid, recipient = kind })
			:tag("forwarded", { xmlns = NS_FORWARD })
				:tag("delay", { xmlns = NS_DELAY, stamp = entry.stamp }):up()
				:add_child(inner);
	local ok, err = pcall(module.send, module, handoff);
	inner.attr.xmlns = old_xmlns;
	if not ok then error(err, 0); end
end

local passing_mark; -- set below: marks stanzas posted by this module (federation)

local function deliver_normally(entry)
	-- No pre-events: the sender's archive and carbons already saw it.
	strip_ours(entry.stanza);
	if entry.s2s then passing_mark(entry.stanza); end
	core_post_stanza(entry.origin, entry.stanza, false);
end

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
	local now = time_now();
	local entry = {
		stanza = stanza, origin = origin, first_sent = now, session = session,
		stamp = stamp(now),
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
-- that has no full_jid. Deliver directly, without a second pass through the
-- sender's archive, carbons or our interception.
local function reinjected(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.full_jid or origin.type ~= "c2s" then return; end
	local release = stanza:get_child("release", NS);
	if not release then return; end -- Courier's own new messages take the normal path
	stanza:remove_children("release", NS);
	local hid = release.attr.id;
	if not hid then
		module:log("warn", "Release without id from Courier dropped");
		return true;
	end
	if fell_back[hid] then
		module:log("warn", "Courier released %s after the server delivered it by fallback; dropped", hid);
		send_fallback_notice({ hid });
		return true;
	end
	if released[hid] or released_old[hid] then
		module:log("debug", "Duplicate release of %s dropped", hid);
		return true;
	end
	resolve(hid);
	released[hid] = true;
	core_post_stanza(origin, stanza, false);
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

-- Acknowledgements from Courier, addressed to the host.
module:hook("message/host", function(event)
	local origin, stanza = event.origin, event.stanza;
	local ack = stanza:get_child("ack", NS);
	if not ack then return; end
	if origin.type ~= "component" or origin.host ~= courier_host then
		module:log("warn", "Route ack from %s ignored: not from %s", tostring(stanza.attr.from), courier_host);
		return true;
	end
	for item in ack:childtags("item") do
		local hid = item.attr.id;
		if hid and not resolve(hid) and fell_back[hid] then
			-- Courier stored a message the server already delivered; tell it again.
			send_fallback_notice({ hid });
		end
	end
	return true;
end);

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

local function intercept_s2s(event)
	local origin, stanza = event.origin, event.stanza;
	if origin.type ~= "s2sin" or passing[stanza] then return; end
	-- Only Courier speaks Courier's namespaces: what a remote *user* sends loses them
	-- (a remote Courier, courier.<domain>, has no node and keeps its reports and notices).
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
	local hid = uuid();
	local now = time_now();
	pending[hid] = {
		stanza = stanza, origin = origin, first_sent = now, session = session, stamp = stamp(now), s2s = true,
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
local function post_inbound(origin, stanza)
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
	if origin.type ~= "component" or origin.host ~= courier_host then
		module:log("warn", "Route deliver from %s ignored: not from %s", tostring(stanza.attr.from), courier_host);
		return true;
	end
	local forwarded = deliver:get_child("forwarded", NS_FORWARD);
	local inner = forwarded and (forwarded:get_child("message", "jabber:client") or forwarded:get_child("message"));
	local hid = deliver.attr.id;
	local from_host = inner and select(2, jid_split(inner.attr.from));
	local _, to_host = jid_split(inner and inner.attr.to);
	if not (hid and inner and from_host and to_host == host) or hosts[from_host] then
		module:log("warn", "Malformed route deliver from Courier dropped");
		return true;
	end
	if fell_back[hid] then
		send_fallback_notice({ hid });
		return true;
	end
	if released[hid] or released_old[hid] then return true; end
	local entry = resolve(hid);
	released[hid] = true;
	post_inbound(entry and entry.origin or origin, inner);
	return true;
end, 1);

local resend_pending;

local function sweep()
	local now = time_now();
	local session = component_session();
	if session ~= seen_session then
		seen_session = session;
		if session then
			module:log("info", "Courier connected on %s (%d messages were delivered without it while it was away)",
				courier_host, bypassed);
			bypassed = 0;
			resend_pending(session);
		else
			module:log("warn", "Courier disconnected: %d hand-offs pending; new messages are delivered normally until it is back",
				pending_count);
		end
	end
	local expired = {};
	for hid, entry in pairs(pending) do
		if now - entry.first_sent >= ack_timeout then
			expired[#expired + 1] = hid;
		end
	end
	if #expired > 0 then
		table.sort(expired, function(a, b) return pending[a].first_sent < pending[b].first_sent; end);
		for _, hid in ipairs(expired) do
			local entry = resolve(hid);
			fell_back[hid] = now;
			fell_back_dirty = true;
			module:log("warn", "Courier did not acknowledge %s within %gs: delivering %s -> %s normally",
				hid, ack_timeout, tostring(entry.origin.full_jid), tostring(entry.stanza.attr.to));
			deliver_normally(entry);
		end
		send_fallback_notice(expired);
	end
	if now - released_rotated > release_memory then
		released, released_old, released_rotated = {}, released, now;
	end
	for hid, t in pairs(fell_back) do
		if now - t > fallback_ttl then fell_back[hid] = nil; fell_back_dirty = true; end
	end
	save_fallbacks();
	return sweep_interval;
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

module:add_timer(sweep_interval, sweep);

function module.load()
	module:log("info", "Routing 1:1 messages through %s (ack timeout %gs)", courier_host, ack_timeout);
end

function module.unload()
	-- Nothing may be lost: whatever is still pending is delivered now.
	for hid, entry in pairs(pending) do
		fell_back[hid] = time_now();
		fell_back_dirty = true;
		deliver_normally(entry);
	end
	pending = {};
	pending_count = 0;
	save_fallbacks();
end

module:hook_global("server-stopping", function()
	module.unload();
end);
