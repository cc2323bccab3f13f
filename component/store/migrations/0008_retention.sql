-- 0008: retention (issue 12): closed messages found by age, their absorbed hand-offs by message.
CREATE INDEX messages_closed_by_updated ON messages(updated)
    WHERE state NOT IN ('accepted', 'held', 'sms');
CREATE INDEX absorbed_by_message ON absorbed_handoffs(message_seq);
