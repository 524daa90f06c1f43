"""HTTP adapters: an SMS API in Twilio's Messages shape, and the WhatsApp Cloud API.

Both send the item id as an ``Idempotency-Key`` header. The simulator (and APIs that follow
that convention) deduplicate on it; Twilio's and Meta's public APIs do not document one, so
against them a worker killed between a send and its commit may send that message again.
"""

from __future__ import annotations

import httpx

from schemas.common import ErrorCategory
from streams.providers.base import (
    Delivery,
    ProviderError,
    http_status_error,
    network_error,
    parse_retry_after,
)


class _HttpProvider:
    channel = ""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def _post(self, url: str, **kwargs: object) -> httpx.Response:
        try:
            return await self._client.post(url, **kwargs)  # type: ignore[arg-type]
        except httpx.TimeoutException as exc:
            raise ProviderError(
                "PROVIDER_TIMEOUT", str(exc) or "timed out", ErrorCategory.NETWORK, retryable=True
            ) from exc
        except httpx.TransportError as exc:
            raise network_error(exc) from exc

    async def close(self) -> None:
        await self._client.aclose()


class TwilioStyleSms(_HttpProvider):
    """``POST {base}/2010-04-01/Accounts/{sid}/Messages.json`` with To, From, Body (form)."""

    channel = "SMS"

    def __init__(
        self, *, base_url: str, account_sid: str, auth_token: str, sender: str, timeout: float
    ) -> None:
        super().__init__(
            httpx.AsyncClient(
                base_url=base_url,
                auth=(account_sid, auth_token),
                timeout=timeout,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
            )
        )
        self._path = f"/2010-04-01/Accounts/{account_sid}/Messages.json"
        self._sender = sender

    async def send(self, *, to: str, body: str, subject: str, idempotency_key: str) -> Delivery:
        response = await self._post(
            self._path,
            data={"To": to, "From": self._sender, "Body": body},
            headers={"Idempotency-Key": idempotency_key},
        )
        if response.status_code in (200, 201):
            return Delivery(str(response.json()["sid"]))
        code, message = "", ""
        try:
            payload = response.json()
            code, message = f"SMS_{payload.get('code', '')}", str(payload.get("message", ""))
        except ValueError:
            pass
        raise http_status_error(
            response.status_code,
            code,
            message,
            parse_retry_after(response.headers.get("Retry-After")),
        )


class WhatsAppCloud(_HttpProvider):
    """``POST {base}/{version}/{phone_number_id}/messages`` with a text message (JSON, Bearer)."""

    channel = "WhatsApp"
    # Meta answers throughput and spam limits with these codes (HTTP 400 or 429).
    _THROTTLE_CODES = frozenset({4, 80007, 130429, 131048, 131056})

    def __init__(
        self, *, base_url: str, api_version: str, phone_number_id: str, token: str, timeout: float
    ) -> None:
        super().__init__(
            httpx.AsyncClient(
                base_url=base_url,
                headers={"Authorization": f"Bearer {token}"},
                timeout=timeout,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=100),
            )
        )
        self._path = f"/{api_version}/{phone_number_id}/messages"

    async def send(self, *, to: str, body: str, subject: str, idempotency_key: str) -> Delivery:
        response = await self._post(
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
        if response.status_code == 200:
            return Delivery(str(response.json()["messages"][0]["id"]))
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        code, message = 0, ""
        try:
            error = response.json().get("error", {})
            code, message = int(error.get("code", 0)), str(error.get("message", ""))
        except ValueError:
            pass
        status = 429 if code in self._THROTTLE_CODES else response.status_code
        raise http_status_error(status, f"WHATSAPP_{code}" if code else "", message, retry_after)
