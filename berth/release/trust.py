"""Which images a device agrees to run: cosign signatures checked on the device (issue 18.2).

Before an apply stops or replaces anything (and before a pre-pull downloads anything), the
device checks that every container's pinned digest is signed (cosign key-based format,
:mod:`berth.signing`) by one of the keys it trusts. Where those keys come from (:func:`decide`):

* the minion option ``berth_trusted_keys`` (the device's own configuration, never pillar): a
  list whose entries are PEM public keys (``-----BEGIN PUBLIC KEY-----`` ..., ECDSA P-256 or
  Ed25519, what ``cosign.pub`` holds) or absolute paths of such PEM files (read at each apply;
  a file group or others may write, or that another user than root owns, is refused). When it
  lists any key, verification is mandatory on this device whatever pillar says, and only these
  keys count: a forged pillar (``required: false``, other keys, no digest) cannot make it run
  something unsigned;
* otherwise pillar ``docker:release:signatures`` (``{"required": bool, "keys": [{"name",
  "public_key"}]}``, written by the API from the account's signing keys and release policy):
  checked when ``required`` is true, against those keys.

When verification applies, a container without a pinned digest is refused, and so is one whose
digest carries no signature by a trusted key (no signature, an unknown key, a signature whose
payload names another digest, ...). A refusal names the container and why; the apply changes
nothing (the running release stays) and its result is ``failed``.

A digest once verified with a key is remembered on the device (``signatures.json`` in the
release state dir, root only), so an apply whose images were verified at pre-pull needs no
registry: a digest names its bytes, and a signature by a key over it stays true. A key no
longer trusted no longer matches a remembered entry.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from berth import registryclient, signing

if TYPE_CHECKING:
    from berth.release.model import Target
    from berth.release.statefiles import StateFiles

log = logging.getLogger(__name__)

MINION_OPTION = "berth_trusted_keys"
MAX_KEY_FILE_BYTES = 64 * 1024
MAX_KEYS = 32
MINION, PILLAR = "minion option berth_trusted_keys", "pillar docker:release:signatures"


class Refused(Exception):
    """The release must not run on this device; ``str()`` is the reason for its result."""


@dataclass(frozen=True)
class Decision:
    """Whether to verify, against which keys (``(name, pem)``), and where they came from."""

    required: bool
    keys: tuple[tuple[str, str], ...] = ()
    source: str | None = None  # MINION or PILLAR
    error: str | None = None  # verification applies but cannot be done: every release refused
    fingerprints: dict[str, str] = field(default_factory=dict)  # fingerprint -> key name


def minion_keys(value: object) -> list[tuple[str, str]]:
    """``[(name, pem)]`` of the minion option's value (a list of PEM strings or absolute PEM file
    paths; one string is a list of one); ValueError naming the entry that cannot be used."""
    if value is None or value == "" or value == []:
        return []
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, (list, tuple)):
        raise ValueError(f"must be a list of PEM public keys or PEM file paths, not {value!r:.80}")
    if len(entries) > MAX_KEYS:
        raise ValueError(f"lists {len(entries)} keys, at most {MAX_KEYS}")
    keys = []
    for index, entry in enumerate(entries, 1):
        if not isinstance(entry, str) or not entry.strip():
            raise ValueError(f"entry {index} is not a PEM public key or a file path")
        try:
            if entry.lstrip().startswith("-----BEGIN"):
                name, pem = f"berth_trusted_keys[{index}]", entry
            else:
                name, pem = entry, _read_key_file(entry)
            signing.load_public_key(pem)
        except ValueError as exc:
            raise ValueError(f"entry {index}: {exc}") from None
        keys.append((name, pem))
    return keys


def _read_key_file(path: str) -> str:
    if not os.path.isabs(path):
        raise ValueError(f"{path!r}: give an absolute path of a PEM file (or the PEM itself)")
    try:
        info = os.stat(path)
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            raise ValueError(
                f"{path} may be written by group or others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}): anyone who can write it decides what runs"
            )
        if info.st_uid not in (0, os.geteuid()):
            raise ValueError(
                f"{path} is owned by uid {info.st_uid}, not root: its owner decides what runs"
            )
        with open(path, encoding="ascii") as handle:
            return handle.read(MAX_KEY_FILE_BYTES)
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None


def pillar_keys(signatures: object) -> tuple[bool, list[tuple[str, str]]]:
    """``(required, [(name, pem)])`` of pillar ``docker:release:signatures``; ValueError when it
    is malformed (then the device fails closed: the release is refused)."""
    if signatures is None:
        return False, []
    if not isinstance(signatures, dict):
        raise ValueError("is not a mapping")
    required = signatures.get("required", False)
    if not isinstance(required, bool):
        raise ValueError(f"'required' is not true or false: {required!r:.40}")
    raw = signatures.get("keys") or []
    if not isinstance(raw, list):
        raise ValueError("'keys' is not a list")
    keys = []
    for index, entry in enumerate(raw[:MAX_KEYS], 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("public_key"), str):
            raise ValueError(f"key {index} has no 'public_key'")
        keys.append((str(entry.get("name") or f"key {index}"), entry["public_key"]))
    return required, keys


def decide(option: object, signatures: object) -> Decision:
    """What this device checks: ``option`` is the minion's ``berth_trusted_keys`` (it wins and
    makes verification mandatory), ``signatures`` the release pillar's ``signatures``."""
    try:
        keys = minion_keys(option)
    except ValueError as exc:
        return Decision(True, source=MINION, error=f"{MINION}: {exc}")
    if keys:
        return _with_fingerprints(Decision(True, tuple(keys), MINION))
    try:
        required, keys = pillar_keys(signatures)
    except ValueError as exc:
        return Decision(True, source=PILLAR, error=f"{PILLAR} {exc}")
    if not required:
        return Decision(False)
    usable = []
    for name, pem in keys:
        try:
            signing.load_public_key(pem)
        except ValueError:
            continue  # verifies nothing; the others may
        usable.append((name, pem))
    if not usable:
        return Decision(
            True, source=PILLAR, error=f"{PILLAR} requires signatures but gives no usable key"
        )
    return _with_fingerprints(Decision(True, tuple(usable), PILLAR))


def _with_fingerprints(decision: Decision) -> Decision:
    decision.fingerprints.update(
        {signing.key_fingerprint(pem): name for name, pem in decision.keys}
    )
    return decision


def check(
    containers: Iterable[Any], decision: Decision, verify: Callable[[object, list[str]], str]
) -> dict[str, str]:
    """``{container name: name of the key that signed it}``; :class:`Refused` naming every
    container that may not run and why. ``containers`` are
    :class:`berth.release.model.TargetContainer`; ``verify(container, pems)`` returns the signing
    key's fingerprint or raises :class:`berth.signing.SignatureError`."""
    if not decision.required:
        return {}
    if decision.error:
        raise Refused(f"refused: {decision.error}; nothing was stopped")
    pems = [pem for _, pem in decision.keys]
    signed, problems = {}, []
    for container in containers:
        if not container.digest:
            problems.append(
                f"container {container.name!r} ({container.image}) has no pinned digest, and "
                f"signed images are required ({decision.source})"
            )
            continue
        try:
            fingerprint = verify(container, pems)
        except signing.SignatureError as exc:
            problems.append(
                f"container {container.name!r} ({container.image}): {exc.reason} "
                f"(keys: {decision.source})"
            )
            continue
        signed[container.name] = decision.fingerprints.get(fingerprint, fingerprint)
    if problems:
        raise Refused(f"refused: {'; '.join(problems)}; nothing was stopped")
    return signed


REGISTRY_TIMEOUT = 10.0  # each registry request of a signature check


def verify_target(
    files: StateFiles, target: Target, trusted_keys: Any, device: str = "device"
) -> dict[str, str]:
    """``{container: key name}`` when every container of ``target`` is signed as this device
    requires ({} when it requires nothing); else :class:`Refused` naming the containers and why.
    Digests verified before (``signatures.json``, e.g. at pre-pull) need no registry."""
    decision = decide(trusted_keys, target.signatures)
    if not decision.required:
        return {}
    verified = files.verified_signatures()
    learnt: list[str] = []
    clients: dict[tuple[Any, ...], registryclient.Client] = {}  # one connection per registry

    def verify(container: Any, pems: list[str]) -> str:
        for known in decision.fingerprints:
            if f"{container.digest}|{known}" in verified:
                return known  # verified before (pre-pull): no registry needed
        host, repository, _ = registryclient.split(container.image)
        entry = None if container.registry_id is None else target.registry(container.registry_id)
        creds = None
        if entry and entry.get("username"):
            creds = (str(entry["username"]), str(entry.get("password") or ""))
        url = (entry or {}).get("url")
        client = clients.get((host, url, creds))
        if client is None:
            client = clients[(host, url, creds)] = registryclient.Client(
                host, url, creds, REGISTRY_TIMEOUT
            )
        fingerprint: str = signing.verify_image(client, repository, container.digest, pems)
        learnt.append(f"{container.digest}|{fingerprint}")
        verified.add(learnt[-1])  # another container of the same image: asked once
        return fingerprint

    try:
        signed: dict[str, str] = check(target.containers, decision, verify)
    finally:
        for client in clients.values():
            client.close()
        if learnt:
            files.remember_signatures(learnt)
    log.info(
        "berth release %s on %s: signatures verified (%s): %s",
        target.release_id,
        device,
        decision.source,
        ", ".join(f"{c} by {k}" for c, k in signed.items()),
    )
    return signed
