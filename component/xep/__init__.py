"""Our XMPP extensions, one folder each (slixmpp plugin layout).

Each folder has ``stanza.py`` (namespace and ElementBase classes) and a
``BasePlugin``; each namespace is specified in ``xeps/`` under the same short
name.  Namespaces live under :data:`NS_BASE`, which the project controls.
"""

NS_BASE = "https://courier.chat/ns/"
