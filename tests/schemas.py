"""The XML Schemas of ``xeps/`` and a check of stanzas against them.

Used by ``tests/xeps/test_examples.py`` (each document's examples) and by the
process harness (every stanza a Courier process sends during the tests, from
its ``COURIER_RECORD_SENT`` file)."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from functools import cache
from pathlib import Path

from lxml import etree

XEPS_DIR = Path(__file__).resolve().parents[1] / "xeps"
XS_NS = "http://www.w3.org/2001/XMLSchema"
_XML_DECL = re.compile(r"^\s*<\?xml[^>]*\?>", re.DOTALL)


def parser() -> etree.XMLParser:
    # XSF documents reference xep.dtd / xep.ent, which are not available
    # offline: never load them, keep unresolved entity references as nodes.
    return etree.XMLParser(load_dtd=False, no_network=True, resolve_entities=False, remove_blank_text=False)


def strip_xml_decl(text: str) -> str:
    return _XML_DECL.sub("", text, count=1).strip()


def schema_section(root: etree._Element) -> etree._Element | None:
    for section in root.iter("section1"):
        if " ".join((section.get("topic") or "").split()).lower() in {"xml schema", "xml schemas"}:
            return section
        if (section.get("anchor") or "").lower() in {"schema", "schemas"}:
            return section
    return None


def schemas_of(root: etree._Element) -> dict[str, etree.XMLSchema]:
    """Every ``xs:schema`` in a document's schema section, by targetNamespace."""
    section = schema_section(root)
    assert section is not None, "no XML Schema section"
    found: dict[str, etree.XMLSchema] = {}
    for code in section.iter("code"):
        text = strip_xml_decl(code.text or "")
        if not text:
            continue
        doc = etree.fromstring(text.encode("utf-8"), parser())
        if doc.tag != f"{{{XS_NS}}}schema":
            continue
        target = doc.get("targetNamespace")
        assert target, "XML Schema without a targetNamespace"
        found[target] = etree.XMLSchema(doc)
    return found


@cache
def all_schemas() -> dict[str, etree.XMLSchema]:
    """The schemas of every document in ``xeps/``, by namespace."""
    found: dict[str, etree.XMLSchema] = {}
    for path in sorted(XEPS_DIR.glob("*.xml")):
        found.update(schemas_of(etree.parse(str(path), parser()).getroot()))
    return found


def top_most_in(root: etree._Element, namespaces: Iterable[str]) -> list[etree._Element]:
    """The elements in *namespaces* that have no ancestor in *namespaces*."""
    wanted = set(namespaces)
    found = []
    for el in root.iter(etree.Element):
        if etree.QName(el).namespace not in wanted:
            continue
        parent = el.getparent()
        while parent is not None and etree.QName(parent).namespace not in wanted:
            parent = parent.getparent()
        if parent is None:
            found.append(el)
    return found


def violations(element: etree._Element, schemas: dict[str, etree.XMLSchema]) -> list[str]:
    """What in *element* does not validate: one line per top-most element of a schema's namespace."""
    problems = []
    for el in top_most_in(element, schemas):
        schema = schemas[etree.QName(el).namespace]
        if not schema.validate(etree.ElementTree(copy.deepcopy(el))):
            errors = "; ".join(e.message for e in schema.error_log)
            problems.append(f"<{etree.QName(el).localname} xmlns='{etree.QName(el).namespace}'>: {errors}")
    return problems


def sent_violations(stanzas: Iterable[str]) -> list[str]:
    """Check stanzas a Courier process sent. Stream headers are skipped, and so are
    error stanzas: they echo what was received, which need not be valid."""
    schemas = all_schemas()
    problems = []
    for text in stanzas:
        text = text.strip()
        if not text.startswith("<") or text.startswith(("<stream:", "</stream", "<?xml")):
            continue
        try:
            stanza = etree.fromstring(text.encode("utf-8"), parser())
        except etree.XMLSyntaxError as exc:
            problems.append(f"not well-formed ({exc}): {text[:300]}")
            continue
        if stanza.get("type") == "error":
            continue
        problems += [f"{problem}\n    in {text[:600]}" for problem in violations(stanza, schemas)]
    return problems
