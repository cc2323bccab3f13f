-- mod_courier_route, part: a set of ids (hand-off ids, Courier's ids) that
-- costs Lua's garbage collector next to nothing, for the released ids that the
-- module remembers for a quarter of an hour (route_release.lib.lua).
-- Loaded by mod_courier_route.lua with module:require(); plain Lua 5.4, no
-- Prosody API, so tests/module runs it with lua5.4 alone.
--
-- Why not a table of strings: every id kept as a table key is a string object
-- that each collection cycle marks and sweeps.  Prosody 0.12 collects almost
-- continuously (incremental mode, pause 105 %), so 100,000 remembered ids
-- (a held flush, or fifteen minutes at 110 messages a second) were a tenth of
-- Prosody's CPU in sweeping alone, and ~10 MB of heap (bench/README.md).
-- Here an id is a 64-bit integer key (a hash of its bytes) whose value names
-- the chunk that holds the id's exact text: ids are appended to a small buffer,
-- and every CHUNK of them become one string.  A hash match is confirmed against
-- that text; the rare id whose hash another id already took is kept as itself
-- in `exact`.  So membership is exact, and the heap holds one string per CHUNK
-- ids instead of one per id.

local unpack, concat, find, format = string.unpack, table.concat, string.find, string.format;

local CHUNK = 256;
local M1, M2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9; -- (splitmix64's constants)

-- The 64-bit hash of id's bytes, read 8 at a time (Lua integers wrap).
local TAIL = {};
for n = 1, 7 do TAIL[n] = "<I" .. n; end
local function hash(id)
	local h, n, i = #id, #id, 1;
	while i + 7 <= n do
		h = (h ~ unpack("<i8", id, i)) * M1;
		h = h ~ (h >> 31);
		i = i + 8;
	end
	if i <= n then
		h = (h ~ unpack(TAIL[n - i + 1], id, i)) * M1;
	end
	h = (h ~ (h >> 30)) * M2;
	return h ~ (h >> 31);
end

local idset = {};
idset.__index = idset;

-- An empty set; key: the hash (tests give a weak one to force collisions).
local function new(key)
	return setmetatable({
		key = key or hash,
		index = {}, -- hash -> number of the chunk with the id's text
		chunks = {}, -- finished chunks: "\0" .. id .. "\0" .. id .. … .. "\0"
		buffer = {}, -- ids of the chunk being filled (number #chunks + 1)
		exact = {}, -- ids whose hash was taken by another id
		size = 0,
	}, idset);
end

local function in_chunk(self, c, id)
	if c <= #self.chunks then
		return find(self.chunks[c], "\0" .. id .. "\0", 1, true) ~= nil;
	end
	local buffer = self.buffer;
	for i = 1, #buffer do
		if buffer[i] == id then return true; end
	end
	return false;
end

-- The hash of id, or nil for an id with a NUL (never in XML), which is kept as itself so
-- that the chunks stay unambiguous.  Memoised: a release asks has(), then add()s the same id.
local function key_of(self, id)
	if self.last_id ~= id then
		self.last_id = id;
		self.last_key = not find(id, "\0", 1, true) and self.key(id) or nil;
	end
	return self.last_key;
end

function idset:has(id)
	if self.exact[id] then return true; end
	local k = key_of(self, id);
	local c = k ~= nil and self.index[k];
	return c and in_chunk(self, c, id) or false;
end

-- Add id; true if it was not in the set.
function idset:add(id)
	if self:has(id) then return false; end
	local k = key_of(self, id);
	if k == nil or self.index[k] ~= nil then -- (a NUL, or a hash another id took)
		self.exact[id] = true;
	else
		local buffer = self.buffer;
		buffer[#buffer + 1] = id;
		self.index[k] = #self.chunks + 1;
		if #buffer == CHUNK then
			self.chunks[#self.chunks + 1] = "\0" .. concat(buffer, "\0") .. "\0";
			self.buffer = {};
		end
	end
	self.size = self.size + 1;
	return true;
end

function idset:__tostring()
	return format("idset(%d ids, %d chunks)", self.size, #self.chunks);
end

return { new = new, CHUNK = CHUNK };
