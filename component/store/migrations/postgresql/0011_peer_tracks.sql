-- 0011 (PostgreSQL): as SQLite's 0011_peer_tracks.sql (messages tracked at a peer Courier).
CREATE TABLE peer_tracks (
    token       TEXT PRIMARY KEY,
    message_seq BIGINT NOT NULL,
    held_since  DOUBLE PRECISION
);
CREATE INDEX peer_tracks_by_message ON peer_tracks(message_seq);
CREATE INDEX peer_tracks_held ON peer_tracks(held_since) WHERE held_since IS NOT NULL;
