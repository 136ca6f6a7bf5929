"""Parse an XMP packet safely (defusedxml only) into a flat property map.

A packet with a DTD, any entity declaration (billion laughs) or an external reference is refused
before anything is expanded; so is a packet over :data:`MAX_XMP_BYTES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from consentry.evidence.metadata.common import MAX_TEXT_CHUNK_BYTES, MAX_XMP_BYTES, MAX_XMP_PROPERTIES, Skip

RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
NS_XMP = "http://ns.adobe.com/xap/1.0/"
NS_DC = "http://purl.org/dc/elements/1.1/"
NS_EXIF = "http://ns.adobe.com/exif/1.0/"
NS_TIFF = "http://ns.adobe.com/tiff/1.0/"
NS_PHOTOSHOP = "http://ns.adobe.com/photoshop/1.0/"
NS_IPTC_EXT = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
NS_IPTC_CORE = "http://iptc.org/std/Iptc4xmpCore/1.0/xmlns/"
NS_TC260 = "http://www.tc260.org.cn/ns/AIGC/1.0/"

_CONTAINERS = {f"{{{RDF}}}Alt", f"{{{RDF}}}Seq", f"{{{RDF}}}Bag"}


@dataclass
class XmpProps:
    """Property values by ``(namespace, local name)``; lists for repeated or array values."""

    values: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    count: int = 0

    def get(self, ns: str, name: str) -> str | None:
        found = self.values.get((ns, name))
        return found[0] if found else None

    def all(self, ns: str, name: str) -> list[str]:
        return list(self.values.get((ns, name), ()))

    def add(self, ns: str, name: str, value: str) -> None:
        if self.count >= MAX_XMP_PROPERTIES:
            return
        value = value[:MAX_TEXT_CHUNK_BYTES].strip()
        if not value:
            return
        self.values.setdefault((ns, name), []).append(value)
        self.count += 1

    def merge(self, other: "XmpProps") -> None:
        for (ns, name), vals in other.values.items():
            for v in vals:
                self.add(ns, name, v)

    def namespaces(self) -> set[str]:
        return {ns for ns, _ in self.values}


def parse_xmp(packet: bytes) -> XmpProps:
    """Parse one packet; raise :class:`Skip` (a note for the caller) when it is refused."""
    if len(packet) > MAX_XMP_BYTES:
        raise Skip(f"XMP packet of {len(packet)} bytes is over the limit of {MAX_XMP_BYTES}; skipped")
    packet = packet.strip(b"\x00 \t\r\n")
    if not packet:
        raise Skip("empty XMP packet; skipped")
    try:
        root = fromstring(packet, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise Skip(f"XMP packet refused ({type(exc).__name__}: DTDs and entities are not allowed); skipped") from None
    except (ParseError, ValueError, UnicodeError) as exc:
        raise Skip(f"XMP packet is not well-formed XML ({str(exc)[:80]}); skipped") from None
    props = XmpProps()
    for desc in root.iter(f"{{{RDF}}}Description"):
        _read_description(desc, props)
    return props


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _read_description(desc: Element, props: XmpProps) -> None:
    for attr, value in desc.attrib.items():
        ns, local = _split(attr)
        if ns != RDF and ns:
            props.add(ns, local, value)
    for child in desc:
        ns, local = _split(child.tag)
        if ns == RDF:
            continue
        for value in _values(child):
            props.add(ns, local, value)


def _values(prop: Element) -> list[str]:
    """Simple text, ``rdf:resource``, or the items of an Alt/Seq/Bag (one level)."""
    resource = prop.get(f"{{{RDF}}}resource")
    if resource:
        return [resource]
    out: list[str] = []
    for sub in prop:
        if sub.tag in _CONTAINERS:
            for li in sub:
                if li.text:
                    out.append(li.text)
                elif li.get(f"{{{RDF}}}resource"):
                    out.append(li.get(f"{{{RDF}}}resource"))
    if out:
        return out
    if len(prop) == 0 and prop.text:
        return [prop.text]
    return []
