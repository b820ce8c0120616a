"""JSON and XML bodies of GeoReport v2 (``xmltodict`` for XML: a dict in, the spec's tags out).

JSON follows the spec's examples: lists at the top (services, requests, errors) and an object for a
service definition. XML wraps the same dicts in the spec's element names — ``<services><service>``,
``<service_definition>…<attributes><attribute>…<values><value>``, ``<service_requests><request>``,
``<errors><error>`` — with the XML declaration and ``encoding="utf-8"`` the spec requires.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import orjson
import xmltodict

Format = Literal["json", "xml"]
FORMATS: Final = ("json", "xml")
MEDIA_TYPES: Final[dict[str, str]] = {
    "json": "application/json; charset=utf-8",
    "xml": "text/xml; charset=utf-8",
}
# Top-level list documents: (root element, item element).
LIST_ROOTS: Final[dict[str, tuple[str, str]]] = {
    "services": ("services", "service"),
    "requests": ("service_requests", "request"),
    "errors": ("errors", "error"),
}


def _xml_value(value: Any) -> Any:
    if value is None:
        return None  # an empty element, as in the spec's examples (<account_id/>)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, dict):
        return {k: _xml_value(v) for k, v in value.items()}
    return value


def _definition_xml(doc: dict[str, Any]) -> dict[str, Any]:
    attributes = []
    for a in doc["attributes"]:
        item = {k: _xml_value(v) for k, v in a.items() if k != "values"}
        item["values"] = {"value": [_xml_value(v) for v in a["values"]]} if a["values"] else None
        attributes.append(item)
    return {
        "service_definition": {
            "service_code": doc["service_code"],
            "attributes": {"attribute": attributes} if attributes else None,
        }
    }


def render(fmt: Format, kind: str, doc: Any) -> bytes:
    """``kind``: services | requests | errors (lists) or definition (one object)."""
    if fmt == "json":
        return orjson.dumps(doc)
    if kind == "definition":
        tree = _definition_xml(doc)
    else:
        root, item = LIST_ROOTS[kind]
        tree = {root: {item: [_xml_value(d) for d in doc]} if doc else None}
    out: str = xmltodict.unparse(tree, encoding="utf-8", full_document=True)
    return out.encode("utf-8")
