"""Interop tests: third-party XMPP clients (Converse.js, Profanity, nbxmpp) against the real Prosody + Courier."""
