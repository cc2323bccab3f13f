"""Courier: an XMPP component beside Prosody for tracked, editable, recallable delivery."""

__version__ = "0.1.0"
