-- 0009: releases and messages Courier originates, kept until the server confirms it routed
-- them (courier-route <routed/>): re-sent after every reconnect, so that a crash of the
-- server between Courier's send and its routing loses nothing.
CREATE TABLE outbox (
    token TEXT PRIMARY KEY,       -- the hand-off id of a release, or the id of an originated message
    kind TEXT NOT NULL,           -- 'release' | 'originate'
    sender TEXT NOT NULL,         -- bare JID the message is sent as
    stanza TEXT NOT NULL,         -- the jabber:client message, without the route element
    at REAL NOT NULL
);
