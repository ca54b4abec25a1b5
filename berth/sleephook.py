"""``berth-before-sleep``: apply the pending release before the device sleeps
(``docs/fleet.md``), cheaply.

The running minion does the work: the hook asks its local API (the
``berth_localapi`` engine) to run ``state.sls docker.release`` and waits for the
answer, so no new Salt process has to start (a ``salt-call`` costs seconds of
CPU). Only when the local API cannot be reached (no engine, minion not running,
or ``state.sls`` not among the engine's ``commands``) does it run the fallback
command given after ``--`` (the ``salt-call`` line installed by
``state.sls docker.sleep``).

Both ways keep one promise. A busy minion (another ``state.sls`` running, e.g.
``docker.registries`` after a registry change: Salt refuses a second one with
"... is running as PID ...", the release engine a second apply with "another release
apply is already running") is waited for: the hook tries again every ``--busy-retry``
seconds (plus up to half of it at random, so two hooks do not collide in step) until
its ``--timeout``. If the minion is still busy then, or the state run never reached the
release (Salt's errors as a list, a ``salt-call`` that died without a result), the hook
has the minion report the release ``failed`` with that reason
(``docker.release_report_failed``: the usual result event through the device's result
queue, so the API shows why) instead of staying silent. Two hooks at once apply once:
the local API runs one command at a time, and two ``salt-call`` runs are kept apart by
Salt's own check for a running state job and the release engine's ``release.lock``
(the hook adds no lock of its own); the second finds the release applied (a no-op that
reports nothing). The timeout bounds the waiting: an apply that started runs to its end.

With a ``salt-call ... state.sls docker.release`` fallback the hook runs it with
``--out=json`` (so it reads the result as it reads the local API's) and reports with the
same ``salt-call`` line running ``docker.release_report_failed``; any other fallback
command is simply executed. A ``salt-call`` still running at the timeout (e.g. waiting for a
master that does not answer, which it does without end) is stopped when ``--release-lock``
shows it has not started applying (the hook holds that lock while stopping it). When that
report cannot be made either (the master away: the report's ``salt-call`` is stopped after
``--report-timeout``, or fails), the hook queues the failure on the device without sending
(``salt-call --local docker.release_report_failed ... send=False``, the device's result
queue, sent once the master is back, as the local API path's report is).

With the master unreachable (``minionutil.master_reachable`` through the local API) the
hook does not try: it has the device report the release ``failed`` with that reason (kept in
the device's result queue until the master is back) and exits 1 within seconds.

A container holding its update lock (docs/release.md "Update locks") makes the release engine
defer the apply (nothing stopped; the device reports ``deferred`` once, naming the holder): the
hook asks again like for a busy minion until its timeout, then exits 0 -- the device sleeps and
the next sleep tries again.

Exit status: 0 when the release was applied, deferred, or there was nothing to do,
otherwise the job's retcode (1 when it has none). What changed goes to stdout
(the journal).

Only the standard library is imported: the hook runs with the minion's Python
but must start in milliseconds.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import random
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

COMMAND = {"command": "state.sls", "arg": ["docker.release"]}
REPORT_FAILED = "docker.release_report_failed"
MASTER_CHECK = "minionutil.master_reachable"
# What Salt returns (as a list) when another state run holds the minion.
BUSY_MARKER = "is running as PID"
# The release engine's refusal (berth.release.executor.ReleaseBusy) in the state's comment.
RELEASE_BUSY_MARKER = "another release apply is already running"
# The release engine's deferral (berth.release.locks.deferred_reason) in the state's comment.
DEFERRED_MARKER = "deferred: the update lock"
# How long a salt-call that reports a failure may take (it may wait for the master).
REPORT_TIMEOUT = 60
# How long the salt-call --local that queues the report on the device may take.
LOCAL_REPORT_TIMEOUT = 30


class Unreachable(Exception):
    """The local API cannot take the job; the fallback runs instead."""


# The local API runs state.sls and the failure report only for a caller holding its root-only
# token (header X-Berth-Local-Token, the engine's token_file); main() reads it from
# --local-token-file.
LOCAL_TOKEN_HEADER = "X-Berth-Local-Token"
_local_token: str | None = None


def use_local_token(path: str | None) -> None:
    """Send the token in ``path`` to the local API from now on (no token when it cannot be
    read: the local API then refuses the apply and the fallback runs)."""
    global _local_token
    _local_token = None
    if not path:
        return
    try:
        with open(path, encoding="utf-8") as handle:
            _local_token = handle.read().strip() or None
    except OSError as exc:
        print(
            f"berth-before-sleep: cannot read the local token {path}: {exc.strerror}",
            file=sys.stderr,
            flush=True,
        )


def _request(url: str, body: dict[str, Any] | None, timeout: float) -> dict[str, Any]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if _local_token:
        headers[LOCAL_TOKEN_HEADER] = _local_token
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # our own loopback URL
            answer: dict[str, Any] = json.load(resp)
            return answer
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", errors="replace")[:500]
        if exc.code == 403:  # e.g. the engine's commands do not include state.sls
            raise Unreachable(f"{url} refused the job ({exc.code}): {detail}") from None
        raise RuntimeError(f"{url} answered {exc.code}: {detail}") from None
    except urllib.error.URLError as exc:
        # Nothing was started on the device: connection refused, no route, ...
        raise Unreachable(f"cannot reach {url}: {exc.reason}") from None
    except ConnectionError as exc:
        raise Unreachable(f"cannot reach {url}: {exc}") from None


def _execute_url(base_url: str) -> str:
    base_url = base_url.rstrip("/")
    try:
        unit_id = _request(base_url + "/", None, timeout=10)["unit_id"]
    except TimeoutError:
        raise Unreachable(f"{base_url}/ did not answer within 10s") from None
    return f"{base_url}/dongle/{urllib.parse.quote(unit_id, safe='')}/execute/"


def apply_via_local_api(base_url: str, timeout: float) -> dict[str, Any]:
    """Run ``state.sls docker.release`` through the local API; returns the job
    response (``fun``, ``return``, ``retcode``, ``success``)."""
    url = _execute_url(base_url)
    try:
        answer = _request(url, COMMAND, timeout=timeout)
    except TimeoutError:
        # The job was accepted and may still be running: not a reason to start a second one.
        raise RuntimeError(f"no answer from {url} within {timeout:g}s") from None
    response: dict[str, Any] = answer["response"]
    return response


def _lines(response: dict[str, Any]) -> list[Any]:
    ret = response.get("return")
    if isinstance(ret, dict):
        return [step.get("comment") for step in ret.values() if isinstance(step, dict)]
    return ret if isinstance(ret, list) else [ret]


def busy_reason(response: dict[str, Any]) -> str | None:
    """Why the minion could not start the apply because another run holds it (Salt's
    "... is running as PID ..." refusal, or the release engine's lock in the state's
    comment), else None."""
    for line in _lines(response):
        if isinstance(line, str) and (BUSY_MARKER in line or RELEASE_BUSY_MARKER in line):
            return line
    return None


def deferred_reason(response: dict[str, Any]) -> str | None:
    """The state's comment when the release engine deferred the apply because a container
    holds its update lock (``berth.release.locks``), else None."""
    for line in _lines(response):
        if isinstance(line, str) and DEFERRED_MARKER in line:
            return line
    return None


def apply_when_idle(
    attempt: Callable[[float], dict[str, Any]],
    timeout: float,
    retry: float,
    log: Callable[[str], object] = print,
) -> tuple[dict[str, Any], str | None]:
    """``attempt(seconds_left)`` (one apply, returning the job response), tried again every
    ``retry`` seconds (plus up to half of it at random) while another run holds the minion or
    a container holds its update lock (the engine deferred the apply), for at most
    ``timeout`` seconds in all. Returns the last response and, when the minion was still busy
    at the deadline, the reason (a deferral is no such reason: the device reported it)."""
    deadline = time.monotonic() + timeout
    while True:
        response = attempt(max(1.0, deadline - time.monotonic()))
        reason = busy_reason(response)
        deferred = None if reason else deferred_reason(response)
        if reason is None and deferred is None:
            return response, None
        pause = retry * random.uniform(1.0, 1.5)
        if time.monotonic() + pause >= deadline:
            return response, reason
        why = f"minion busy ({reason})" if reason else f"update lock held ({deferred})"
        log(f"berth-before-sleep: {why}; asking again in {pause:.1f}s")
        time.sleep(pause)


def is_salt_call_apply(command: list[str]) -> bool:
    """Whether the fallback is the ``salt-call ... state.sls docker.release`` line that
    ``state.sls docker.sleep`` installs (the hook then reads its result and reports)."""
    return "state.sls" in command and "salt-call" in os.path.basename(command[0])


def _hold_release_lock(path: str | None) -> int | None:
    """Take the release engine's ``release.lock`` (``berth.release.executor``) without
    waiting: an open descriptor holding it, ``-1`` when its directory does not exist (no
    apply ever ran there), ``None`` when an apply holds it."""
    if path is None:
        return None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _run(
    argv: list[str], timeout: float | None, release_lock: str | None
) -> tuple[int | None, str, str]:
    """Run ``argv``; returns ``(returncode, stdout, stderr)``, returncode None when it was
    stopped at ``timeout``. Without ``release_lock`` a command past its timeout is stopped;
    with it only while no apply holds that lock (the hook holds it meanwhile, so the command
    cannot start one), otherwise it runs to its end: the hook never cuts an apply short."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        pass
    fd = _hold_release_lock(release_lock) if release_lock else -1
    if fd is None:
        print(
            "berth-before-sleep: the timeout passed during the apply; waiting for its end",
            file=sys.stderr,
            flush=True,
        )
        out, err = proc.communicate()
        return proc.returncode, out, err
    try:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
    finally:
        if fd >= 0:
            os.close(fd)
    return None, out, err


def _salt_call(
    command: list[str], fun: list[str], timeout: float | None, release_lock: str | None = None
) -> dict[str, Any]:
    """Run the fallback's ``salt-call`` (its options, up to ``state.sls``) with ``fun`` and
    ``--out=json`` (see :func:`_run` for ``timeout``); a job response like the local API's,
    ``return`` being Salt's errors or the output's end when there is no Salt JSON (a
    salt-call that died or was stopped)."""
    argv = command[: command.index("state.sls")] + ["--out=json", *fun]
    returncode, out, err = _run(argv, timeout, release_lock)
    if err:
        sys.stderr.write(err)
        sys.stderr.flush()
    tail = (out + err).strip().splitlines()[-3:]
    if returncode is None:
        ret = [
            f"salt-call had not started {fun[0]} within {timeout:g}s and was stopped "
            "(a master that does not answer keeps salt-call waiting)",
            *tail,
        ]
        return {"fun": fun[0], "return": ret, "retcode": None, "success": False}
    try:
        ret = json.loads(out)["local"]
    except (ValueError, KeyError, TypeError):
        ret = [f"salt-call ended with status {returncode} and no result", *tail]
    return {"fun": fun[0], "return": ret, "retcode": returncode, "success": returncode == 0}


def apply_via_salt_call(
    command: list[str], timeout: float, release_lock: str | None
) -> dict[str, Any]:
    """Run ``state.sls docker.release`` with the fallback's ``salt-call``; stopped after
    ``timeout`` only while it has not started applying (``release_lock``, see :func:`_run`)."""
    fun = command[command.index("state.sls") :]
    return _salt_call(command, fun, timeout if release_lock else None, release_lock)


def report_failed_via_salt_call(
    command: list[str], error: str, timeout: float = REPORT_TIMEOUT
) -> dict[str, Any]:
    """:func:`report_failed` with the fallback's ``salt-call`` (no YAML parsing of the text).
    When that report cannot be made (the master away: salt-call waits for it until stopped at
    ``timeout``, or fails), the failure is queued on the device without sending
    (``salt-call --local ... send=False``: the device's result queue, sent once the master
    acknowledges, as the local API path's report is)."""
    report = ["--no-parse=error", REPORT_FAILED, f"error={error}"]
    response = _salt_call(command, report, timeout)
    if response.get("success"):
        return response
    why = "; ".join(str(line) for line in response.get("return") or [])[:500]
    print(
        f"berth-before-sleep: the report through salt-call failed ({why or 'no result'}); "
        "queuing it on the device for when the master is back",
        file=sys.stderr,
        flush=True,
    )
    queued = _salt_call(command, ["--local", *report, "send=False"], LOCAL_REPORT_TIMEOUT)
    ret = queued.get("return")
    if not queued.get("success") or not isinstance(ret, dict) or not ret.get("reported"):
        detail = ret.get("comment") if isinstance(ret, dict) else ret
        print(
            f"berth-before-sleep: nothing could be queued: {json.dumps(detail, default=str)}",
            file=sys.stderr,
            flush=True,
        )
    return queued


def not_run_reason(response: dict[str, Any]) -> str | None:
    """Why a failed state run never reached the release (Salt's errors as a list: render,
    pillar, compile errors; a salt-call without a result), else None. A release state that
    ran has reported its own outcome (the release engine fires the result event)."""
    ret = response.get("return")
    if response.get("success") or not isinstance(ret, list):
        return None
    return "; ".join(str(line) for line in ret)[:2000] or "no result"


def conclude(
    response: dict[str, Any],
    busy: str | None,
    via: str,
    timeout: float,
    report: Callable[[str], object],
) -> int:
    """Print what the apply did, have the device report ``failed`` (through ``report``) when
    the release could not be applied, and return the exit status."""
    if busy is not None:
        error = (
            f"the sleep hook could not apply within its {timeout:g}s timeout: "
            f"another state run kept the minion busy ({busy})"
        )
    else:
        for line in summary(response.get("return")):
            print(line)
        retcode = response.get("retcode")
        ok = bool(response.get("success")) and not failed_steps(response.get("return"))
        # a deferral was reported by the device itself; the next sleep tries again
        deferred = deferred_reason(response) if ok else None
        outcome = f"deferred ({deferred})" if deferred else "succeeded" if ok else "failed"
        print(
            f"berth-before-sleep: state.sls docker.release via {via}: {outcome} (retcode {retcode})",
            file=sys.stderr,
            flush=True,
        )
        if ok:
            return 0
        reason = not_run_reason(response)
        if reason is None:
            return retcode if isinstance(retcode, int) and 0 < retcode < 256 else 1
        error = f"the sleep hook's state.sls docker.release did not run: {reason}"
    print(f"berth-before-sleep: {error}", file=sys.stderr, flush=True)
    try:
        reported: object = report(error)
    except (Unreachable, RuntimeError, TimeoutError, KeyError, ValueError, OSError) as exc:
        reported = f"could not report: {exc}"
    print(
        f"berth-before-sleep: {REPORT_FAILED}: {json.dumps(reported, default=str)}", file=sys.stderr
    )
    retcode = response.get("retcode")
    return retcode if busy is None and isinstance(retcode, int) and 0 < retcode < 256 else 1


def master_unreachable(base_url: str) -> str | None:
    """Why the release cannot be applied now when the minion cannot reach its master (the
    apply needs the master's pillar and state files), else None. A local API that does not
    allow the check (or a device without it) counts as reachable: the apply then finds out
    itself."""
    try:
        answer = _request(_execute_url(base_url), {"command": MASTER_CHECK}, 30)
        reachable = answer["response"].get("return")
    except (Unreachable, RuntimeError, TimeoutError, KeyError, AttributeError):
        return None
    if reachable is False:
        return (
            "the master was unreachable at sleep time: the release was not applied "
            "(it needs the master's pillar and state files); it applies at the next sleep"
        )
    return None


def report_failed(base_url: str, error: str) -> dict[str, Any]:
    """Have the minion report its pending release ``failed`` with ``error`` (the result
    event the master forwards to the API); a release already applied is left alone."""
    answer = _request(_execute_url(base_url), {"command": REPORT_FAILED, "arg": [error]}, 60)
    response: dict[str, Any] = answer["response"]
    return response


def failed_steps(ret: object) -> list[str]:
    """The ids of the states that failed in a ``state.sls`` return; a return
    that is not a dict of states (the errors Salt returns as a list) counts as one."""
    if isinstance(ret, list):
        return ["state.sls"]
    if not isinstance(ret, dict):
        return []
    return [
        key for key, step in ret.items() if isinstance(step, dict) and step.get("result") is False
    ]


def summary(ret: object) -> list[str]:
    """Human lines for a ``state.sls`` return: failures, and what changed."""
    if not isinstance(ret, dict):
        return [str(ret)] if not isinstance(ret, list) else [str(line) for line in ret]
    lines = []
    for key, step in sorted(
        ret.items(),
        key=lambda item: item[1].get("__run_num__", 0) if isinstance(item[1], dict) else 0,
    ):
        if not isinstance(step, dict):
            lines.append(f"{key}: {step}")
            continue
        name = step.get("__id__") or key
        if step.get("result") is False:
            lines.append(f"FAILED {name}: {step.get('comment', '')}")
        elif step.get("changes"):
            lines.append(f"changed {name}: {step.get('comment', '')}")
            lines.append("  " + json.dumps(step["changes"], sort_keys=True, default=str))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="berth-before-sleep", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--local-api", help="base URL of the device's local API, e.g. http://127.0.0.1:9000"
    )
    parser.add_argument(
        "--local-token-file",
        help="the local API's root-only token file (its engine's token_file): state runs and "
        "failure reports need it",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=1200,
        help="seconds the hook may take, waiting for a busy minion included (default 1200)",
    )
    parser.add_argument(
        "--busy-retry",
        type=float,
        default=5,
        help="seconds between attempts while another state run holds the minion (default 5)",
    )
    parser.add_argument(
        "--release-lock",
        help="the release engine's release.lock (salt-call fallback): an attempt still running "
        "at the timeout that has not started applying (lock free) is stopped",
    )
    parser.add_argument(
        "--report-timeout",
        type=float,
        default=REPORT_TIMEOUT,
        help="seconds the salt-call fallback's failure report may take before the report is "
        f"queued on the device instead (default {REPORT_TIMEOUT})",
    )
    parser.add_argument(
        "fallback",
        nargs=argparse.REMAINDER,
        help="-- command to run when the local API is unreachable",
    )
    args = parser.parse_args(argv)
    fallback = args.fallback[1:] if args.fallback[:1] == ["--"] else args.fallback

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.local_api:
        use_local_token(args.local_token_file)
        try:
            offline = master_unreachable(args.local_api)
            if offline is not None:
                print(f"berth-before-sleep: {offline}", file=sys.stderr, flush=True)
                reported = report_failed(args.local_api, offline).get("return")
                print(
                    f"berth-before-sleep: {REPORT_FAILED} (delivered once the master is back): "
                    f"{json.dumps(reported, default=str)}",
                    file=sys.stderr,
                )
                return 1
            response, busy = apply_when_idle(
                lambda left: apply_via_local_api(args.local_api, left),
                args.timeout,
                args.busy_retry,
                log=log,
            )
        except Unreachable as exc:
            print(
                f"berth-before-sleep: local API unavailable ({exc}); running {' '.join(fallback[:1])}",
                file=sys.stderr,
                flush=True,
            )
        except (RuntimeError, KeyError, ValueError) as exc:
            print(
                f"berth-before-sleep: the apply through the local API failed: {exc}",
                file=sys.stderr,
            )
            return 1
        else:
            return conclude(
                response,
                busy,
                args.local_api,
                args.timeout,
                lambda error: report_failed(args.local_api, error).get("return"),
            )
    if not fallback:
        print("berth-before-sleep: no local API reachable and no fallback command", file=sys.stderr)
        return 1
    if is_salt_call_apply(fallback):
        response, busy = apply_when_idle(
            lambda left: apply_via_salt_call(fallback, left, args.release_lock),
            args.timeout,
            args.busy_retry,
            log=log,
        )
        return conclude(
            response,
            busy,
            "salt-call",
            args.timeout,
            lambda error: report_failed_via_salt_call(fallback, error, args.report_timeout).get(
                "return"
            ),
        )
    sys.stdout.flush()
    os.execvp(fallback[0], fallback)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
