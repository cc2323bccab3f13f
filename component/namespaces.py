"""Every XML namespace Courier uses, defined once (stock XEPs and our own).

Our extensions live under :data:`NS_BASE`, a URI the project controls, one
versioned namespace per feature short name (route, hops, receipts, lists,
drafts, sms); each is specified in ``xeps/courier-<short>.xml``.  Pure
constants: anything (server, plugins, the client tool) may import this.
"""

from __future__ import annotations

# -- ours ---------------------------------------------------------------------------
NS_BASE = "https://courier.chat/ns/"
#: The prefix of every tag of ours in ElementTree's ``{namespace}name`` notation.
OUR_TAG_PREFIX = "{" + NS_BASE
NS_ROUTE = NS_BASE + "route/0"
NS_HOPS = NS_BASE + "hops/0"
NS_RECEIPTS_POLICY = NS_BASE + "receipts/0"
NS_LISTS = NS_BASE + "lists/0"
NS_DRAFTS = NS_BASE + "drafts/0"
NS_SMS = NS_BASE + "sms/0"
NS_FEDERATION = NS_BASE + "federation/0"
#: The one element of ours a remote server's message keeps on its way to Courier (courier-federation).
TRACKED_TAG = "{" + NS_FEDERATION + "}tracked"

# -- stock XMPP -----------------------------------------------------------------------
NS_CLIENT = "jabber:client"
NS_GATEWAY = "jabber:iq:gateway"  # XEP-0100
NS_ADDRESS = "http://jabber.org/protocol/address"  # XEP-0033
NS_COMMANDS = "http://jabber.org/protocol/commands"  # XEP-0050
NS_XHTML_IM = "http://jabber.org/protocol/xhtml-im"  # XEP-0071
NS_DELAY = "urn:xmpp:delay"  # XEP-0203
NS_FORWARD = "urn:xmpp:forward:0"  # XEP-0297
NS_PRIVILEGE = "urn:xmpp:privilege:2"  # XEP-0356
NS_RECEIPTS = "urn:xmpp:receipts"  # XEP-0184
NS_MARKERS = "urn:xmpp:chat-markers:0"  # XEP-0333
NS_HINTS = "urn:xmpp:hints"  # XEP-0334
NS_SID = "urn:xmpp:sid:0"  # XEP-0359
NS_CORRECT = "urn:xmpp:message-correct:0"  # XEP-0308
NS_RETRACT = "urn:xmpp:message-retract:1"  # XEP-0424
NS_RETRACT0 = "urn:xmpp:message-retract:0"  # XEP-0424 before 0.4 (inside XEP-0422 fastening)
NS_FASTEN = "urn:xmpp:fasten:0"  # XEP-0422
NS_FALLBACK = "urn:xmpp:fallback:0"  # XEP-0428
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"  # RFC 6120 stanza errors
NS_EME = "urn:xmpp:eme:0"  # XEP-0380
# end-to-end encryption (component/xep/e2ee.py)
NS_OMEMO_LEGACY = "eu.siacs.conversations.axolotl"  # OMEMO 0.3 (XEP-0384 0.3; Conversations, Gajim, Monal, Dino)
NS_OMEMO2 = "urn:xmpp:omemo:2"  # OMEMO 2 (XEP-0384 0.8+, with a XEP-0420 envelope)
NS_OPENPGP = "urn:xmpp:openpgp:0"  # OpenPGP for XMPP (XEP-0373/0374)
NS_PGP_LEGACY = "jabber:x:encrypted"  # Current Jabber OpenPGP Usage (XEP-0027)
