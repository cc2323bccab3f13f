-- 0001: tracked messages, their hops, hand-off de-duplication, user settings.
CREATE TABLE messages (
    seq            INTEGER PRIMARY KEY,     -- Courier's order of acceptance
    hid            TEXT UNIQUE,             -- the server's hand-off id (NULL: Courier originated it)
    sender         TEXT NOT NULL,           -- bare JID
    sender_resource TEXT NOT NULL DEFAULT '',
    recipient      TEXT NOT NULL,           -- as addressed (bare or full)
    recipient_bare TEXT NOT NULL,
    msg_id         TEXT NOT NULL DEFAULT '',-- the client's id attribute
    origin_id      TEXT NOT NULL DEFAULT '',-- XEP-0359 origin-id
    kind           TEXT NOT NULL,           -- message | correction | retraction
    body           TEXT,
    stanza         TEXT NOT NULL,           -- the jabber:client message (body updated by edits)
    state          TEXT NOT NULL,
    hold_reason    TEXT NOT NULL DEFAULT '',
    release_at     REAL,
    created        REAL NOT NULL,
    updated        REAL NOT NULL
);
CREATE INDEX messages_open ON messages(recipient_bare, seq) WHERE state IN ('accepted', 'held');
CREATE INDEX messages_by_msg_id ON messages(sender, msg_id);
CREATE INDEX messages_by_origin_id ON messages(sender, origin_id);

CREATE TABLE hops (
    id          INTEGER PRIMARY KEY,
    message_seq INTEGER NOT NULL REFERENCES messages(seq),
    label       TEXT NOT NULL,
    state       TEXT NOT NULL,
    at          REAL NOT NULL,
    place       TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX hops_by_message ON hops(message_seq, id);

-- Hand-offs that did not become a tracked message of their own (an edit or a
-- recall applied to a held message); the ones that did are messages.hid.
CREATE TABLE absorbed_handoffs (
    hid         TEXT PRIMARY KEY,
    message_seq INTEGER NOT NULL REFERENCES messages(seq),
    outcome     TEXT NOT NULL,              -- edited | recalled | dropped
    at          REAL NOT NULL
);

CREATE TABLE user_settings (
    jid         TEXT PRIMARY KEY,           -- bare JID
    undo_window REAL                        -- seconds; NULL = the configured default
);
