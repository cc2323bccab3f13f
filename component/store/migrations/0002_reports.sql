-- 0002: hop reports (courier-hops): per message whether the sender asked, per user a default.
ALTER TABLE messages ADD COLUMN reports INTEGER NOT NULL DEFAULT 0;
ALTER TABLE user_settings ADD COLUMN reports INTEGER;  -- NULL = off
