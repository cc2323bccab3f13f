-- 0011: messages this Courier tracks at a peer Courier (courier-federation): under which
-- <tracked id/> token (a hand-off's id, or the token of a message Courier composed), and
-- whether the peer said it holds the message (its "cached"/"held" report, nothing later).
-- Read at start-up, so that a restart of the sender's Courier keeps the sender's pending
-- list and the recall/edit route of messages held at the recipient's server.
CREATE TABLE peer_tracks (
    token       TEXT PRIMARY KEY,     -- the <tracked id/> the peer knows the message by
    message_seq INTEGER NOT NULL,     -- messages.seq
    held_since  REAL                  -- when the peer reported it holds it; NULL: not held there
);
CREATE INDEX peer_tracks_by_message ON peer_tracks(message_seq);
CREATE INDEX peer_tracks_held ON peer_tracks(held_since) WHERE held_since IS NOT NULL;
