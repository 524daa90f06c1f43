"""Webhook signing and the callback-URL guard: what the API checks at submit time and the
worker again before each delivery.

A sponsor's signing secret is derived from ``BULKOPS_WEBHOOK_SECRET`` (HKDF-SHA256), so nothing
per sponsor is stored; a delivery is signed ``sha256=HMAC(secret, "{timestamp}.{body}")``.
Callback URLs that resolve to loopback, private, link-local or reserved addresses are refused
(server-side request forgery) unless private targets are explicitly allowed.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class UnsafeTarget(ValueError):
    """A callback URL that points somewhere it must not."""


def sponsor_secret(master: str, sponsor_id: int) -> str:
    """The sponsor's signing secret: derived, so nothing per sponsor needs storing."""
    return _derived(master, f"bulkops/webhook/{sponsor_id}")


def operators_secret(master: str) -> str:
    """The secret of the operators' alert webhooks (``operation_alert``), derived apart from
    every sponsor's."""
    return _derived(master, "bulkops/webhook/operators")


def job_type_secret(master: str, job_type: str) -> str:
    """The secret a job type's HTTP handler checks Bulkops' requests with: one per type, so
    an owning system can verify only its own types' batches."""
    return _derived(master, f"bulkops/jobs/{job_type}")


def _derived(master: str, info: str) -> str:
    return (
        HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info.encode())
        .derive(master.encode())
        .hex()
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


def check_target(url: str, *, allow_private: bool, field: str = "callbackUrl") -> None:
    """Refuse URLs that resolve to addresses a server must not call on a client's behalf;
    ``field`` names the URL in the refusal."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeTarget(f"{field} must be an http(s) URL with a host")
    if allow_private:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        raise UnsafeTarget(f"{field} host {parts.hostname!r} does not resolve") from exc
    for info in infos:
        address = ipaddress.ip_address(info[4][0])
        if not address.is_global:
            raise UnsafeTarget(
                f"{field} resolves to {address}, a loopback/private/reserved address"
            )
