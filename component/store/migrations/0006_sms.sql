-- 0006: SMS fallback (P3, xeps/courier-sms.xml): users' phone numbers and their verification,
-- the SMS outbox (every SMS Courier sends, with its attempts and outcome), the map from the
-- gateway's ids to outbox entries, inbound SMS seen (duplicate filter), and who last wrote to
-- a phone number from the gateway's shared number (where that number's replies go).
CREATE TABLE sms_numbers (
    jid          TEXT PRIMARY KEY,          -- bare JID of the user
    number       TEXT,                      -- the active (verified) number, E.164; NULL: none
    fallback     INTEGER NOT NULL DEFAULT 1,-- send held messages as SMS while offline (once verified)
    pending      TEXT,                      -- a number waiting for its code, E.164
    code_hash    TEXT,                      -- sha256 of the user, the number and the code
    code_expires REAL,
    code_tries   INTEGER NOT NULL DEFAULT 0,-- wrong codes entered for the pending number
    verified_at  REAL,
    updated      REAL NOT NULL
);
CREATE UNIQUE INDEX sms_numbers_active ON sms_numbers(number) WHERE number IS NOT NULL;

CREATE TABLE sms_outbox (
    id           INTEGER PRIMARY KEY,
    ref          TEXT NOT NULL UNIQUE,      -- Courier's id of this SMS (Kannel: the transport id in its dlr-url)
    purpose      TEXT NOT NULL,             -- fallback | direct | code
    message_seq  INTEGER,                   -- messages.seq of the tracked message (fallback, direct)
    owner        TEXT NOT NULL,             -- the user it is sent for (rate limits)
    sender       TEXT NOT NULL,             -- E.164, or '' for the gateway's default sender
    recipient    TEXT NOT NULL,             -- E.164
    text         TEXT NOT NULL,
    encoding     TEXT NOT NULL DEFAULT '',  -- GSM-7 | UCS-2
    parts        INTEGER NOT NULL DEFAULT 1,
    state        TEXT NOT NULL,             -- queued | sending | submitted | delivered | failed | cancelled
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      REAL,                      -- queued: when to try (again)
    note         TEXT NOT NULL DEFAULT '',  -- the last error or outcome
    created      REAL NOT NULL,
    updated      REAL NOT NULL
);
CREATE INDEX sms_outbox_due ON sms_outbox(next_at) WHERE state = 'queued';
CREATE INDEX sms_outbox_sending ON sms_outbox(id) WHERE state = 'sending';
CREATE INDEX sms_outbox_by_owner ON sms_outbox(owner, created);
CREATE INDEX sms_outbox_by_message ON sms_outbox(message_seq) WHERE message_seq IS NOT NULL;

-- Every id a transport gave for an outbox entry (one per SMS, or one per part).
CREATE TABLE sms_transport_ids (
    transport_id TEXT PRIMARY KEY,
    outbox_id    INTEGER NOT NULL REFERENCES sms_outbox(id)
);

-- Inbound SMS already taken (the gateway may call again for the same one).
CREATE TABLE sms_inbound (
    key          TEXT PRIMARY KEY,          -- the gateway's id, else a digest of sender, recipient, text, minute
    sender       TEXT NOT NULL,
    recipient    TEXT NOT NULL,
    delivered_to TEXT NOT NULL DEFAULT '',  -- bare JID; '' = nobody (no such number)
    at           REAL NOT NULL
);

-- Replies to the gateway's shared number go to whoever last wrote to that phone from it.
CREATE TABLE sms_contacts (
    number TEXT PRIMARY KEY,                -- the phone's number, E.164
    jid    TEXT NOT NULL,                   -- bare JID
    at     REAL NOT NULL
);
