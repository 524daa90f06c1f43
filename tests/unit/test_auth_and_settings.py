from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from pydantic import ValidationError

from api.auth import Principal, Role, VerifiedTokens, decode_token, mint_token
from api.errors import ApiError
from core.settings import DEV_JWT_SECRET, ApiSettings, WorkerSettings

SECRET = "s" * 40


def test_round_trip() -> None:
    principal = decode_token(
        mint_token(SECRET, subject="u1", role=Role.SPONSOR, sponsor_id=7), SECRET
    )
    assert (principal.subject, principal.role, principal.sponsor_id) == ("u1", Role.SPONSOR, 7)
    assert principal.can_see(7) and not principal.can_see(8)
    admin = decode_token(mint_token(SECRET, subject="a", role=Role.ADMIN, sponsor_id=None), SECRET)
    assert admin.can_see(8) and admin.sponsor_scope is None


def _status(token: str) -> tuple[int, str]:
    with pytest.raises(ApiError) as info:
        decode_token(token, SECRET, leeway=0)
    return info.value.status_code, info.value.message


def test_expired_token() -> None:
    old = datetime.now(UTC) - timedelta(hours=2)
    token = mint_token(
        SECRET, subject="u", role=Role.SPONSOR, sponsor_id=7, ttl=timedelta(hours=1), now=old
    )
    assert _status(token) == (401, "Token expired")


def test_forged_token() -> None:
    token = mint_token("another-secret-" + "x" * 30, subject="u", role=Role.ADMIN, sponsor_id=None)
    assert _status(token)[0] == 401


def test_unsigned_token() -> None:
    now = datetime.now(UTC)
    claims = {
        "iss": "bulkops",
        "sub": "u",
        "role": "Admin",
        "iat": now,
        "exp": now + timedelta(hours=1),
    }
    token = jwt.encode(claims, key=None, algorithm="none")
    assert _status(token)[0] == 401


def test_unknown_role_is_forbidden() -> None:
    now = datetime.now(UTC)
    token = jwt.encode(
        {
            "iss": "bulkops",
            "sub": "u",
            "role": "Farmer",
            "iat": now,
            "exp": now + timedelta(hours=1),
        },
        SECRET,
        algorithm="HS256",
    )
    assert _status(token)[0] == 403


def test_sponsor_token_needs_a_sponsor_id() -> None:
    token = mint_token(SECRET, subject="u", role=Role.SPONSOR, sponsor_id=None)
    assert _status(token) == (401, "Invalid token: a Sponsor token needs a sponsorId claim")


def test_garbage_token() -> None:
    assert _status("not.a.jwt")[0] == 401


def test_dev_secrets_are_refused_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULKOPS_ENV", "prod")
    with pytest.raises(ValidationError, match="BULKOPS_JWT_SECRET"):
        ApiSettings()
    monkeypatch.setenv("BULKOPS_JWT_SECRET", "short")
    monkeypatch.setenv("BULKOPS_CODE_SECRET", "c" * 40)
    monkeypatch.setenv("BULKOPS_WEBHOOK_SECRET", "w" * 40)
    with pytest.raises(ValidationError, match="at least 32"):
        WorkerSettings()
    monkeypatch.setenv("BULKOPS_JWT_SECRET", "j" * 40)
    with pytest.raises(ValidationError, match="BULKOPS_SMS_AUTH_TOKEN"):
        WorkerSettings()
    monkeypatch.setenv("BULKOPS_SMS_AUTH_TOKEN", "sms-token")
    monkeypatch.setenv("BULKOPS_WHATSAPP_TOKEN", "wa-token")
    assert WorkerSettings().jwt_secret == "j" * 40


def test_dev_mode_uses_labelled_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BULKOPS_JWT_SECRET", raising=False)
    monkeypatch.setenv("BULKOPS_ENV", "dev")
    assert ApiSettings().jwt_secret == DEV_JWT_SECRET
    assert "dev-only" in DEV_JWT_SECRET


@pytest.mark.parametrize("value", ["-1", "601", "soon"])
def test_a_stop_grace_out_of_bounds_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("BULKOPS_ENV", "dev")
    monkeypatch.setenv("BULKOPS_SHUTDOWN_GRACE_SECONDS", value)
    with pytest.raises(ValidationError, match="shutdown_grace_seconds"):
        WorkerSettings()
    monkeypatch.setenv("BULKOPS_SHUTDOWN_GRACE_SECONDS", "0")
    assert WorkerSettings().shutdown_grace_seconds == 0


def test_release_windows_in_batches() -> None:
    settings = WorkerSettings(
        sender_rate_sms=100, release_window_send_seconds=5, release_window_items=20_000
    )
    assert settings.release_window(1_000_000, 1000, None) == 20  # 20,000 items of 1,000
    assert settings.release_window(10_000, 100, "SMS") == 5  # 5 s at 100/s, batches of 100
    assert settings.release_window(1_000_000, 10, None) == 4  # never fewer than 4 batches
    assert WorkerSettings(release_window_items=0).release_window(1000, 10, None) == 0
    # Weighted by priority: 5 as configured, 10 twice it, 1 a fifth (never below one batch).
    assert [settings.release_window(1_000_000, 1000, None, p) for p in (1, 5, 9, 10)] == [
        4,
        20,
        36,
        40,
    ]
    assert settings.release_window(1_000_000, 10, None, 1) == 1


def test_a_verified_token_is_kept_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """Polling with one token verifies it once; another secret, an expired entry or a
    refusal are never answered from the cache."""
    verifications = 0
    real_decode = jwt.decode

    def counting(*args: object, **kwargs: object) -> object:
        nonlocal verifications
        verifications += 1
        return real_decode(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    token = mint_token(SECRET, subject="poller", role=Role.SPONSOR, sponsor_id=9)
    for _ in range(5):
        assert decode_token(token, SECRET).sponsor_id == 9
    assert verifications == 1
    with pytest.raises(ApiError) as info:
        decode_token(token, "t" * 40)
    assert info.value.status_code == 401 and verifications == 2
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(2):
        with pytest.raises(ApiError):
            decode_token(forged, SECRET)
    assert verifications == 4, "refusals are verified every time"


def test_the_token_cache_drops_expired_entries_and_stays_bounded() -> None:
    cache = VerifiedTokens(size=2)
    someone = Principal(subject="u", role=Role.SPONSOR, sponsor_id=1)
    cache.put(("a", SECRET, 0), someone, time.time() - 1)
    assert cache.get(("a", SECRET, 0)) is None and len(cache) == 0
    for token in ("b", "c", "d"):
        cache.put((token, SECRET, 0), someone, time.time() + 60)
    assert len(cache) == 2 and cache.get(("b", SECRET, 0)) is None
    assert cache.get(("d", SECRET, 0)) == someone
