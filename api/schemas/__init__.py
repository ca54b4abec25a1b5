"""Request and response bodies, declared once with pydantic: they validate requests
(:func:`api.schemas.base.parse`, DRF error shapes) and are the OpenAPI components.

``base.py`` and ``common.py`` are shared by every package; the bodies of a resource not yet moved
into its feature package are here, one module per resource. Every body is listed in
:mod:`api.schema_registry` so ``/openapi.json`` describes it.
"""
