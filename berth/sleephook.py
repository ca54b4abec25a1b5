"""``berth-before-sleep``: apply the pending release before the device sleeps
(``docs/fleet.md``), cheaply.

The running minion does the work: the hook asks its local API (the
``berth_localapi`` engine) to run ``state.sls docker.release`` and waits for the
answer, so no new Salt process has to start (a ``salt-call`` costs seconds of
CPU). Only when the local API cannot be reached (no engine, minion not running,
or ``state.sls`` not among the engine's ``commands``) does it run the fallback
command given after ``--`` (the ``salt-call`` line installed by
``state.sls docker.sleep``).

A busy minion (another ``state.sls`` running, e.g. ``docker.registries`` after
a registry change: Salt refuses a second one with "... is running as PID ...")
is waited for: the hook asks again every ``--busy-retry`` seconds until its
``--timeout``. If the minion is still busy then, the hook has the minion report
the release ``failed`` with that reason (``docker.release_report_failed``, the
usual result event, so the API shows why) instead of staying silent. Two hooks
at once apply once: the local API runs one command at a time, so the second
finds the release applied (a no-op that reports nothing).

With the master unreachable (``minionutil.master_reachable`` through the local API) the
hook does not try: it has the device report the release ``failed`` with that reason (kept in
the device's result queue until the master is back) and exits 1 within seconds.

Exit status: 0 when the release was applied or there was nothing to do,
otherwise the job's retcode (1 when it has none). What changed goes to stdout
(the journal).

Only the standard library is imported: the hook runs with the minion's Python
but must start in milliseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

COMMAND = {"command": "state.sls", "arg": ["docker.release"]}
REPORT_FAILED = "docker.release_report_failed"
MASTER_CHECK = "minionutil.master_reachable"
# What Salt returns (as a list) when another state run holds the minion.
BUSY_MARKER = "is running as PID"


class Unreachable(Exception):
    """The local API cannot take the job; the fallback runs instead."""


def _request(url: str, body: dict | None, timeout: float) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:  # our own loopback URL
            return json.load(resp)
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


def apply_via_local_api(base_url: str, timeout: float) -> dict:
    """Run ``state.sls docker.release`` through the local API; returns the job
    response (``fun``, ``return``, ``retcode``, ``success``)."""
    url = _execute_url(base_url)
    try:
        answer = _request(url, COMMAND, timeout=timeout)
    except TimeoutError:
        # The job was accepted and may still be running: not a reason to start a second one.
        raise RuntimeError(f"no answer from {url} within {timeout:g}s") from None
    return answer["response"]


def busy_reason(response: dict) -> str | None:
    """Salt's "... is running as PID ..." refusal in a job response, else None."""
    ret = response.get("return")
    lines = ret if isinstance(ret, list) else [ret] if isinstance(ret, str) else []
    for line in lines:
        if isinstance(line, str) and BUSY_MARKER in line:
            return line
    return None


def apply_when_idle(
    base_url: str, timeout: float, retry: float, log=print
) -> tuple[dict, str | None]:
    """:func:`apply_via_local_api`, asked again every ``retry`` seconds while another state
    run holds the minion, for at most ``timeout`` seconds in all. Returns the last response
    and, when the minion was still busy at the deadline, Salt's reason."""
    deadline = time.monotonic() + timeout
    while True:
        response = apply_via_local_api(base_url, max(1.0, deadline - time.monotonic()))
        reason = busy_reason(response)
        if reason is None:
            return response, None
        if time.monotonic() + retry >= deadline:
            return response, reason
        log(f"berth-before-sleep: minion busy ({reason}); asking again in {retry:g}s")
        time.sleep(retry)


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


def report_failed(base_url: str, error: str) -> dict:
    """Have the minion report its pending release ``failed`` with ``error`` (the result
    event the master forwards to the API); a release already applied is left alone."""
    answer = _request(_execute_url(base_url), {"command": REPORT_FAILED, "arg": [error]}, 60)
    return answer["response"]


def failed_steps(ret) -> list[str]:
    """The ids of the states that failed in a ``state.sls`` return; a return
    that is not a dict of states (the errors Salt returns as a list) counts as one."""
    if isinstance(ret, list):
        return ["state.sls"]
    if not isinstance(ret, dict):
        return []
    return [
        key for key, step in ret.items() if isinstance(step, dict) and step.get("result") is False
    ]


def summary(ret) -> list[str]:
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
        "fallback",
        nargs=argparse.REMAINDER,
        help="-- command to run when the local API is unreachable",
    )
    args = parser.parse_args(argv)
    fallback = args.fallback[1:] if args.fallback[:1] == ["--"] else args.fallback

    if args.local_api:
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
                args.local_api,
                args.timeout,
                args.busy_retry,
                log=lambda line: print(line, file=sys.stderr, flush=True),
            )
            if busy is not None:
                error = (
                    f"the sleep hook could not apply within its {args.timeout:g}s timeout: "
                    f"another state run kept the minion busy ({busy})"
                )
                print(f"berth-before-sleep: {error}", file=sys.stderr, flush=True)
                try:
                    reported = report_failed(args.local_api, error).get("return")
                except (Unreachable, RuntimeError, TimeoutError, KeyError, ValueError) as exc:
                    reported = f"could not report: {exc}"
                print(
                    f"berth-before-sleep: {REPORT_FAILED}: {json.dumps(reported, default=str)}",
                    file=sys.stderr,
                )
                return 1
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
            for line in summary(response.get("return")):
                print(line)
            retcode = response.get("retcode")
            ok = bool(response.get("success")) and not failed_steps(response.get("return"))
            print(
                f"berth-before-sleep: state.sls docker.release via {args.local_api}: "
                f"{'succeeded' if ok else 'failed'} (retcode {retcode})",
                file=sys.stderr,
            )
            if ok:
                return 0
            return retcode if isinstance(retcode, int) and 0 < retcode < 256 else 1
    if not fallback:
        print("berth-before-sleep: no local API reachable and no fallback command", file=sys.stderr)
        return 1
    sys.stdout.flush()
    os.execvp(fallback[0], fallback)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
