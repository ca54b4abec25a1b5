"""API errors with Django REST Framework response bodies; every error is JSON, never HTML."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

log = logging.getLogger(__name__)


class ApiError(Exception):
    status_code = 400

    def __init__(
        self, body: Any, status_code: int | None = None, headers: dict[str, str] | None = None
    ):
        super().__init__(body)
        self.body = body
        if status_code is not None:
            self.status_code = status_code
        self.headers = headers or {}


class ValidationError(ApiError):
    """400 with ``{"field": ["message"], ...}``; ``errors`` may nest like DRF serializers do."""

    status_code = 400

    def __init__(self, errors: dict[str, Any] | list[str] | str):
        if isinstance(errors, str):
            errors = {"non_field_errors": [errors]}
        elif isinstance(errors, list):
            errors = {"non_field_errors": errors}
        self.errors = errors
        super().__init__(errors)


class NotFound(ApiError):
    status_code = 404

    def __init__(self, detail: str = "Not found."):
        super().__init__({"detail": detail})


class Conflict(ApiError):
    status_code = 409

    def __init__(self, detail: str):
        super().__init__({"detail": detail})


class PermissionDenied(ApiError):
    status_code = 403

    def __init__(self, detail: str = "You do not have permission to perform this action."):
        super().__init__({"detail": detail})


class AuthenticationFailed(ApiError):
    status_code = 401

    def __init__(self, detail: str):
        super().__init__({"detail": detail}, headers={"WWW-Authenticate": "APIToken"})


class UnsupportedMediaType(ApiError):
    status_code = 415

    def __init__(self, media_type: str):
        super().__init__({"detail": f'Unsupported media type "{media_type}" in request.'})


def _http_detail(exc: HTTPException) -> str:
    if exc.code == 404:
        return "Not found."
    if exc.code == 405:
        return f'Method "{request.method}" not allowed.'
    if exc.code == 400:
        return "Bad request."
    return exc.description or exc.name


class JsonErrorsFlask(Flask):
    """Flask whose routing redirects (``/devices`` -> ``/devices/``, 308) carry a JSON body like
    every other response, not werkzeug's HTML page (Flask hands them to no error handler)."""

    def handle_http_exception(self, e: HTTPException):
        if isinstance(e, RequestRedirect):
            response = jsonify({"detail": f"Moved permanently to {e.new_url}"})
            response.status_code = e.code
            response.headers["Location"] = e.new_url
            return response
        return super().handle_http_exception(e)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        response = jsonify(exc.body)
        response.status_code = exc.status_code
        for key, value in exc.headers.items():
            response.headers[key] = value
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        response = jsonify({"detail": _http_detail(exc)})
        response.status_code = exc.code or 500
        allowed = getattr(exc, "valid_methods", None)  # set by MethodNotAllowed
        if exc.code == 405 and allowed:
            response.headers["Allow"] = ", ".join(allowed)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.path)
        response = jsonify({"detail": "Internal server error."})
        response.status_code = 500
        return response
