"""HTTP adapters: an SMS API in Twilio's Messages shape, and the WhatsApp Cloud API.

They use aiohttp's client: measured here, httpx spent ~2 ms of CPU per request under a few
hundred concurrent sends (its pool re-scans waiting requests), capping a worker near 450
sends/s; aiohttp does not.

Both send the item id as an ``Idempotency-Key`` header. The simulator (and APIs that follow
that convention) deduplicate on it; Twilio's and Meta's public APIs do not document one, so
against them a worker killed between a send and its commit may send that message again.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlencode

import aiohttp

from schemas.common import ErrorCategory
from streams.providers.base import (
    Delivery,
    ProviderError,
    http_status_error,
    network_error,
    parse_retry_after,
)

# Encoded here: aiohttp's FormData builds a multipart writer (and a uuid4) for every request.
_FORM = "application/x-www-form-urlencoded"


class _HttpProvider:
    channel = ""

    def __init__(self, base_url: str, timeout: float, **session: Any) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session_options = session
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the worker's running event loop.
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                connector=aiohttp.TCPConnector(limit=200),
                **self._session_options,
            )
        return self._session

    async def _post(self, path: str, **kwargs: Any) -> tuple[int, dict[str, Any], str | None]:
        """(status, JSON body or {}, Retry-After header)."""
        try:
            async with self._client().post(self._base_url + path, **kwargs) as response:
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = None
                return (
                    response.status,
                    payload if isinstance(payload, dict) else {},
                    response.headers.get("Retry-After"),
                )
        except TimeoutError as exc:
            raise ProviderError(
                "PROVIDER_TIMEOUT", "timed out", ErrorCategory.NETWORK, retryable=True
            ) from exc
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError) as exc:
            raise network_error(exc) from exc

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class TwilioStyleSms(_HttpProvider):
    """``POST {base}/2010-04-01/Accounts/{sid}/Messages.json`` with To, From, Body (form)."""

    channel = "SMS"

    def __init__(
        self, *, base_url: str, account_sid: str, auth_token: str, sender: str, timeout: float
    ) -> None:
        basic = aiohttp.encode_basic_auth(account_sid, auth_token)
        super().__init__(base_url, timeout, headers={"Authorization": basic})
        self._path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._sender = sender

    async def send(self, *, to: str, body: str, subject: str, idempotency_key: str) -> Delivery:
        status, payload, retry_after = await self._post(
            self._path,
            data=urlencode({"To": to, "From": self._sender, "Body": body}).encode(),
            headers={"Content-Type": _FORM, "Idempotency-Key": idempotency_key},
        )
        if status in (200, 201) and "sid" in payload:
            return Delivery(str(payload["sid"]))
        code = f"SMS_{payload['code']}" if "code" in payload else ""
        raise http_status_error(
            status, code, str(payload.get("message", "")), parse_retry_after(retry_after)
        )


class WhatsAppCloud(_HttpProvider):
    """``POST {base}/{version}/{phone_number_id}/messages`` with a text message (JSON, Bearer)."""

    channel = "WhatsApp"
    # Meta answers throughput and spam limits with these codes (HTTP 400 or 429).
    _THROTTLE_CODES = frozenset({4, 80007, 130429, 131048, 131056})

    def __init__(
        self, *, base_url: str, api_version: str, phone_number_id: str, token: str, timeout: float
    ) -> None:
        super().__init__(base_url, timeout, headers={"Authorization": f"Bearer {token}"})
        self._path = f"/{api_version}/{phone_number_id}/messages"

    async def send(self, *, to: str, body: str, subject: str, idempotency_key: str) -> Delivery:
        status, payload, retry_after = await self._post(
            self._path,
            json={
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": to.lstrip("+"),
                "type": "text",
                "text": {"preview_url": True, "body": body},
            },
            headers={"Idempotency-Key": idempotency_key},
        )
        if status == 200 and payload.get("messages"):
            return Delivery(str(payload["messages"][0]["id"]))
        error = payload.get("error", {}) if isinstance(payload.get("error"), dict) else {}
        code = int(error.get("code", 0) or 0)
        mapped = 429 if code in self._THROTTLE_CODES else status
        raise http_status_error(
            mapped,
            f"WHATSAPP_{code}" if code else "",
            str(error.get("message", "")),
            parse_retry_after(retry_after),
        )
