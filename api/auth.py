"""Bearer tokens: HS256 JWTs with a role (``Sponsor`` or ``Admin``) and a ``sponsorId`` claim."""

from __future__ import annotations

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


def decode_token(token: str, secret: str, *, leeway: int = 10) -> Principal:
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
    return Principal(subject=str(claims["sub"]), role=role, sponsor_id=sponsor_id)


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
