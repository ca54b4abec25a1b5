"""The device's local HTTP API (served by the ``berth_localapi`` Salt engine).

Routes:

``GET /``
    ``200 {"unit_id": "<minion id>"}``.

``POST /dongle/<unit_id>/execute/`` (and ``.../execute_raw/`` with
``{"command": "docker.logs curveball tail=10"}``, as in the cloud)
    Body as for the cloud endpoint: ``{"command": "docker.logs", "arg": [...],
    "kwarg": {...}}`` (``arg`` and ``kwarg`` optional). The command runs
    synchronously through the minion's execution modules and the answer has
    the shape of the cloud poll response::

        200 {"jid": "...", "state": "COMMAND_EXECUTED",
             "response": {"fun", "fun_args", "return", "retcode", "success"}}

    A command that fails still answers 200 with ``success: false`` and the
    error text in ``return``, exactly as the minion would report it to the
    cloud. Errors of the request itself: a ``unit_id`` other than this
    device's, or a command outside the engine's ``commands`` patterns -> 403
    ``{"detail": ...}``; a malformed body or a command this device does not
    have -> 400 ``{"<field>": ["message"]}``.

Commands run one at a time (a lock), so two callers never share the loader's
``__context__``; ``GET /`` never waits for them.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import socket
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import salt.defaults.exitcodes
import salt.exceptions
import salt.minion
import salt.syspaths
import salt.utils.jid
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.serving import (
    BaseWSGIServer,
    WSGIRequestHandler,
    make_server,
    select_address_family,
)
from werkzeug.wrappers import Request, Response

from berth import execargs, execpolicy, secretfile
from berth.contract import ExecuteJobState
from berth.release import policy as release_policy

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9000
LOCAL_TOKEN_HEADER = "X-Berth-Local-Token"

# The names a process on the device addresses the local API by (a browser page whose DNS name
# was rebound to 127.0.0.1 sends its own name and is refused).
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_HOST_HEADER = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?$")


class BadRequest(Exception):
    def __init__(self, errors: dict[str, Any]) -> None:
        super().__init__(errors)
        self.errors = errors


def _json(status: int, body: object) -> Response:
    return Response(json.dumps(body, default=_jsonable), status=status, mimetype="application/json")


def _jsonable(value: object) -> object:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _json_object(raw: bytes, fields: set[str]) -> dict[str, Any]:
    try:
        body = json.loads(raw or b"")
    except ValueError as exc:
        raise BadRequest({"non_field_errors": [f"The body is not valid JSON: {exc}"]}) from None
    if not isinstance(body, dict):
        raise BadRequest({"non_field_errors": ["The body must be a JSON object."]})
    unknown = sorted(set(body) - fields)
    if unknown:
        supported = ", ".join(sorted(fields))
        raise BadRequest(
            {name: [f"Not supported by the local API (fields: {supported})."] for name in unknown}
        )
    return body


def parse_body(raw: bytes) -> tuple[str, list[Any], dict[str, Any]]:
    """Validate an execute body (``berth.execargs``, as in the cloud); raises
    :class:`BadRequest` naming the field."""
    try:
        return execargs.parse_execute(_json_object(raw, {"command", "arg", "kwarg"}))
    except execargs.BadBody as exc:
        raise BadRequest(exc.errors) from None


def parse_raw_body(raw: bytes) -> tuple[str, list[Any], dict[str, Any]]:
    """Validate an execute_raw body ``{"command": "docker.logs curveball tail=10"}``:
    the command line is split like a shell and parsed like the ``salt`` CLI does, bounded
    (``berth.execargs``, as in the cloud)."""
    try:
        return execargs.parse_execute_raw(_json_object(raw, {"command"}))
    except execargs.BadBody as exc:
        raise BadRequest(exc.errors) from None


class LocalAPI:
    """WSGI application answering for one device.

    ``functions`` is the minion's execution-module loader (``__salt__``) or any
    mapping of ``"module.function"`` to callables; ``context`` the dict the
    functions use as ``__context__`` (where Salt functions leave ``retcode``).
    """

    def __init__(
        self,
        unit_id: str,
        functions: Mapping[str, Any],
        opts: Mapping[str, Any] | None = None,
        context: dict[str, Any] | None = None,
        commands: list[str] | None = None,
        token: str | None = None,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
    ) -> None:
        self.unit_id = str(unit_id)
        self.commands = check_commands(commands)
        # Commands beyond LOCAL_API_OPEN need this token (header X-Berth-Local-Token); the engine
        # always has one (token_file, made at first start). None: no token asked (embedding, tests).
        self.token = token
        # Where it listens (server() sets the port it got): the Host header must name it.
        self.host, self.port = host, port
        self.functions = functions
        self.opts = dict(opts or {})
        protected = self.opts.get("docker.release_protected_containers")
        self.protected = (
            release_policy.PROTECTED_CONTAINERS
            if protected is None
            else tuple([protected] if isinstance(protected, str) else map(str, protected))
        )
        if context is None:
            pack = getattr(functions, "pack", None) or {}
            context = pack.get("__context__")
        self.context = context if context is not None else {}
        self._lock = threading.Lock()
        self.url_map = Map(
            [
                Rule("/", endpoint="root", methods=["GET"]),
                Rule("/dongle/<unit_id>/execute/", endpoint="execute", methods=["POST"]),
                Rule("/dongle/<unit_id>/execute_raw/", endpoint="execute_raw", methods=["POST"]),
            ],
            strict_slashes=True,
        )

    # --- WSGI -------------------------------------------------------------

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        request = Request(environ)
        return self.dispatch(request)(environ, start_response)

    def addressed_here(self, host_header: str | None) -> bool:
        """Whether the ``Host`` header names this API: a loopback name (or the address it is
        bound to) with its port."""
        match = _HOST_HEADER.match(host_header or "")
        if not match:
            return False
        name = match.group(1).strip("[]").lower()
        port = int(match.group(2)) if match.group(2) else 80
        names = LOOPBACK_NAMES | ({self.host.lower()} - {"0.0.0.0", "::", ""})
        return name in names and port == self.port

    def dispatch(self, request: Request) -> Response:
        if not self.addressed_here(request.headers.get("Host")):
            log.warning(
                "berth_localapi on %s: refused %s %s from %s addressed to Host %r",
                self.unit_id,
                request.method,
                request.path,
                request.remote_addr,
                request.headers.get("Host"),
            )
            return _json(
                421,
                {
                    "detail": "This is the device's local API; address it as "
                    f"http://127.0.0.1:{self.port}/ (Host header refused)."
                },
            )
        adapter = self.url_map.bind_to_environ(request.environ)
        try:
            endpoint, values = adapter.match()
        except NotFound:
            return _json(404, {"detail": "Not found."})
        except MethodNotAllowed as exc:
            response = _json(405, {"detail": f'Method "{request.method}" not allowed.'})
            response.headers["Allow"] = ", ".join(exc.valid_methods or [])
            return response
        except HTTPException as exc:  # e.g. the redirect to add a trailing slash
            return exc.get_response(request.environ)
        try:
            if endpoint == "root":
                return _json(200, {"unit_id": self.unit_id})
            if request.mimetype != "application/json":
                # a browser's form or text/plain POST (no CORS preflight) never gets this far
                return _json(
                    415,
                    {
                        "detail": f'Unsupported media type "{request.mimetype}" in request; '
                        "send Content-Type: application/json."
                    },
                )
            parse = parse_raw_body if endpoint == "execute_raw" else parse_body
            return self.execute_view(request, values["unit_id"], parse)
        except Exception:  # never a traceback to the caller; the log has it
            log.exception(
                "berth_localapi on %s: %s %s failed", self.unit_id, request.method, request.path
            )
            return _json(500, {"detail": "Internal error; see the minion log."})

    def refusal(
        self, request: Request, command: str, arg: list[Any], kwarg: dict[str, Any], raw: bool
    ) -> Response | None:
        """403/400 unless the engine's allow-list (and, beyond the safe default, the local
        token) allows ``command(*arg, **kwarg)`` (docs/security.md)."""
        try:
            execpolicy.check(command, arg, kwarg, self.commands)
        except execpolicy.BadArgument as exc:
            return _json(400, {"command" if raw else exc.field: [exc.message]})
        except execpolicy.RunsOtherFunctions as exc:
            return _json(403, {"detail": exc.detail})
        except execpolicy.Forbidden:
            log.warning(
                "berth_localapi on %s: refused %s from %s (not in the engine's commands)",
                self.unit_id,
                command,
                request.remote_addr,
            )
            return _json(
                403, {"detail": f"The local API of this device does not allow '{command}'."}
            )
        if self.token is None or self.open_to_any_process(command, arg, kwarg):
            return None
        given = request.headers.get(LOCAL_TOKEN_HEADER, "")
        if hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        log.warning(
            "berth_localapi on %s: refused %s from %s (local token missing or wrong)",
            self.unit_id,
            command,
            request.remote_addr,
        )
        return _json(
            403,
            {
                "detail": f"'{command}' with these arguments needs the local token "
                f"(header {LOCAL_TOKEN_HEADER}; the engine's root-only token_file)."
            },
        )

    def open_to_any_process(self, command: str, arg: list[Any], kwarg: dict[str, Any]) -> bool:
        """Whether ``command`` runs without the local token: :data:`execpolicy.LOCAL_API_OPEN`,
        except the logs of a protected container (the salt-minion's; by name or by what could
        be its id)."""
        try:
            execpolicy.check(command, arg, kwarg, execpolicy.LOCAL_API_OPEN)
        except (execpolicy.BadArgument, execpolicy.Forbidden):
            return False
        if command == "docker.logs":
            positional, _ = execpolicy.split_kwarg_strings(list(arg))
            if positional:
                ref = str(positional[0]).lstrip("/")
                if release_policy.joined_container(f"container:{ref}", self.protected):
                    return False
        return True

    def execute_view(
        self,
        request: Request,
        unit_id: str,
        parse: Callable[[bytes], tuple[str, list[Any], dict[str, Any]]],
    ) -> Response:
        if unit_id != self.unit_id:
            log.warning(
                "berth_localapi on %s: refused a command meant for unit %r from %s",
                self.unit_id,
                unit_id,
                request.remote_addr,
            )
            return _json(
                403,
                {
                    "detail": f"This device is unit {self.unit_id!r}; the request is meant for unit {unit_id!r}."
                },
            )
        try:
            command, arg, kwarg = parse(request.get_data())
        except BadRequest as exc:
            return _json(400, exc.errors)
        refused = self.refusal(request, command, arg, kwarg, parse is parse_raw_body)
        if refused is not None:
            return refused
        if command not in self.functions:
            return _json(400, {"command": [f"'{command}' is not available on this device."]})
        jid = salt.utils.jid.gen_jid(self.opts)
        log.info(
            "berth_localapi on %s: job %s runs %s from %s",
            self.unit_id,
            jid,
            command,
            request.remote_addr,
        )
        response = self.run(jid, command, arg, kwarg)
        log.info(
            "berth_localapi on %s: job %s %s finished, retcode %s",
            self.unit_id,
            jid,
            command,
            response["retcode"],
        )
        return _json(
            200, {"jid": jid, "state": ExecuteJobState.COMMAND_EXECUTED, "response": response}
        )

    # --- running a command ---------------------------------------------------

    def run(self, jid: str, command: str, arg: list[Any], kwarg: dict[str, Any]) -> dict[str, Any]:
        """Run like the minion runs a published job; returns the job return."""
        # As Salt publishes a job (and reports it back in fun_args): keyword
        # arguments travel as a trailing dict marked with __kwarg__.
        published = list(arg) + ([dict(kwarg, __kwarg__=True)] if kwarg else [])
        func = self.functions[command]
        with self._lock:
            self.context["retcode"] = salt.defaults.exitcodes.EX_OK
            try:
                args, kwargs = salt.minion.load_args_and_kwargs(
                    func,
                    published,
                    {"fun": command, "jid": jid, "arg": published, "tgt": self.unit_id},
                )
                result = func(*args, **kwargs)
                if isinstance(result, types.GeneratorType):  # as the minion does
                    result = list(result)
                retcode = self.context.get("retcode", salt.defaults.exitcodes.EX_OK)
                if retcode == salt.defaults.exitcodes.EX_OK and isinstance(result, dict):
                    # Salt's rule: a dict return with result/success False is a failure.
                    if not all(result.get(key, True) for key in ("result", "success")):
                        retcode = salt.defaults.exitcodes.EX_GENERIC
            except salt.exceptions.CommandExecutionError as exc:
                result, retcode = f"ERROR: {exc}", salt.defaults.exitcodes.EX_GENERIC
            except salt.exceptions.SaltInvocationError as exc:
                result, retcode = (
                    f"ERROR executing '{command}': {exc}",
                    salt.defaults.exitcodes.EX_GENERIC,
                )
            except TypeError as exc:
                result = f"Passed invalid arguments to {command}: {exc}"
                retcode = salt.defaults.exitcodes.EX_GENERIC
            except Exception as exc:  # any module error is the job's result, as salt-minion does
                log.exception("berth_localapi on %s: job %s %s raised", self.unit_id, jid, command)
                result = f"ERROR: {command} raised {type(exc).__name__}: {exc}"
                retcode = salt.defaults.exitcodes.EX_GENERIC
        return {
            "fun": command,
            "fun_args": published,
            "return": result,
            "retcode": retcode,
            "success": retcode == salt.defaults.exitcodes.EX_OK,
        }


def with_master_address(opts: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the minion ``opts`` with the master's address resolved
    (``master_ip``, ``master_uri``) as ``salt.minion`` does when it connects.

    The engine process is forked before the minion has connected, so its opts
    lack ``master_uri``; without it every function that talks to the master
    (``state.sls`` fetching files and pillar) fails with ``KeyError:
    'master_uri'``. An address that does not resolve is logged and left out:
    the commands that need no master still work."""
    opts = dict(opts)
    if opts.get("master_uri"):
        return opts
    master = opts.get("master")
    if isinstance(master, list):  # multi-master/failover: the first one, as the minion tries first
        master = master[0] if master else ""
    try:
        resolved = dict(opts, master=master, retry_dns=0)
        resolved.update(salt.minion.prep_ip_port(resolved))
        address = salt.minion.resolve_dns(resolved, fallback=False)
    except (
        salt.exceptions.SaltClientError,
        salt.exceptions.SaltMasterUnresolvableError,
        salt.exceptions.SaltSystemExit,
        ValueError,
    ) as exc:
        log.warning(
            "berth_localapi on %s: cannot resolve the master address %r (%s); "
            "commands that need the master (state.sls) will fail",
            opts.get("id"),
            master,
            exc,
        )
        return opts
    opts.update(master=resolved["master"], master_port=resolved["master_port"], **address)
    return opts


def minion_functions(opts: Mapping[str, Any]) -> tuple[Any, dict[str, Any]]:
    """The execution modules of a minion whose ``opts`` may still lack the
    master's address (see :func:`with_master_address`), loaded afresh."""
    import salt.loader  # here: loading Salt's loader is slow and only this path needs it

    opts = with_master_address(opts)
    utils = salt.loader.utils(opts)
    return salt.loader.minion_mods(opts, utils=utils), opts


def sign_in(opts: Mapping[str, Any], attempts: int = 10, pause: float = 30.0) -> bool:
    """Authenticate this process with the master once, ahead of the first state run.

    The engine process keeps its own session with the master (Salt caches it per process,
    ``salt.crypt.AsyncAuth.creds_map``); without this its first ``state.sls`` -- usually the
    sleep hook's apply -- starts with an RSA sign-in, and a fleet told to sleep at once sends
    the master one sign-in per device on top of the applies (100 devices on one master:
    sign-ins timed out and the applies failed, docs/scale.md). Asking the master for its
    options (what a state run asks first) signs in while the device is awake. Failures are
    logged and tried again ``attempts`` times; the state run signs in itself anyway."""
    import salt.fileclient  # here: slow to import, and only the engine's thread needs it

    for attempt in range(1, attempts + 1):
        client = None
        try:
            client = salt.fileclient.get_file_client(dict(opts))
            client.master_opts()
            log.info("berth_localapi on %s: signed in with the master", opts.get("id"))
            return True
        except (salt.exceptions.SaltException, OSError, KeyError, ValueError) as exc:
            log.info(
                "berth_localapi on %s: sign-in with the master failed (attempt %s of %s): %s",
                opts.get("id"),
                attempt,
                attempts,
                exc,
            )
        finally:
            if client is not None:
                client.destroy()
        if attempt < attempts:
            time.sleep(pause)
    return False


def local_api_url(opts: Mapping[str, Any]) -> str | None:
    """Where a process on this device reaches the ``berth_localapi`` engine
    configured in the minion ``opts`` (``http://127.0.0.1:9000`` by default), or
    None when the engine is not configured or listens on a port chosen at start
    (``port: 0``). A wildcard bind address is reached on loopback."""
    conf = _engine_conf(opts)
    if conf is None:
        return None
    try:
        host, port = check_address(conf.get("host", DEFAULT_HOST), conf.get("port", DEFAULT_PORT))
    except ValueError:
        return None
    if port == 0:
        return None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def minion_id_path(opts: Mapping[str, Any]) -> str:
    """Where Salt caches the minion id (``/etc/salt/minion_id``), computed as
    ``salt.config.get_id`` does, so it follows a relocated ``root_dir``."""
    root_dir = opts.get("root_dir") or salt.syspaths.ROOT_DIR
    config_dir = salt.syspaths.CONFIG_DIR
    if config_dir.startswith(salt.syspaths.ROOT_DIR):
        config_dir = config_dir.split(salt.syspaths.ROOT_DIR, 1)[-1]
    return os.path.join(root_dir, config_dir.lstrip(os.path.sep), "minion_id")


def read_minion_id(path: str) -> str | None:
    """The id in a ``minion_id`` file, or None when there is none."""
    try:
        with open(path, encoding="utf-8-sig") as fh:
            return fh.readline().strip() or None
    except FileNotFoundError:
        return None


def ensure_minion_id_file(path: str, unit_id: str) -> None:
    """Make the unit id readable from the ``minion_id`` file, as the device docs
    promise. Salt writes that file only when it had to guess the id; a device
    whose id is set in its config gets it written here. An existing file is
    never changed (Salt's config ``id`` wins over it anyway)."""
    current = read_minion_id(path)
    if current is None:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(unit_id + "\n")
        log.info("berth_localapi on %s: wrote the unit id to %s", unit_id, path)
    elif current != unit_id:
        log.warning(
            "berth_localapi on %s: %s holds a different id (%r); the configured minion id is used",
            unit_id,
            path,
            current,
        )


def check_commands(commands: object) -> list[str]:
    """Validate the engine's ``commands`` option: allow-list entries (``berth.execpolicy``:
    ``docker.*``, ``state.sls docker.release``, ``*``); the safe default
    (``berth.execpolicy.LOCAL_API_DEFAULT``) when not given."""
    if commands is None:
        return list(execpolicy.LOCAL_API_DEFAULT)
    if isinstance(commands, str):
        commands = [commands]
    if not isinstance(commands, list) or not all(isinstance(c, str) and c for c in commands):
        raise ValueError(
            f"commands: must be a list of command patterns like 'docker.*', got {commands!r}"
        )
    for entry in commands:
        try:
            execpolicy.parse_entry(entry)
        except ValueError as exc:
            raise ValueError(f"commands: {exc}") from None
    return list(commands)


TOKEN_FILE_NAME = "berth-local.token"


def default_token_file(opts: Mapping[str, Any]) -> str:
    """``berth-local.token`` next to the minion's config file (``/etc/salt/berth-local.token``)."""
    conf_file = opts.get("conf_file") or os.path.join(salt.syspaths.CONFIG_DIR, "minion")
    return os.path.join(os.path.dirname(conf_file), TOKEN_FILE_NAME)


def _engine_conf(opts: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``berth_localapi`` engine's options in the minion ``opts`` (``{}`` when it has
    none), or None when the engine is not configured."""
    engines = opts.get("engines") or []
    if isinstance(engines, Mapping):
        engines = [{name: conf} for name, conf in engines.items()]
    for entry in engines:
        if not isinstance(entry, Mapping):
            entry = {entry: None}
        for name, conf in entry.items():
            conf = conf if isinstance(conf, Mapping) else {}
            if conf.get("engine_module", name) == "berth_localapi":
                return conf
    return None


def local_token_file(opts: Mapping[str, Any]) -> str | None:
    """The root-only file holding the local API's token (the engine's ``token_file``, by
    default :func:`default_token_file`), or None when the engine is not configured. The sleep
    hook sends what it holds."""
    conf = _engine_conf(opts)
    if conf is None:
        return None
    return str(conf.get("token_file") or default_token_file(opts))


def read_local_token(path: str) -> str:
    """The local token from ``path`` (root-only: no group/other access); a new random one is
    written there (mode 0600) when the file does not exist. ValueError naming the problem."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return secretfile.read_private(path)
    except OSError as exc:
        raise ValueError(f"cannot create token_file {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    log.info("berth_localapi: wrote a new local token to %s (mode 0600)", path)
    return secretfile.read_private(path)


def check_address(host: object, port: Any) -> tuple[str, int]:
    """Validate the engine's ``host``/``port`` options."""
    if not isinstance(host, str) or not host:
        raise ValueError(f"host: must be an address to bind to, got {host!r}")
    try:
        number = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"port: must be a TCP port number, got {port!r}") from None
    # 0 lets the OS pick a free port (the engine logs the one it got).
    if isinstance(port, bool) or not 0 <= number < 65536:
        raise ValueError(f"port: must be between 0 and 65535, got {port!r}")
    return host, number


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def server(app: LocalAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> BaseWSGIServer:
    """A threaded HTTP server for ``app``; call ``serve_forever()`` / ``shutdown()``."""
    host, port = check_address(host, port)

    class RequestLog(WSGIRequestHandler):
        # One plain line per request in the minion log, naming the device.
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            log.info(
                "berth_localapi on %s: %s %s %s -> %s",
                app.unit_id,
                self.address_string(),
                self.command,
                self.path,
                code,
            )

        def log(
            self, type: str, message: str, *args: Any
        ) -> None:  # werkzeug's signature names it type
            getattr(log, type if type in ("info", "warning", "error") else "info")(
                "berth_localapi on %s: " + message, app.unit_id, *args
            )

    # Bind here: werkzeug's make_server calls sys.exit() when it cannot bind,
    # while the engine needs an OSError it can log.
    with socket.create_server((host, port), family=select_address_family(host, port)) as listener:
        httpd = make_server(
            host, port, app, threaded=True, request_handler=RequestLog, fd=listener.fileno()
        )
    app.host, app.port = host, httpd.port  # the Host header must name the port it got
    return httpd
