-- 0010: "reports chat" — a chat line when a cached message is finally delivered or read (off by default).
ALTER TABLE user_settings ADD COLUMN chat_reports INTEGER NOT NULL DEFAULT 0;
