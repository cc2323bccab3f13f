-- PostgreSQL: the schema of SQLite's migrations 0001..0010 in one step (see those files for the
-- meaning of every column).  Differences, all mechanical: REAL is DOUBLE PRECISION, an
-- INTEGER PRIMARY KEY that SQLite numbers itself is BIGSERIAL, and the tables whose order the
-- store reads by SQLite's implicit rowid get a real `rowid` column.  Later migrations are
-- numbered with SQLite's: 0011 here is 0011 there.
CREATE TABLE messages (
    seq             BIGINT PRIMARY KEY,
    hid             TEXT UNIQUE,
    sender          TEXT NOT NULL,
    sender_resource TEXT NOT NULL DEFAULT '',
    recipient       TEXT NOT NULL,
    recipient_bare  TEXT NOT NULL,
    msg_id          TEXT NOT NULL DEFAULT '',
    origin_id       TEXT NOT NULL DEFAULT '',
    kind            TEXT NOT NULL,
    body            TEXT,
    stanza          TEXT NOT NULL,
    state           TEXT NOT NULL,
    hold_reason     TEXT NOT NULL DEFAULT '',
    release_at      DOUBLE PRECISION,
    created         DOUBLE PRECISION NOT NULL,
    updated         DOUBLE PRECISION NOT NULL,
    reports         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX messages_open ON messages(recipient_bare, seq) WHERE state IN ('accepted', 'held');
CREATE INDEX messages_by_msg_id ON messages(sender, msg_id);
CREATE INDEX messages_by_origin_id ON messages(sender, origin_id);
CREATE INDEX messages_to_msg_id ON messages(recipient_bare, msg_id);
CREATE INDEX messages_to_origin_id ON messages(recipient_bare, origin_id);
CREATE INDEX messages_closed_by_updated ON messages(updated) WHERE state NOT IN ('accepted', 'held', 'sms');

CREATE TABLE hops (
    id          BIGSERIAL PRIMARY KEY,
    message_seq BIGINT NOT NULL REFERENCES messages(seq),
    label       TEXT NOT NULL,
    state       TEXT NOT NULL,
    at          DOUBLE PRECISION NOT NULL,
    place       TEXT NOT NULL,
    note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX hops_by_message ON hops(message_seq, id);

CREATE TABLE absorbed_handoffs (
    hid         TEXT PRIMARY KEY,
    message_seq BIGINT NOT NULL REFERENCES messages(seq),
    outcome     TEXT NOT NULL,
    at          DOUBLE PRECISION NOT NULL
);
CREATE INDEX absorbed_by_message ON absorbed_handoffs(message_seq);

CREATE TABLE user_settings (
    jid          TEXT PRIMARY KEY,
    undo_window  DOUBLE PRECISION,
    reports      INTEGER,
    chat_reports INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE receipt_policies (
    jid     TEXT NOT NULL,
    contact TEXT NOT NULL DEFAULT '',
    policy  TEXT NOT NULL CHECK (policy IN ('auto', 'manual', 'refuse')),
    PRIMARY KEY (jid, contact)
);

CREATE TABLE policy_notices (
    sender    TEXT NOT NULL,
    recipient TEXT NOT NULL,
    policy    TEXT NOT NULL,
    at        DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (sender, recipient)
);

CREATE TABLE lists (
    id      BIGSERIAL PRIMARY KEY,
    owner   TEXT NOT NULL,
    name    TEXT NOT NULL,
    key     TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL,
    expires DOUBLE PRECISION,
    UNIQUE (owner, key)
);
CREATE INDEX lists_expiring ON lists(expires) WHERE expires IS NOT NULL;

CREATE TABLE list_members (
    list_id BIGINT NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
    jid     TEXT NOT NULL,
    added   DOUBLE PRECISION NOT NULL,
    rowid   BIGSERIAL,
    PRIMARY KEY (list_id, jid)
);

CREATE TABLE fanouts (
    owner         TEXT NOT NULL,
    id            TEXT NOT NULL,
    list_name     TEXT NOT NULL DEFAULT '',
    source_id     TEXT NOT NULL DEFAULT '',
    source_origin TEXT NOT NULL DEFAULT '',
    body          TEXT NOT NULL,
    created       DOUBLE PRECISION NOT NULL,
    recalled      DOUBLE PRECISION,
    rowid         BIGSERIAL,
    PRIMARY KEY (owner, id)
);
CREATE INDEX fanouts_by_time ON fanouts(owner, created);
CREATE INDEX fanouts_by_source ON fanouts(owner, source_id) WHERE source_id != '';
CREATE INDEX fanouts_by_source_origin ON fanouts(owner, source_origin) WHERE source_origin != '';

CREATE TABLE fanout_copies (
    owner         TEXT NOT NULL,
    fanout_id     TEXT NOT NULL,
    member        TEXT NOT NULL,
    msg_id        TEXT NOT NULL,
    message_seq   BIGINT,
    retraction_id TEXT NOT NULL DEFAULT '',
    rowid         BIGSERIAL,
    PRIMARY KEY (owner, fanout_id, member),
    FOREIGN KEY (owner, fanout_id) REFERENCES fanouts(owner, id) ON DELETE CASCADE
);
CREATE INDEX fanout_copies_unsent ON fanout_copies(owner) WHERE message_seq IS NULL;

CREATE TABLE drafts (
    id           BIGSERIAL PRIMARY KEY,
    author       TEXT NOT NULL,
    number       INTEGER NOT NULL,
    target       TEXT NOT NULL,
    body         TEXT NOT NULL,
    action       TEXT NOT NULL,
    trigger_kind TEXT NOT NULL,
    due_at       DOUBLE PRECISION,
    tz           TEXT NOT NULL DEFAULT '',
    trigger_jid  TEXT NOT NULL DEFAULT '',
    state        TEXT NOT NULL,
    msg_id       TEXT NOT NULL,
    message_seq  BIGINT,
    created      DOUBLE PRECISION NOT NULL,
    updated      DOUBLE PRECISION NOT NULL,
    fired_at     DOUBLE PRECISION,
    late         DOUBLE PRECISION NOT NULL DEFAULT 0,
    UNIQUE (author, number)
);
CREATE INDEX drafts_due ON drafts(due_at) WHERE state = 'pending' AND trigger_kind = 'at';
CREATE INDEX drafts_target_online ON drafts(target) WHERE state = 'pending' AND trigger_kind = 'target-online';
CREATE INDEX drafts_message_from ON drafts(author, trigger_jid) WHERE state = 'pending' AND trigger_kind = 'message-from';
CREATE INDEX drafts_pending_by_author ON drafts(author, target) WHERE state = 'pending';
CREATE INDEX drafts_firing ON drafts(id) WHERE state = 'firing';

CREATE TABLE sms_numbers (
    jid          TEXT PRIMARY KEY,
    number       TEXT,
    fallback     INTEGER NOT NULL DEFAULT 1,
    pending      TEXT,
    code_hash    TEXT,
    code_expires DOUBLE PRECISION,
    code_tries   INTEGER NOT NULL DEFAULT 0,
    verified_at  DOUBLE PRECISION,
    updated      DOUBLE PRECISION NOT NULL
);
CREATE UNIQUE INDEX sms_numbers_active ON sms_numbers(number) WHERE number IS NOT NULL;

CREATE TABLE sms_outbox (
    id          BIGSERIAL PRIMARY KEY,
    ref         TEXT NOT NULL UNIQUE,
    purpose     TEXT NOT NULL,
    message_seq BIGINT,
    owner       TEXT NOT NULL,
    sender      TEXT NOT NULL,
    recipient   TEXT NOT NULL,
    text        TEXT NOT NULL,
    encoding    TEXT NOT NULL DEFAULT '',
    parts       INTEGER NOT NULL DEFAULT 1,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_at     DOUBLE PRECISION,
    note        TEXT NOT NULL DEFAULT '',
    created     DOUBLE PRECISION NOT NULL,
    updated     DOUBLE PRECISION NOT NULL
);
CREATE INDEX sms_outbox_due ON sms_outbox(next_at) WHERE state = 'queued';
CREATE INDEX sms_outbox_sending ON sms_outbox(id) WHERE state = 'sending';
CREATE INDEX sms_outbox_by_owner ON sms_outbox(owner, created);
CREATE INDEX sms_outbox_by_message ON sms_outbox(message_seq) WHERE message_seq IS NOT NULL;

CREATE TABLE sms_transport_ids (
    transport_id TEXT PRIMARY KEY,
    outbox_id    BIGINT NOT NULL REFERENCES sms_outbox(id)
);

CREATE TABLE sms_inbound (
    key          TEXT PRIMARY KEY,
    sender       TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    delivered_to TEXT NOT NULL DEFAULT '',
    at           DOUBLE PRECISION NOT NULL
);

CREATE TABLE sms_contacts (
    number TEXT PRIMARY KEY,
    jid    TEXT NOT NULL,
    at     DOUBLE PRECISION NOT NULL
);

CREATE TABLE outbox (
    token  TEXT PRIMARY KEY,
    kind   TEXT NOT NULL,
    sender TEXT NOT NULL,
    stanza TEXT NOT NULL,
    at     DOUBLE PRECISION NOT NULL,
    rowid  BIGSERIAL
);
