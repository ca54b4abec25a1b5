"""What the features give the worker to do, registered from their ``init_app`` (issue 19 item 2).

A feature calls :func:`register_pass` (a job run on every pass), :func:`register_periodic` (a job
run at the worker's start and then every N seconds) or :func:`register_delivery` (how an outbox
message of its ``kind`` is delivered); :mod:`api.worker` reads :func:`jobs`. This module imports no
feature and is imported by no worker code a feature needs, so neither the worker nor the outbox
takes part in an import cycle with the features.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Flask, current_app

from api.outbox import OutboxMessage
from api.salt_client import SaltApiClient


@dataclass(frozen=True)
class Delivery:
    """How the worker delivers an outbox message of one ``kind`` a feature queues: ``deliver(msg)``
    sends it and returns what the log line shows; ``failure`` is the exception that means "retry
    with backoff"; after ``max_attempts`` (a config name and its default) the message is given up."""

    deliver: Callable[[OutboxMessage], str]
    failure: type[Exception]
    max_attempts: tuple[str, float]


@dataclass(frozen=True)
class Periodic:
    """A job run at the worker's start and then every ``interval`` seconds (a config name and its
    default)."""

    run: Callable[[], object]
    interval: tuple[str, float]


@dataclass
class Jobs:
    """What the features gave the worker to do, per app (``app.extensions["berth_worker"]``)."""

    passes: list[Callable[[SaltApiClient | None], int]] = field(default_factory=list)
    periodic: list[Periodic] = field(default_factory=list)
    deliveries: dict[str, Delivery] = field(default_factory=dict)


def jobs(app: Flask | None = None) -> Jobs:
    return (app or current_app).extensions.setdefault("berth_worker", Jobs())


def register_pass(app: Flask, run: Callable[[SaltApiClient | None], int]) -> None:
    """``run(client)`` on every pass, in the order registered, before the outbox drains; it
    returns how much work it did (0 = idle)."""
    jobs(app).passes.append(run)


def register_periodic(app: Flask, run: Callable[[], object], interval: tuple[str, float]) -> None:
    jobs(app).periodic.append(Periodic(run, interval))


def register_delivery(app: Flask, kind: str, delivery: Delivery) -> None:
    jobs(app).deliveries[kind] = delivery
