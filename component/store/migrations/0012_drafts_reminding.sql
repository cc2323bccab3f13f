-- 0012: drafts claimed to remind their author whose reminder may not be in the outbox yet
-- (state 'reminding', a moment each): read at every start-up, so indexed like 'firing' —
-- without it the start-up read scans every draft (13 ms for 100,000, bench/drafts.py).
CREATE INDEX drafts_reminding ON drafts(id) WHERE state = 'reminding';
