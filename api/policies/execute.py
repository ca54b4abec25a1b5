"""The account's execute policy (``berth.execpolicy`` rules) applied to an execute request."""

from __future__ import annotations

from api.errors import PermissionDenied, ValidationError
from api.execute.models import settings_for
from berth import execpolicy


def allowed_entries(account_id: int) -> list[str]:
    """The account's allow-list: what an administrator set (``flask --app api accounts commands``),
    else the safe default."""
    settings = settings_for(account_id)
    if settings is None or settings.allowed_commands is None:
        return list(execpolicy.SAFE_DEFAULT)
    return list(settings.allowed_commands)


def allowed_kwargs(account_id: int) -> dict[str, list[str]]:
    """Keyword arguments an administrator allowed per function (``--allow-kwarg``)."""
    settings = settings_for(account_id)
    return dict(settings.allowed_kwargs or {}) if settings is not None else {}


def check(account_id: int, fun: str, arg: list, kwarg: dict, *, raw: bool = False) -> None:
    """400 naming the argument (``kwarg``/``arg``; ``command`` for execute_raw) for a keyword
    argument outside the function's safe set, 403 for a function or positional argument outside
    the account's allow-list and for a function that calls other functions."""
    try:
        execpolicy.check(fun, arg, kwarg, allowed_entries(account_id), allowed_kwargs(account_id))
    except execpolicy.BadArgument as exc:
        raise ValidationError({"command" if raw else exc.field: [exc.message]}) from None
    except execpolicy.RunsOtherFunctions as exc:
        raise PermissionDenied(exc.detail) from None
    except execpolicy.Forbidden as exc:
        raise PermissionDenied(
            f"This account may not execute {exc.what} (allowed commands: {exc.allowed})."
        ) from None
