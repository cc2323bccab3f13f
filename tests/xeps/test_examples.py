"""Check every XEP-format document in ``xeps/`` against its own XML Schema.

For each ``xeps/*.xml`` this module owns these checks:

* the document is well-formed XML with a ``<header>`` holding at least one
  ``<revision>`` and the required ``<section1>`` sections (matched by topic or
  anchor);
* every use-case subsection has at least one ``<example>``;
* every ``<example>`` (CDATA, possibly several sibling stanzas) is well-formed
  once wrapped in a dummy root;
* every top-most element in a namespace the document's schema defines (its
  ``targetNamespace``) validates against that schema, and at least one element
  per document was validated, so the test cannot pass vacuously.

Nothing here is specific to one document: a new ``xeps/<short>.xml`` with its
own namespace is checked without touching this file.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from lxml import etree

from tests.schemas import XEPS_DIR, parser, schemas_of, strip_xml_decl, top_most_in

DOCUMENTS = sorted(XEPS_DIR.glob("*.xml"))


#: Required sections: name -> (accepted topics, accepted anchors), lower-case.
REQUIRED_SECTIONS: dict[str, tuple[set[str], set[str]]] = {
    "Introduction": ({"introduction"}, {"intro"}),
    "Requirements": ({"requirements"}, {"reqs", "requirements"}),
    "Use Cases": ({"use cases", "use case"}, {"usecases", "usecase", "use-cases"}),
    "Business Rules": ({"business rules"}, {"rules", "business-rules"}),
    "Discovery": (
        {"discovery", "service discovery", "discovering support"},
        {"disco", "discovery"},
    ),
    "Security Considerations": ({"security considerations"}, {"security"}),
    "XMPP Registrar Considerations": (
        {"xmpp registrar considerations"},
        {"registrar"},
    ),
    "XML Schema": ({"xml schema", "xml schemas"}, {"schema", "schemas"}),
}



def _parse_document(path: Path) -> etree._Element:
    return etree.parse(str(path), parser()).getroot()


def _norm(text: str | None) -> str:
    return " ".join((text or "").split()).lower()


def _find_section(root: etree._Element, name: str) -> etree._Element | None:
    topics, anchors = REQUIRED_SECTIONS[name]
    for section in root.iter("section1"):
        if _norm(section.get("topic")) in topics or _norm(section.get("anchor")) in anchors:
            return section
    return None


def _examples(root: etree._Element) -> list[tuple[str, str]]:
    """``(caption, text)`` for every ``<example>`` in document order."""
    return [(ex.get("caption") or "(no caption)", ex.text or "") for ex in root.iter("example")]


def _parse_example(text: str) -> etree._Element:
    """Wrap an example (possibly several sibling stanzas) in a dummy root."""
    wrapped = f"<xep-example>{strip_xml_decl(text)}</xep-example>"
    return etree.fromstring(wrapped.encode("utf-8"), parser())


def test_documents_exist() -> None:
    assert DOCUMENTS, f"no XEP documents found in {XEPS_DIR}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_document_structure(path: Path) -> None:
    root = _parse_document(path)
    assert root.tag == "xep", f"root element is <{root.tag}>, expected <xep>"

    header = root.find("header")
    assert header is not None, "no <header>"
    revisions = header.findall("revision")
    assert revisions, "header has no <revision>"
    for rev in revisions:
        assert _norm(rev.findtext("version")), "revision without <version>"
        assert _norm(rev.findtext("date")), "revision without <date>"

    missing = [name for name in REQUIRED_SECTIONS if _find_section(root, name) is None]
    assert not missing, f"missing sections: {missing}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_use_cases_have_examples(path: Path) -> None:
    root = _parse_document(path)
    use_cases = _find_section(root, "Use Cases")
    assert use_cases is not None, "no Use Cases section"
    subsections = use_cases.findall("section2")
    if not subsections:
        assert use_cases.find(".//example") is not None, "Use Cases has no example"
        return
    bare = [s.get("topic") or s.get("anchor") for s in subsections if s.find(".//example") is None]
    assert not bare, f"use cases without an example: {bare}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=[p.name for p in DOCUMENTS])
def test_examples_validate_against_schema(path: Path) -> None:
    root = _parse_document(path)
    schemas = schemas_of(root)
    assert schemas, "the XML Schema section holds no xs:schema"
    namespaces = set(schemas)

    examples = _examples(root)
    assert examples, "document has no examples"

    failures: list[str] = []
    validated = 0
    for caption, text in examples:
        try:
            wrapper = _parse_example(text)
        except etree.XMLSyntaxError as exc:
            failures.append(f"example {caption!r} is not well-formed: {exc}")
            continue
        for el in top_most_in(wrapper, namespaces):
            tree = etree.ElementTree(copy.deepcopy(el))
            schema = schemas[etree.QName(el).namespace]
            validated += 1
            if not schema.validate(tree):
                errors = "; ".join(f"line {e.line}: {e.message}" for e in schema.error_log)
                failures.append(
                    f"example {caption!r}: <{etree.QName(el).localname}/> "
                    f"does not validate: {errors}"
                )

    assert not failures, "\n".join(failures)
    assert validated, f"no element in {sorted(namespaces)} found in any example"
