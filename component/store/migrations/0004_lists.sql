-- 0004: broadcast lists (P4, xeps/courier-lists.xml): per-owner lists and their members,
-- fan-outs (one message to many) and each member's copy (a tracked message of its own).
CREATE TABLE lists (
    id       INTEGER PRIMARY KEY,
    owner    TEXT NOT NULL,                 -- bare JID; the only one who sees or uses it
    name     TEXT NOT NULL,                 -- as the owner wrote it
    key      TEXT NOT NULL,                 -- the name as in the list's JID (escaped, case-folded)
    created  REAL NOT NULL,
    expires  REAL,                          -- NULL: permanent; else temporary, gone at this instant
    UNIQUE (owner, key)
);
CREATE INDEX lists_expiring ON lists(expires) WHERE expires IS NOT NULL;

CREATE TABLE list_members (
    list_id  INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    jid      TEXT NOT NULL,                 -- bare JID
    added    REAL NOT NULL,                 -- members are listed in the order they were added
    PRIMARY KEY (list_id, jid)
);

-- A fan-out outlives its list (renamed, deleted, expired): status and recall keep working.
CREATE TABLE fanouts (
    owner     TEXT NOT NULL,
    id        TEXT NOT NULL,                -- short opaque id, unique per owner
    list_name TEXT NOT NULL DEFAULT '',     -- '' = XEP-0033 addresses
    source_id TEXT NOT NULL DEFAULT '',     -- the 'id' of the owner's message, if any
    source_origin TEXT NOT NULL DEFAULT '', -- its XEP-0359 origin-id, if any
    body      TEXT NOT NULL,
    created   REAL NOT NULL,
    recalled  REAL,                         -- when the owner recalled the whole fan-out
    PRIMARY KEY (owner, id)
);
CREATE INDEX fanouts_by_time ON fanouts(owner, created);
CREATE INDEX fanouts_by_source ON fanouts(owner, source_id) WHERE source_id != '';
CREATE INDEX fanouts_by_source_origin ON fanouts(owner, source_origin) WHERE source_origin != '';

CREATE TABLE fanout_copies (
    owner         TEXT NOT NULL,
    fanout_id     TEXT NOT NULL,
    member        TEXT NOT NULL,            -- bare JID
    msg_id        TEXT NOT NULL,            -- the id (= origin-id) of the member's copy
    message_seq   INTEGER,                  -- messages.seq once the copy is durable; NULL: not yet sent
    retraction_id TEXT NOT NULL DEFAULT '', -- the XEP-0424 retraction sent after release, if any
    PRIMARY KEY (owner, fanout_id, member),
    FOREIGN KEY (owner, fanout_id) REFERENCES fanouts(owner, id) ON DELETE CASCADE
);
CREATE INDEX fanout_copies_unsent ON fanout_copies(owner) WHERE message_seq IS NULL;
