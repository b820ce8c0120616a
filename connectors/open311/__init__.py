"""Open311 GeoReport v2 for partners (合作方接入): the service catalogue, request submission,
service requests read back from cases, and the spec's JSON/XML documents and errors.

- `catalogue`: services = the taxonomy's ``partner`` codes minus exclusions, with attributes from
  ``connectors/data/open311_services.toml``.
- `submission`: the POST form → validated submission → canonical event (personal data sealed).
- `store`: request tokens (``partner_requests``) and service requests from ``case_sources``/``cases``.
- `views`: the spec's documents as dicts (status mapping, notes, dates).
- `encoding`: JSON and XML bodies.
- `errors`: the ``<errors>`` list and its HTTP status.

The HTTP routes are in ``web/open311_api.py``.
"""
