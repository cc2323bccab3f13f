"""Our XMPP extensions, one folder each (slixmpp plugin layout).

Each folder has ``stanza.py`` (namespace and ElementBase classes) and a
``BasePlugin``; each namespace is specified in ``xeps/`` under the same short
name.  Namespaces live under :data:`NS_BASE`, which the project controls.
"""

import urllib.parse
from typing import Any

from ..namespaces import NS_BASE

__all__ = ["NS_BASE", "TextBody", "quote_field", "unquote_field"]

#: In the text forms (lines of fields separated by spaces: courier-federation's ``<hops/>``,
#: courier-hops' ``<reports/>``) a field is percent-encoded where it holds "%" or white space.
_QUOTE = str.maketrans({"%": "%25", " ": "%20", "\t": "%09", "\n": "%0A", "\r": "%0D"})


def quote_field(field: str) -> str:
    return field.translate(_QUOTE)


def unquote_field(field: str) -> str:
    return urllib.parse.unquote(field) if "%" in field else field


class TextBody:
    """Mixin for an ElementBase whose own text is its ``body`` interface."""

    xml: Any

    def get_body(self) -> str:
        return self.xml.text or ""

    def set_body(self, value: str) -> None:
        self.xml.text = value or None

    def del_body(self) -> None:
        self.xml.text = None
