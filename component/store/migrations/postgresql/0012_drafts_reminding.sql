-- 0012 (PostgreSQL): as SQLite's 0012_drafts_reminding.sql (the start-up read of reminding drafts).
CREATE INDEX drafts_reminding ON drafts(id) WHERE state = 'reminding';
