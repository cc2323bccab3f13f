-- 0007: receipts and confirmations look messages up by recipient and id.
CREATE INDEX messages_to_msg_id ON messages(recipient_bare, msg_id);
CREATE INDEX messages_to_origin_id ON messages(recipient_bare, origin_id);
