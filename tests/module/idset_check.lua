-- Driven by tests/module/test_idset.py: lua5.4 idset_check.lua PATH_TO_route_idset.lib.lua CASE
local lib = dofile(arg[1]);
local case = arg[2];

local function uuid(i) -- UUID-shaped ids, as util.uuid makes them (distinct by construction)
	return string.format("%08x-%04x-4%03x-a%03x-%012x", i * 2654435761 % 4294967296, i % 65536,
		i % 4096, (i // 7) % 4096, i * 40503);
end

local function check(cond, msg) if not cond then io.stderr:write(msg, "\n"); os.exit(1); end end

if case == "exact" then
	-- every id added is in the set, nothing else is: UUIDs, Courier's hex ids, odd lengths,
	-- one id a prefix or a concatenation of others, across chunk boundaries
	local s = lib.new();
	local n = 3 * lib.CHUNK + 17;
	for i = 1, n do check(s:add(uuid(i)), "add " .. i); end
	for i = 1, n do check(s:has(uuid(i)), "has " .. i); end
	for i = n + 1, n + 2000 do check(not s:has(uuid(i)), "false positive " .. i); end
	for i = 1, n do check(not s:add(uuid(i)), "added twice " .. i); end
	local odd = { "", "a", "ab", "1234567", "12345678", "123456789", string.rep("f", 32), "x\0y", uuid(1) .. uuid(2) };
	for _, id in ipairs(odd) do check(not s:has(id), "before: " .. id); check(s:add(id), "add: " .. id); end
	for _, id in ipairs(odd) do check(s:has(id), "after: " .. id); end
	check(not s:has(uuid(1):sub(1, 20)), "a prefix is not the id");
	check(not s:has("x") and not s:has("y"), "the parts of an id with a NUL");
	check(s.size == n + #odd, "size " .. s.size);
	print("ok", s);
elseif case == "collisions" then
	-- a hash that collides all the time: membership stays exact
	local s = lib.new(function(id) return #id % 3; end);
	for i = 1, 1000 do check(s:add("id" .. i), "add " .. i); end
	for i = 1, 1000 do check(s:has("id" .. i), "has " .. i); check(not s:add("id" .. i), "twice " .. i); end
	for i = 1001, 2000 do check(not s:has("id" .. i), "false positive " .. i); end
	print("ok", s);
elseif case == "heap" then
	-- what remembering N ids costs: heap bytes per id, and the time of a full collection with
	-- them kept, against the plain table of strings it replaces
	local n = tonumber(arg[3]);
	local function full_gc_ms()
		local t0 = os.clock();
		for _ = 1, 5 do collectgarbage("collect"); end
		return (os.clock() - t0) * 200;
	end
	local function measure(fill)
		collectgarbage("collect"); collectgarbage("collect");
		local base, none_ms = collectgarbage("count"), full_gc_ms();
		local kept = fill();
		collectgarbage("collect"); collectgarbage("collect");
		local kb, ms = collectgarbage("count") - base, full_gc_ms();
		kept = nil;
		return kb * 1024 / n, ms - none_ms;
	end
	local set_b, set_ms = measure(function() local s = lib.new(); for i = 1, n do s:add(uuid(i)); end return s; end);
	local table_b, table_ms = measure(function() local t = {}; for i = 1, n do t[uuid(i)] = true; end return t; end);
	print(string.format("%d %.0f %.0f %.3f %.3f", n, set_b, table_b, set_ms, table_ms));
elseif case == "speed" then
	-- what a release pays: has() then add() of a new id, in µs, against the plain table
	local n = tonumber(arg[3]);
	local ids = {};
	for i = 1, n do ids[i] = uuid(i); end
	local s, t = lib.new(), {};
	local t0 = os.clock();
	for i = 1, n do if not s:has(ids[i]) then s:add(ids[i]); end end
	local t1 = os.clock();
	for i = 1, n do if not t[ids[i]] then t[ids[i]] = true; end end
	local t2 = os.clock();
	print(string.format("%d %.2f %.2f", n, (t1 - t0) / n * 1e6, (t2 - t1) / n * 1e6));
end
