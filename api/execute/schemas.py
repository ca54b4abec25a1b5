"""Execute bodies: ``/dongle/devices/{id}/execute/`` and ``execute_raw/`` in, the job out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, WithJsonSchema

from api.bodies import JSON_VALUE, RequestBody, ResponseBody, doc
from api.fields import ANY_TEXT, Check, FieldError, checks, integer, json_value, rule, string
from api.limits import HTTP_URL_MAX, MAX_FORWARDED_RETURN_CHARS, SALT_JID_MAX, UNIT_ID_MAX
from berth import execargs
from berth.contract import ExecuteJobState

FUN_RE = execargs.FUNCTION_NAME
KWARG_NAME_RE = execargs.KWARG_NAME
# What OpenAPI shows of a command line: the function, then plain words (arguments) and
# name=value words (keyword arguments). Quoting, YAML values ([1, 2], 0x1F) and other names
# also work, but only these are sure to pass every rule (``command_line``).
_WORD = r"[A-Za-z][A-Za-z0-9_.,/@%+-]*"
# The function name is at most 255 characters (``function_name``): 1 + 126 + 1 + 1 + 126.
_SHORT_FUN = r"[A-Za-z_][A-Za-z0-9_]{0,126}\.[A-Za-z_][A-Za-z0-9_]{0,126}"
COMMAND_LINE_PATTERN = rf"^{_SHORT_FUN}(?: +(?:[A-Za-z][A-Za-z0-9_]*=(?:{_WORD})?|{_WORD}))*$"
# An http(s) URL with a host name or IPv4 address, as OpenAPI shows it (``http_url`` takes any
# URL with an http(s) scheme, a host and a valid port). The host must also resolve, to public
# addresses only (api/security/ssrf.py): not a rule a schema can tell.
HTTP_URL_PATTERN = (
    r"^[hH][tT][tT][pP][sS]?://[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?"
    r"(?::(?:[0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?"
    r"(?:/[A-Za-z0-9._~%!$&'()*+,;=:@/-]*)?(?:\?[A-Za-z0-9._~%!$&'()*+,;=:@/?-]*)?$"
)
CALLBACK_TIMEOUT_DEFAULT = 120
CALLBACK_TIMEOUT_MIN, CALLBACK_TIMEOUT_MAX = 1, 600


def _parsed(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A field rule from the execute-body parser the local API shares (``berth.execargs``): its
    message as the field's error."""

    def run(value: Any) -> Any:
        try:
            return check(value)
        except execargs.BadValue as exc:
            raise FieldError(exc.message) from None

    return run


function_name = Check(
    _parsed(execargs.function_name), maxLength=execargs.MAX_FUNCTION_NAME, pattern=FUN_RE.pattern
)
# what a database and Salt can carry besides (``json_value``): stored and sent as it is
arg_list = _parsed(lambda value: json_value(execargs.arg_list(value)))
kwarg_map = _parsed(lambda value: json_value(execargs.kwarg_map(value)))


# an ``arg`` item Salt would turn into keyword arguments (``arg_list`` refuses it)
NOT_KWARG_MARKER = {"not": {"type": "object", "required": ["__kwarg__"]}}


@checks(maxLength=HTTP_URL_MAX, pattern=HTTP_URL_PATTERN)
def http_url(value: Any) -> str:
    value = string(max_length=HTTP_URL_MAX)(value)
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError for a port that is not 0-65535
    except ValueError:  # e.g. an unclosed "[" of an IPv6 host, a port "80x"
        raise FieldError("Enter a valid http or https URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FieldError("Enter a valid http or https URL.")
    return value


@checks(minimum=CALLBACK_TIMEOUT_MIN, maximum=CALLBACK_TIMEOUT_MAX)
def timeout_seconds(value: Any) -> int:
    value = integer(value)
    if not CALLBACK_TIMEOUT_MIN <= value <= CALLBACK_TIMEOUT_MAX:
        raise FieldError(
            f"Ensure this value is between {CALLBACK_TIMEOUT_MIN} and {CALLBACK_TIMEOUT_MAX} (seconds)."
        )
    return value


def _command_line(value: Any) -> tuple[str, list, dict]:
    fun, arg, kwarg = execargs.command_line(value)
    return fun, json_value(arg), json_value(kwarg)


command_line = Check(
    _parsed(_command_line), maxLength=execargs.MAX_COMMAND_LINE, pattern=COMMAND_LINE_PATTERN
)


class _Callback(RequestBody):
    callback_url: Annotated[
        str | None,
        rule(http_url, nullable=True),
        doc(
            "POSTed the result, signed: X-Request-Signature: sha256=<HMAC-SHA256(account webhook secret, body)>."
        ),
    ] = None
    callback_timeout: Annotated[
        int,
        rule(timeout_seconds),
        doc("Seconds until the job is TIMEOUT (with or without a callback)."),
    ] = CALLBACK_TIMEOUT_DEFAULT


class ExecuteInput(_Callback):
    command: Annotated[
        str,
        rule(function_name),
        doc("module.function", examples=["docker.logs"]),
    ]
    arg: Annotated[
        list[Any] | None,
        rule(arg_list, nullable=True),
        WithJsonSchema(
            {
                "type": ["array", "null"],
                "items": {"allOf": [JSON_VALUE, NOT_KWARG_MARKER]},
                "examples": [["curveball"]],
            }
        ),
    ] = Field(default_factory=list)
    kwarg: Annotated[
        dict[str, Any] | None,
        rule(kwarg_map, nullable=True),
        WithJsonSchema(
            {
                "type": ["object", "null"],
                "propertyNames": {"pattern": KWARG_NAME_RE.pattern},
                "additionalProperties": JSON_VALUE,
                "examples": [{"tail": 20}],
            }
        ),
    ] = Field(default_factory=dict)


class ExecuteRawInput(_Callback):
    command: Annotated[
        str,
        rule(command_line),
        doc(
            "A salt command line: function, then arguments and key=value keyword arguments.",
            examples=["docker.logs curveball tail=20"],
        ),
    ]


class ExecuteAccepted(ResponseBody):
    jid: str
    minions: list[str]


class SaltReturn(ResponseBody):
    fun: str
    fun_args: list[Any]
    return_: Annotated[Any, Field(alias="return")] = None
    retcode: int | None
    success: bool | None


class ExecuteResult(ResponseBody):
    jid: str
    device_id: str
    state: ExecuteJobState
    response: SaltReturn


def forwarded_response(value: Any) -> dict:
    """A minion's return as Salt's job cache holds it: ``return`` (any JSON, bounded) and the
    optional ``fun``, ``fun_args``, ``retcode``, ``success``."""
    if not isinstance(value, dict):
        raise FieldError(f'Expected a dictionary of items but got type "{type(value).__name__}".')
    if "return" not in value:
        raise FieldError({"return": ["This field is required."]})
    json_value(value)
    if len(json.dumps(value, separators=(",", ":"))) > MAX_FORWARDED_RETURN_CHARS:
        raise FieldError(
            f"Ensure this value has at most {MAX_FORWARDED_RETURN_CHARS} characters as JSON."
        )
    fun = value.get("fun")
    if fun is not None and not (isinstance(fun, str) and len(fun) <= execargs.MAX_FUNCTION_NAME):
        raise FieldError(
            {"fun": [f"Expected a string of at most {execargs.MAX_FUNCTION_NAME} characters."]}
        )
    fun_args = value.get("fun_args", [])
    if not isinstance(fun_args, list):
        raise FieldError({"fun_args": ["Expected a list."]})
    retcode = value.get("retcode")
    if retcode is not None and (isinstance(retcode, bool) or not isinstance(retcode, int)):
        raise FieldError({"retcode": ["A valid integer is required."]})
    success = value.get("success")
    if success is not None and not isinstance(success, bool):
        raise FieldError({"success": ["Must be a valid boolean."]})
    return {
        "fun": fun,
        "fun_args": fun_args,
        "return": value["return"],
        "retcode": retcode,
        "success": success,
    }


@checks(maxLength=SALT_JID_MAX, pattern="^[0-9]+$")
def salt_jid(value: Any) -> str:
    value = string(max_length=SALT_JID_MAX)(value)
    if not (value.isascii() and value.isdigit()):
        raise FieldError("A Salt job id (digits).")
    return value


class ForwardedReturn(RequestBody):
    """A device's return of a command the API published, forwarded by the lower master that
    received it (``berth.forward_return``, docs/scale.md "The path up")."""

    unit_id: Annotated[
        str, rule(string(max_length=UNIT_ID_MAX)), doc("The minion id that returned.")
    ]
    jid: Annotated[str, rule(salt_jid), doc("The execute job's jid.")]
    response: Annotated[
        dict[str, Any],
        rule(forwarded_response),
        WithJsonSchema(
            {
                "type": "object",
                "required": ["return"],
                # no NUL in any key or string (api.fields.json_value)
                "propertyNames": {"pattern": ANY_TEXT["pattern"]},
                "additionalProperties": JSON_VALUE,
                "properties": {
                    "fun": {
                        "type": ["string", "null"],
                        "maxLength": execargs.MAX_FUNCTION_NAME,
                        **ANY_TEXT,
                    },
                    "fun_args": {"type": "array", "items": JSON_VALUE},
                    "return": JSON_VALUE,
                    "retcode": {"type": ["integer", "null"]},
                    "success": {"type": ["boolean", "null"]},
                },
                "description": f"The minion's return (at most {MAX_FORWARDED_RETURN_CHARS:,} "
                "characters as JSON).",
            }
        ),
    ]


class ForwardedReturnResult(ResponseBody):
    jid: str
    state: ExecuteJobState
    recorded: Annotated[bool, doc("This return finished the job (false: it had finished already).")]
