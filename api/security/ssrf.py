"""Webhook targets (docs/security.md, "Webhooks"): a callback URL must lead to a public address.

Loopback, private, link-local, multicast, reserved and shared (CGNAT) addresses are refused, and
so are IPv6 addresses that embed such an IPv4 address (IPv4-mapped and -compatible, NAT64, 6to4,
Teredo: decoded first) and the local-use NAT64 prefix 64:ff9b:1::/48 --
when the URL is submitted (400) and again at every delivery, where the request is then sent to
the very address that was checked (DNS rebinding cannot swap it in between). A documented setting,
``BERTH_WEBHOOK_ALLOW_PRIVATE_TARGETS`` (config or environment), lifts the rule for fleets whose
receivers live on a private network (and for the tests).

:func:`redact_url` is how a callback URL appears in logs and stored errors: no credentials, no
query string.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import certifi
import urllib3
from flask import current_app, has_app_context


class UnsafeTarget(Exception):
    pass


def allow_private() -> bool:
    value = None
    if has_app_context():
        value = current_app.config.get("BERTH_WEBHOOK_ALLOW_PRIVATE_TARGETS")
    if value is None:
        value = os.environ.get("BERTH_WEBHOOK_ALLOW_PRIVATE_TARGETS")
    return str(value).strip().lower() in ("1", "true", "yes", "on") if value is not None else False


def redact_url(url: str) -> str:
    """``scheme://host[:port]/path``: what a URL may show in a log or a stored error."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}{parts.path or '/'}"


# IPv6 forms that carry an IPv4 address the packet ends up at (the address itself may look global)
_NAT64_WELL_KNOWN = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052
_NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: local to an operator
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # RFC 4291 (deprecated) ::a.b.c.d


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address leads to: IPv4-mapped, IPv4-compatible, NAT64 (well-known
    prefix), 6to4 and Teredo (its server and its client)."""
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip in _NAT64_WELL_KNOWN or ip in _IPV4_COMPATIBLE:
        return [low32]
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip.teredo is not None:
        return list(ip.teredo)
    return []


def _public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL_USE:  # its IPv4 embedding is the operator's choice: never public
            return False
        embedded = _embedded_ipv4(ip)
        if embedded:
            return all(_public(v4) for v4 in embedded)
    return ip.is_global and not ip.is_multicast


def resolve(url: str) -> list[str]:
    """The addresses ``url``'s host resolves to, all of them public (else :class:`UnsafeTarget`)."""
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        raise UnsafeTarget("the URL has no host")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeTarget(f"cannot resolve {host}: {exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise UnsafeTarget(f"cannot resolve {host}")
    if not allow_private():
        for address in addresses:
            if not _public(ipaddress.ip_address(address.split("%", 1)[0])):
                raise UnsafeTarget(
                    f"{host} resolves to {address}, a loopback, private, link-local, multicast or "
                    "reserved address; webhooks go to public addresses only "
                    "(BERTH_WEBHOOK_ALLOW_PRIVATE_TARGETS lifts this, docs/security.md)"
                )
    return addresses


@dataclass
class Answer:
    status: int


def post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST to ``url`` at an address :func:`resolve` checked just now; no redirects followed.

    Raises :class:`UnsafeTarget` for a refused target and ``urllib3`` errors for network
    failures (their text never holds the URL's credentials or query).
    """
    parts = urlsplit(url)
    address = resolve(url)[0]
    host = parts.hostname
    headers = dict(headers)
    headers["Host"] = parts.netloc.rsplit("@", 1)[-1]
    if parts.username is not None:
        creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(creds.encode()).decode()
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    pool_timeout = urllib3.Timeout(connect=timeout, read=timeout)
    pool: urllib3.HTTPConnectionPool
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            parts.port or 443,
            timeout=pool_timeout,
            retries=False,
            cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(),
            server_hostname=host,
            assert_hostname=host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(
            address, parts.port or 80, timeout=pool_timeout, retries=False
        )
    try:
        resp = pool.urlopen(
            "POST", path, body=body, headers=headers, redirect=False, preload_content=True
        )
        return Answer(resp.status)
    finally:
        pool.close()
