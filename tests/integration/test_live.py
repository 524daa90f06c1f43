"""Live progress over WebSocket and SSE from a real server."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import aiohttp
import httpx
import orjson

from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_link_sends import body


async def ws_messages(server: Server, operation_id: str, token: str) -> list[dict[str, Any]]:
    url = f"ws://127.0.0.1:{server.port}/ws/bulk-operations/{operation_id}"
    messages = []
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=aiohttp.ClientWSTimeout(ws_close=10),
        ) as ws,
    ):
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                messages.append(orjson.loads(message.data))
    return messages


def sse_messages(server: Server, operation_id: str, token: str) -> list[dict[str, Any]]:
    messages = []
    with httpx.stream(
        "GET",
        f"{server.base_url}/api/v1/bulk-operations/events/{operation_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        event = None
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = orjson.loads(line[6:])
                assert data["type"] == event
                messages.append(data)
    return messages


def check_stream(messages: list[dict[str, Any]], total: int, seconds: float) -> None:
    assert messages[0]["type"] == "progress_update"
    assert messages[-1]["type"] == "operation_completed"
    assert messages[-1]["finalStatus"] == "Completed"
    updates = [m for m in messages if m["type"] == "progress_update"]
    processed = [m["processedItems"] for m in updates]
    assert processed == sorted(processed), "progress must arrive in order"
    assert processed[-1] == total
    assert len(updates) <= seconds * 4 + 4, "at most a few updates per second"


async def test_websocket_and_sse_follow_an_operation(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=100)).start()
    client = server.client(sponsor_id=51)
    token = server.token(51)
    operation_id = await asyncio.to_thread(
        submit, client, body(300, "SMS", batchSize=20), "/send-links"
    )
    started = time.monotonic()
    ws, sse = await asyncio.gather(
        ws_messages(server, operation_id, token),
        asyncio.to_thread(sse_messages, server, operation_id, token),
    )
    seconds = time.monotonic() - started
    check_stream(ws, 300, seconds)
    check_stream(sse, 300, seconds)
    assert len([m for m in ws if m["type"] == "progress_update"]) >= 3

    late = await ws_messages(server, operation_id, token)
    assert [m["type"] for m in late] == ["progress_update", "operation_completed"]
    assert late[0]["processedItems"] == 300


async def test_websocket_refuses_strangers_and_survives_a_client_that_never_reads(
    make_server: Any, simulator: SimulatorThread
) -> None:
    server: Server = make_server(**provider_env(simulator, sender_rate_sms=100)).start()
    client = server.client(sponsor_id=52)
    operation_id = await asyncio.to_thread(
        submit, client, body(200, "SMS", batchSize=10), "/send-links"
    )
    url = f"ws://127.0.0.1:{server.port}/ws/bulk-operations/{operation_id}"
    async with aiohttp.ClientSession() as session:
        for headers, code in (({}, 4401), ({"Authorization": f"Bearer {server.token(53)}"}, 4404)):
            async with session.ws_connect(url, headers=headers) as ws:
                first = await ws.receive_json()
                assert first["success"] is False
                closing = await ws.receive()
                assert closing.type is aiohttp.WSMsgType.CLOSE
                assert ws.close_code == code

    # A client that completes the handshake and then never reads a byte.
    stuck = socket.create_connection(("127.0.0.1", server.port))
    stuck.sendall(
        (
            f"GET /ws/bulk-operations/{operation_id}?access_token={server.token(52)} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    try:
        messages = await ws_messages(server, operation_id, server.token(52))
        assert messages[-1]["type"] == "operation_completed"
        health = await asyncio.to_thread(httpx.get, f"{server.base_url}/healthz", timeout=5)
        assert health.status_code == 200
        assert (await asyncio.to_thread(wait_terminal, client, operation_id))[
            "status"
        ] == "Completed"
    finally:
        stuck.close()
