"""The SMS and WhatsApp adapters against a real local HTTP server: what goes on the wire
(credentials, the form or JSON body, the idempotency key), and how answers map to a delivery
or a classified error."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from streams.providers.base import ProviderError
from streams.providers.http import TwilioStyleSms, WhatsAppCloud
from tests.unit.conftest import LocalHttp

SMS_PATH = "/2010-04-01/Accounts/AC123/Messages.json"
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]
Serve = Callable[[str, Route], Awaitable[str]]


@pytest.fixture
def serve(local_http: LocalHttp) -> Serve:
    return local_http


def sms(url: str) -> TwilioStyleSms:
    return TwilioStyleSms(
        base_url=url, account_sid="AC123", auth_token="secret", sender="+15550001", timeout=5
    )


async def test_an_sms_goes_as_a_form_with_basic_auth_and_the_item_id(serve: Serve) -> None:
    seen: list[dict[str, Any]] = []

    async def route(request: web.Request) -> web.Response:
        form = await request.post()
        seen.append(
            {
                "type": request.content_type,
                "auth": request.headers.get("Authorization"),
                "key": request.headers.get("Idempotency-Key"),
                "form": dict(form),
            }
        )
        return web.json_response({"sid": "SM1"}, status=201)

    provider = sms(await serve(SMS_PATH, route))
    try:
        delivery = await provider.send(
            to="+905321234567",
            body="Merhaba Çiftçi & co: https://x.test/a?b=1",
            subject="",
            idempotency_key="op_1:7",
        )
    finally:
        await provider.close()
    assert delivery.provider_message_id == "SM1"
    assert seen == [
        {
            "type": "application/x-www-form-urlencoded",
            "auth": "Basic QUMxMjM6c2VjcmV0",  # AC123:secret
            "key": "op_1:7",
            "form": {
                "To": "+905321234567",
                "From": "+15550001",
                "Body": "Merhaba Çiftçi & co: https://x.test/a?b=1",
            },
        }
    ]


@pytest.mark.parametrize(
    ("status", "body", "headers", "code", "retryable", "rate_limited", "retry_after"),
    [
        (429, {"code": 20429, "message": "slow down"}, {"Retry-After": "3"}, "SMS_20429", True,
         True, 3.0),
        (400, {"code": 21211, "message": "invalid To"}, {}, "SMS_21211", False, False, None),
        (503, {}, {}, "PROVIDER_503", True, False, None),
        (201, {"no": "sid"}, {}, "PROVIDER_201", False, False, None),
    ],
)  # fmt: skip
async def test_sms_answers_map_to_classified_errors(
    serve: Serve,
    status: int,
    body: dict[str, Any],
    headers: dict[str, str],
    code: str,
    retryable: bool,
    rate_limited: bool,
    retry_after: float | None,
) -> None:
    async def route(request: web.Request) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    provider = sms(await serve(SMS_PATH, route))
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.send(to="+905321234567", body="hi", subject="", idempotency_key="k")
    finally:
        await provider.close()
    error = raised.value
    assert (error.code, error.retryable, error.rate_limited, error.retry_after) == (
        code,
        retryable,
        rate_limited,
        retry_after,
    )


async def test_a_whatsapp_message_goes_as_json_with_the_bearer_token(serve: Serve) -> None:
    seen: list[dict[str, Any]] = []

    async def route(request: web.Request) -> web.Response:
        seen.append(
            {
                "auth": request.headers.get("Authorization"),
                "key": request.headers.get("Idempotency-Key"),
                "body": await request.json(),
            }
        )
        return web.json_response({"messages": [{"id": "wamid.1"}]})

    url = await serve("/v21.0/PN1/messages", route)
    provider = WhatsAppCloud(
        base_url=url, api_version="v21.0", phone_number_id="PN1", token="tok", timeout=5
    )
    try:
        delivery = await provider.send(
            to="+905321234567", body="Merhaba", subject="", idempotency_key="op_2:0"
        )
    finally:
        await provider.close()
    assert delivery.provider_message_id == "wamid.1"
    assert seen == [
        {
            "auth": "Bearer tok",
            "key": "op_2:0",
            "body": {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": "905321234567",
                "type": "text",
                "text": {"preview_url": True, "body": "Merhaba"},
            },
        }
    ]


async def test_a_provider_nobody_listens_on_is_a_retryable_network_error() -> None:
    from bulkops.localkafka import free_port

    provider = sms(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.send(to="+905321234567", body="hi", subject="", idempotency_key="k")
    finally:
        await provider.close()
    assert (raised.value.code, raised.value.retryable) == ("NETWORK_ERROR", True)


async def test_a_slow_provider_is_a_retryable_timeout(serve: Serve) -> None:
    release = asyncio.Event()

    async def route(request: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({"sid": "late"})

    provider = TwilioStyleSms(
        base_url=await serve(SMS_PATH, route),
        account_sid="AC123",
        auth_token="secret",
        sender="+15550001",
        timeout=0.3,
    )
    try:
        with pytest.raises(ProviderError) as raised:
            await provider.send(to="+905321234567", body="hi", subject="", idempotency_key="k")
    finally:
        await provider.close()
        release.set()
    assert (raised.value.code, raised.value.retryable) == ("PROVIDER_TIMEOUT", True)
