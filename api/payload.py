"""Reading the JSON request body the way DRF does."""

from __future__ import annotations

import json
from typing import Any

from flask import request

from api.errors import ApiError, UnsupportedMediaType, ValidationError


def json_body() -> dict[str, Any]:
    """The request body as a JSON object; 400 for malformed JSON, 415 for another media type."""
    raw = request.get_data(cache=True)
    if not raw:
        return {}
    mimetype = request.mimetype or ""
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(request.content_type or mimetype)
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError({"detail": f"JSON parse error - {exc}"}, 400) from None
    if not isinstance(data, dict):
        raise ValidationError(f"Invalid data. Expected a dictionary, but got {type(data).__name__}.")
    return data
