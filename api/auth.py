"""Bearer tokens: HS256 JWTs with a role (``Sponsor`` or ``Admin``) and a ``sponsorId`` claim."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import ApiError
from core.settings import ApiSettings

ISSUER = "bulkops"


class Role(StrEnum):
    SPONSOR = "Sponsor"
    ADMIN = "Admin"


@dataclass(frozen=True)
class Principal:
    subject: str
    role: Role
    sponsor_id: int | None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    def can_see(self, sponsor_id: int) -> bool:
        return self.is_admin or self.sponsor_id == sponsor_id

    @property
    def sponsor_scope(self) -> int | None:
        """The sponsor whose data this caller reads; ``None`` means all (admins)."""
        return None if self.is_admin else self.sponsor_id


def mint_token(
    secret: str,
    *,
    subject: str,
    role: Role,
    sponsor_id: int | None,
    ttl: timedelta = timedelta(hours=12),
    now: datetime | None = None,
) -> str:
    issued = now or datetime.now(UTC)
    claims: dict[str, object] = {
        "iss": ISSUER,
        "sub": subject,
        "role": role.value,
        "iat": issued,
        "exp": issued + ttl,
    }
    if sponsor_id is not None:
        claims["sponsorId"] = sponsor_id
    return jwt.encode(claims, secret, algorithm="HS256")


def _unauthorised(message: str) -> ApiError:
    return ApiError(401, "UNAUTHORIZED", message, headers={"WWW-Authenticate": "Bearer"})


class VerifiedTokens:
    """Principals of tokens verified lately, each until its ``exp`` (plus leeway).

    Clients poll with the same token many times a second; verifying it again each time
    (PyJWT's parse, HMAC and claim checks) was a third of a status lookup's cost. A token's
    verdict cannot change while it is unexpired (the signature is of its own bytes), so it
    is kept by the exact token and secret; refusals are never kept. Bounded, least recently
    used first out; thread-safe.
    """

    def __init__(self, size: int = 10_000) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[str, str, int], tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, int]) -> Principal | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[1] <= time.time():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[0]

    def put(self, key: tuple[str, str, int], principal: Principal, until: float) -> None:
        with self._lock:
            self._entries[key] = (principal, until)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)


VERIFIED = VerifiedTokens()


def decode_token(token: str, secret: str, *, leeway: int = 10) -> Principal:
    """The caller a token names, or the 401/403 that says why it may not call."""
    key = (token, secret, leeway)
    principal = VERIFIED.get(key)
    if principal is None:
        principal, expires = _verify(token, secret, leeway)
        VERIFIED.put(key, principal, expires + leeway)
    return principal


def _verify(token: str, secret: str, leeway: int) -> tuple[Principal, float]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=ISSUER,
            leeway=leeway,
            options={"require": ["exp", "iat", "sub", "role"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise _unauthorised("Token expired") from exc
    except jwt.InvalidTokenError as exc:
        raise _unauthorised(f"Invalid token: {exc}") from exc
    try:
        role = Role(claims["role"])
    except ValueError as exc:
        raise ApiError(
            403, "FORBIDDEN", "Only Sponsor and Admin roles may use bulk operations"
        ) from exc
    sponsor_id = claims.get("sponsorId")
    if sponsor_id is not None and (not isinstance(sponsor_id, int) or sponsor_id < 1):
        raise _unauthorised("Invalid token: sponsorId must be a positive integer")
    if role is Role.SPONSOR and sponsor_id is None:
        raise _unauthorised("Invalid token: a Sponsor token needs a sponsorId claim")
    principal = Principal(subject=str(claims["sub"]), role=role, sponsor_id=sponsor_id)
    return principal, float(claims["exp"])


_bearer = HTTPBearer(auto_error=False, description="JWT (HS256) with role and sponsorId claims")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from the bearer token (``async``: a few microseconds of HMAC, not worth a
    hop through the thread pool on every request)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise _unauthorised("Missing bearer token")
    settings: ApiSettings = request.app.state.settings
    return decode_token(
        credentials.credentials, settings.jwt_secret, leeway=settings.token_leeway_seconds
    )


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]
