"""Our XMPP extensions, one folder each (slixmpp plugin layout).

Each folder has ``stanza.py`` (namespace and ElementBase classes) and a
``BasePlugin``; each namespace is specified in ``xeps/`` under the same short
name.  Namespaces live under :data:`NS_BASE`, which the project controls.
"""

from typing import Any

from ..namespaces import NS_BASE

__all__ = ["NS_BASE", "TextBody"]


class TextBody:
    """Mixin for an ElementBase whose own text is its ``body`` interface."""

    xml: Any

    def get_body(self) -> str:
        return self.xml.text or ""

    def set_body(self, value: str) -> None:
        self.xml.text = value or None

    def del_body(self) -> None:
        self.xml.text = None
