-- mod_courier_route: hand local users' 1:1 messages to the Courier component,
-- with acknowledgement, and deliver Courier's privileged re-injections.
--
-- Protocol: xeps/courier-route.xml (namespace https://courier.chat/ns/route/0).
-- Options and behaviour: README.md beside this file.
--
-- This file holds the options, the shared state and the helpers every part
-- uses; the parts are libraries beside it, one concern each, loaded with
-- module:require() (route_<part>.lib.lua, run in this module's environment):
--   route_pressure back-pressure: a sender with too many hand-offs pending is not read
--   route_handoff  hand-offs out, fallback (normal delivery) and its persistence
--   route_release  releases, acks, Courier's own messages, confirmations
--   route_s2s      messages arriving over s2s, bounces, <deliver/>
--   route_sweep    liveness (ping), timeouts, reconnects: the one repeating timer
-- Each part is a function of R, the table below: what one part calls in
-- another, or state several parts change, is a field of R.
--
-- Copyright (C) 2026 the Courier team. MIT licensed.

local datetime = require "util.datetime".datetime;
local user_exists = require "core.usermanager".user_exists;

local NS_RETRACT1 = "urn:xmpp:message-retract:1";
local NS_FASTEN = "urn:xmpp:fasten:0";
local NS_RECEIPTS = "urn:xmpp:receipts";
local NS_MARKERS = "urn:xmpp:chat-markers:0";
local OUR_NS_PREFIX = "https://courier.chat/ns/";

local host = module.host;
local courier_host = module:get_option_string("courier_component", "courier." .. host);

local R = {
	NS = "https://courier.chat/ns/route/0";
	NS_FORWARD = "urn:xmpp:forward:0";
	NS_DELAY = "urn:xmpp:delay";
	host = host;
	courier_host = courier_host;
	ack_timeout = module:get_option_number("courier_ack_timeout", 5);
	ack_deadline = module:get_option_number("courier_ack_deadline", 120);
	release_memory = module:get_option_number("courier_release_memory", 900);
	fallback_ttl = module:get_option_number("courier_fallback_ttl", 30 * 86400);
	sweep_interval = module:get_option_number("courier_sweep_interval", 0.5);
	sender_limit = module:get_option_number("courier_sender_limit", 500);
	stopping = false; -- unloading: a sender woken now is delivered normally
};

local hosts = prosody.hosts;
local bare_sessions = prosody.bare_sessions;

-- hid -> { stanza = original, origin = c2s session, first_sent = monotonic t, stamp = delay stamp }
local pending = {};
R.pending = pending;
R.pending_count = 0;

function R.add_pending(hid, entry)
	pending[hid] = entry;
	R.pending_count = R.pending_count + 1;
	R.sender_added(entry.origin);
end

function R.resolve(hid)
	local entry = pending[hid];
	if entry then
		pending[hid] = nil;
		R.pending_count = R.pending_count - 1;
		R.sender_answered(entry.origin);
	end
	return entry;
end

-- Messages delivered normally because Courier was not connected, this outage.
R.bypassed = 0;

function R.bypass(fmt, ...)
	R.bypassed = R.bypassed + 1;
	module:log(R.bypassed == 1 and "warn" or "debug", fmt, ...);
end

-- The component's stream session, or nil while Courier is not connected.
function R.component_session()
	local h = hosts[courier_host];
	local env = h and h.modules and h.modules.component;
	return env and env.connected and env.session or nil;
end

function R.is_online(username, user_host)
	local user = bare_sessions[username .. "@" .. user_host];
	if not user then return false; end
	for _, session in pairs(user.sessions) do
		if session.presence and (session.priority or 0) >= 0 then
			return true;
		end
	end
	return false;
end

-- Whether the account exists (a user with a session exists; only look the others up).
function R.account_exists(node, user_host)
	return bare_sessions[node .. "@" .. user_host] ~= nil or user_exists(node, user_host);
end

-- Which messages Courier processes: chat/normal with a body or a retraction,
-- and the receipts and markers that acknowledge messages (hop tracking).
function R.wanted(stanza)
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
	return xmlns ~= nil and xmlns:find(OUR_NS_PREFIX, 1, true) == 1;
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

function R.strip_ours(stanza)
	if has_ours(stanza) then remove_ours(stanza); end
end

-- XEP-0082 with milliseconds: 2026-11-23T10:00:00.123Z (the date part formatted once a second)
local stamp_second, stamp_prefix = nil, nil;
function R.stamp(t)
	local whole = math.floor(t);
	if whole ~= stamp_second then
		stamp_second, stamp_prefix = whole, datetime(whole):sub(1, -2);
	end
	return stamp_prefix .. string.format(".%03dZ", math.floor((t - whole) * 1000));
end

-- Every timer callback is guarded: an error is logged and the timer goes on.
-- It repeats every *interval* seconds; without one, when *fn* returns a delay.
function R.guarded(name, fn, interval)
	return function()
		local ok, ret = pcall(fn);
		if not ok then module:log("error", "%s failed (a repeating timer runs again): %s", name, ret); end
		if interval ~= nil or not ok then return interval; end
		return ret;
	end
end

-- Every hand-off hook is guarded the same way: a bug must never lose a message, so on an
-- error the hook returns nothing and Prosody delivers the message normally.
function R.safely(what, fn)
	return function(event)
		local ok, result = pcall(fn, event);
		if ok then return result; end
		module:log("error", "%s failed, delivering normally: %s", what, result);
		return nil;
	end
end

module:require("route_pressure")(R);
module:require("route_handoff")(R);
module:require("route_release")(R);
module:require("route_s2s")(R);
module:require("route_sweep")(R);

function module.load()
	module:log("info", "Routing 1:1 messages through %s (fallback after %gs of silence, or %gs for one hand-off)",
		courier_host, R.ack_timeout, R.ack_deadline);
end

function module.unload()
	-- Nothing may be lost: whatever is still pending is delivered now, and so is
	-- what a sender waits to hand off.
	R.stopping = true;
	local hids = {};
	for hid in pairs(pending) do hids[#hids + 1] = hid; end
	if #hids > 0 then R.fall_back(hids, "Unloading"); end
	R.save_fallbacks();
	R.resume_senders("unloading");
end

module:hook_global("server-stopping", function()
	module.unload();
end);
