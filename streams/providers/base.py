"""The provider interface and the error mapping every adapter shares."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schemas.common import ErrorCategory


@dataclass(frozen=True)
class Delivery:
    """What a provider said when it accepted a message."""

    provider_message_id: str


class ProviderError(Exception):
    """A send that did not go through, classified the way the seed's errors are."""

    def __init__(
        self,
        code: str,
        message: str,
        category: ErrorCategory,
        *,
        retryable: bool,
        retry_after: float | None = None,
        rate_limited: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.category = category
        self.retryable = retryable
        self.retry_after = retry_after
        self.rate_limited = rate_limited


class Provider(Protocol):
    """Sends one message. ``idempotency_key`` is the item id ``{operationId}:{itemIndex}``."""

    channel: str

    async def send(self, *, to: str, body: str, subject: str, idempotency_key: str) -> Delivery: ...

    async def close(self) -> None: ...


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); None when absent or odd."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 3600 else None


def http_status_error(
    status: int, code: str, message: str, retry_after: float | None
) -> ProviderError:
    """Map an HTTP failure: 429 throttled, 5xx transient, 408 transient, other 4xx permanent."""
    if status == 429:
        return ProviderError(
            code or "RATE_LIMITED",
            message or "provider rate limit",
            ErrorCategory.PROCESSING,
            retryable=True,
            retry_after=retry_after if retry_after is not None else 1.0,
            rate_limited=True,
        )
    if status >= 500 or status == 408:
        return ProviderError(
            code or f"PROVIDER_{status}",
            message or "provider unavailable",
            ErrorCategory.PROCESSING,
            retryable=True,
            retry_after=retry_after,
        )
    if status in (401, 403):
        return ProviderError(
            code or "PROVIDER_AUTH",
            message or "provider refused our credentials",
            ErrorCategory.SYSTEM,
            retryable=False,
        )
    return ProviderError(
        code or f"PROVIDER_{status}",
        message or "provider refused the message",
        ErrorCategory.VALIDATION,
        retryable=False,
    )


def network_error(exc: Exception) -> ProviderError:
    return ProviderError(
        "NETWORK_ERROR", f"{type(exc).__name__}: {exc}"[:500], ErrorCategory.NETWORK, retryable=True
    )
