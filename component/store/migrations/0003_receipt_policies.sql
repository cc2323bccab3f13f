-- 0003: receipt policies (P2, courier-receipts) and the notices senders got about them.
CREATE TABLE receipt_policies (
    jid     TEXT NOT NULL,              -- the user whose policy it is (bare JID)
    contact TEXT NOT NULL DEFAULT '',   -- '' = the user's default; else a bare JID it applies to
    policy  TEXT NOT NULL CHECK (policy IN ('auto', 'manual', 'refuse')),
    PRIMARY KEY (jid, contact)
);

-- A sender is told once per conversation that its receipts are refused.
CREATE TABLE policy_notices (
    sender    TEXT NOT NULL,
    recipient TEXT NOT NULL,
    policy    TEXT NOT NULL,
    at        REAL NOT NULL,
    PRIMARY KEY (sender, recipient)
);
