-- mod_courier_peers: fixed s2s addresses for listed domains, without DNS.
--
-- For test networks and private federations: Prosody 0.12 without
-- lua-unbound resolves with net.dns, which reads neither /etc/hosts nor any
-- port but 53.  This global module answers the s2s resolution
-- (net.resolvers.service, used by mod_s2s) for the domains listed in
--
--   courier_s2s_peers = { ["b.example"] = "127.0.0.1:15269" }
--
-- and leaves every other domain to the normal SRV/A/AAAA lookup.
--
-- Copyright (C) 2026 the Courier team. MIT licensed.

module:set_global();

local service = require "net.resolvers.service";
local basic = require "net.resolvers.basic";

local peers = module:get_option("courier_s2s_peers", {});
local original_new = service.new;

local function parse(address)
	local ip, port = address:match("^%[?([^%]]+)%]?:(%d+)$");
	if not ip then return nil; end
	return ip, tonumber(port);
end

local fixed = {};
for domain, address in pairs(peers) do
	local ip, port = parse(address);
	if ip then
		fixed[domain] = { ip, port };
	else
		module:log("error", "courier_s2s_peers: %q for %s is not HOST:PORT; ignored", tostring(address), domain);
	end
end

service.new = function(hostname, service_name, proto, extra)
	local peer = fixed[hostname];
	if peer and service_name == "xmpp-server" then
		module:log("debug", "s2s to %s: fixed peer %s:%d", hostname, peer[1], peer[2]);
		return basic.new(peer[1], peer[2], proto, extra);
	elseif peer then
		-- (xmpps-server, direct TLS) a fixed peer speaks plain s2s only
		return { next = function(_, cb) cb(nil); end };
	end
	return original_new(hostname, service_name, proto, extra);
end

function module.load()
	local n = 0;
	for _ in pairs(fixed) do n = n + 1; end
	module:log("info", "Fixed s2s addresses for %d domains", n);
end

function module.unload()
	service.new = original_new;
end
