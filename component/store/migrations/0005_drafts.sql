-- 0005: server-stored drafts (P5, xeps/courier-drafts.xml) and their send triggers.
-- A draft is numbered per author (the "3" of "send draft 3"); numbers are never
-- reused: a fired or deleted draft keeps its row (a deleted one without its text).
CREATE TABLE drafts (
    id           INTEGER PRIMARY KEY,
    author       TEXT NOT NULL,              -- bare JID; the only one who sees or touches it
    number       INTEGER NOT NULL,           -- per author, from 1
    target       TEXT NOT NULL,              -- bare JID it is for
    body         TEXT NOT NULL,
    action       TEXT NOT NULL,              -- send | remind
    trigger_kind TEXT NOT NULL,              -- manual | at | target-online | message-from
    due_at       REAL,                       -- at: the UTC instant (seconds since the epoch)
    tz           TEXT NOT NULL DEFAULT '',   -- at: the time zone the author wrote it in
    trigger_jid  TEXT NOT NULL DEFAULT '',   -- message-from: the contact (bare JID)
    state        TEXT NOT NULL,              -- pending | firing | sent | deleted
    msg_id       TEXT NOT NULL,              -- the id its tracked message gets when sent
    message_seq  INTEGER,                    -- sent: messages.seq
    created      REAL NOT NULL,
    updated      REAL NOT NULL,
    fired_at     REAL,                       -- when its trigger fired (send or remind)
    late         REAL NOT NULL DEFAULT 0,    -- seconds after due_at it fired (a time trigger missed while down)
    UNIQUE (author, number)
);
-- The scheduler's one question: when is the next time trigger due?
CREATE INDEX drafts_due ON drafts(due_at) WHERE state = 'pending' AND trigger_kind = 'at';
CREATE INDEX drafts_target_online ON drafts(target) WHERE state = 'pending' AND trigger_kind = 'target-online';
CREATE INDEX drafts_message_from ON drafts(author, trigger_jid) WHERE state = 'pending' AND trigger_kind = 'message-from';
CREATE INDEX drafts_pending_by_author ON drafts(author, target) WHERE state = 'pending';
CREATE INDEX drafts_firing ON drafts(id) WHERE state = 'firing';
