"""The client-side tool (``courier client``): the reference client of our extensions.

It reuses the plugins of :mod:`component.xep` on a slixmpp ``ClientXMPP``, so
the client side of every extension is exercised by the same code that
declares its stanzas (see :mod:`component.cli.client`).
"""
