-- mod_courier_route, part: what Courier answers a hand-off with (<ack/>, a
-- release by reference, a privileged <release/>), the messages Courier
-- composes (<originate/>, <sender-only/>; from its own JID: a draft's reminder), and
-- their confirmation (<routed/>).
-- Loaded by mod_courier_route.lua with module:require(); R is its shared table.

local st = require "util.stanza";
local jid_bare = require "util.jid".bare;
local jid_split = require "util.jid".split;
local monotonic = require "util.time".monotonic;
local idset = module:require("route_idset");

return function(R)
	local NS, host, courier_host = R.NS, R.host, R.courier_host;
	local core_post_stanza = prosody.core_post_stanza;
	local component_session, strip_ours, resolve = R.component_session, R.strip_ours, R.resolve;
	local fell_back, send_fallback_notice = R.fell_back, R.send_fallback_notice;

	-- Released hids and originated ids, remembered for release_memory to
	-- 2 * release_memory seconds so that a duplicate (a re-send) is dropped: two
	-- generations, rotated; each a set that the garbage collector hardly sees
	-- (route_idset.lib.lua: a busy server remembers hundreds of thousands).
	local released, released_old, released_rotated = idset.new(), idset.new(), monotonic();

	local function was_released(hid)
		return released:has(hid) or released_old:has(hid);
	end
	R.was_released = was_released;

	local function mark_released(hid)
		released:add(hid);
	end
	R.mark_released = mark_released;

	function R.rotate_released(now)
		if now - released_rotated > R.release_memory then
			released, released_old, released_rotated = idset.new(), released, now;
		end
	end

	---------------------------------------------------------------------------
	-- Confirmations: every release and every message Courier originates is
	-- confirmed to Courier once routed (batched: one <routed/> per turn), so
	-- Courier re-sends what a crash of this server lost before routing it.
	---------------------------------------------------------------------------
	local to_confirm = {};
	local confirm_timer = nil;

	-- The confirmation is written as text on the component's stream, like a hand-off:
	-- no stanza built and routed through the server per batch (the same XML as
	-- module:send() of <message><routed><item id=…/>…</routed></message>).
	local xml_escape = st.xml_escape;
	local ROUTED_OPEN = "<message from='" .. xml_escape(host) .. "' to='" .. xml_escape(courier_host)
		.. "'><routed xmlns='" .. NS .. "'>";
	local ROUTED_CLOSE = "</routed></message>";

	local function send_confirmations()
		confirm_timer = nil; -- (first: an error below must not stop later confirmations)
		if #to_confirm == 0 then return; end
		local ids = to_confirm;
		to_confirm = {};
		local session = component_session();
		if not session then return; end -- Courier re-sends on reconnect; duplicates are dropped
		local parts = { ROUTED_OPEN };
		for i, id in ipairs(ids) do
			parts[i + 1] = "<item id='" .. xml_escape(id) .. "'/>"; -- (Courier's ids for what it originated)
		end
		parts[#parts + 1] = ROUTED_CLOSE;
		local ok, err = pcall(session.send, table.concat(parts));
		if not ok then module:log("error", "Could not confirm %d routed messages to Courier: %s", #ids, err); end
	end

	local function confirm_routed(id)
		to_confirm[#to_confirm + 1] = id;
		if not confirm_timer then
			confirm_timer = module:add_timer(0, R.guarded("confirm", send_confirmations, nil));
		end
	end
	R.confirm_routed = confirm_routed;

	-- A message Courier originated (privileged, or from its own JID): true for a re-send
	-- already routed (to be dropped, confirmed again); otherwise it is remembered and its
	-- confirmation queued (sent next turn, after the rest of this event routed it).
	local function routed_before(id)
		if was_released(id) then
			module:log("debug", "Re-sent message %s from Courier dropped: already routed", id);
			confirm_routed(id);
			return true;
		end
		mark_released(id);
		confirm_routed(id);
		return false;
	end

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
		R.heard();
		stanza:remove_children("release", NS);
		stanza:remove_children("originate", NS);
		local hid = (release or originate).attr.id;
		if not hid then
			module:log("warn", "Release without id from Courier dropped");
			return true;
		end
		if originate then
			if routed_before(hid) then return true; end
			return; -- the normal path: archive, carbons, delivery
		end
		if fell_back[hid] then
			module:log("warn", "Courier released %s after the server delivered it by fallback; dropped", hid);
			send_fallback_notice({ hid });
			confirm_routed(hid);
			return true;
		end
		if was_released(hid) then
			module:log("debug", "Duplicate release of %s dropped", hid);
			confirm_routed(hid);
			return true;
		end
		resolve(hid);
		mark_released(hid);
		core_post_stanza(origin, stanza, false);
		confirm_routed(hid);
		return true;
	end

	module:hook("pre-message/bare", reinjected, 1000);
	module:hook("pre-message/full", reinjected, 1000);

	-- A message Courier sends from its own JID (a reminder of a draft) carrying
	-- <originate/>: not privileged, it comes on the component's stream.  The element
	-- is stripped, the message routed as usual (online resources, or offline
	-- storage) and confirmed like every originated message; a re-send already
	-- routed is dropped (and confirmed again).
	local function own_message(event)
		local origin, stanza = event.origin, event.stanza;
		if origin.type ~= "component" or origin.host ~= courier_host then return; end
		local originate = stanza:get_child("originate", NS);
		if not originate then return; end
		R.heard();
		stanza:remove_children("originate", NS);
		local id = originate.attr.id;
		if not id then return; end -- routed as usual, nothing to confirm
		if routed_before(id) then return true; end
	end

	module:hook("message/bare", own_message, 1000);
	module:hook("message/full", own_message, 1000);

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

	-- Release by reference: Courier stored the hand-off and released it unchanged, so
	-- this server routes the original it kept (the body never comes back to it).
	-- The same rules as a <release/>: once per HID, never after a fallback, confirmed.
	-- Toward another server Courier may give courier-federation's <tracked/> with it
	-- (hand-offs marked adds='tracked'): added to the copy, which goes straight to s2s
	-- (no pre-events: never in the sender's archive or carbons, which saw the original).
	local NS_FEDERATION = "https://courier.chat/ns/federation/0";
	local function tracked_for(stanza, given)
		local by, id = given.attr.by, given.attr.id;
		local _, to_host = jid_split(stanza.attr.to);
		if not (by and id and to_host) or prosody.hosts[to_host] then return nil; end -- for peers only
		return st.stanza("tracked", { xmlns = NS_FEDERATION, by = by, id = id });
	end

	local function release_copy(hid, given)
		if fell_back[hid] then
			module:log("warn", "Courier released %s after the server delivered it by fallback; dropped", hid);
			send_fallback_notice({ hid });
			confirm_routed(hid);
			return;
		end
		if was_released(hid) then
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
		mark_released(hid);
		local stanza = entry.stanza;
		strip_ours(stanza);
		local tracked = given and not entry.s2s and tracked_for(stanza, given);
		if tracked then stanza:add_direct_child(tracked); end
		if entry.s2s then
			R.post_inbound(entry.origin, stanza);
		else
			local origin = entry.origin; -- (a c2s session: the stanza is from its full JID)
			stanza.attr.from = origin.username and origin.username .. "@" .. origin.host
				or jid_bare(stanza.attr.from); -- as a privileged release carries it
			core_post_stanza(entry.origin, stanza, false);
		end
		confirm_routed(hid);
	end

	-- A route stanza (<ack/>, <deliver/>) counts only from Courier's own component session.
	function R.from_courier(origin, stanza, what)
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
		if not R.from_courier(origin, stanza, "ack") then return true; end
		R.heard();
		local items = ack.tags;
		for i = 1, #items do -- in order: releases by reference keep Courier's order
			local item = items[i];
			local attr = item.attr;
			local hid = attr.id;
			if hid and item.name == "item" then
				local release = attr.release;
				if release == "true" or release == "1" then
					release_copy(hid, item.tags[1] and item:get_child("tracked", NS_FEDERATION));
				elseif not resolve(hid) and fell_back[hid] then
					-- Courier stored a message the server already delivered; tell it again.
					send_fallback_notice({ hid });
				end
			end
		end
		return true;
	end, 2);

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
end
