"""Bodies every endpoint shares: error responses (built on :mod:`api.bodies`)."""

from __future__ import annotations

from pydantic import ConfigDict

from api.bodies import ResponseBody


class Detail(ResponseBody):
    """401/403/404/409: what went wrong."""

    detail: str


class ValidationErrors(ResponseBody):
    """DRF shape: {"field": ["message"], "non_field_errors": [...]}; containers nest per index."""

    model_config = ConfigDict(extra="allow")
