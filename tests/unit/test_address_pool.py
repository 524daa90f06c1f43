"""Address checks spread over a real process pool: the same answers in the same order as in
one thread, short lists never start it, a pool whose process died is replaced and the list
still answered, and a send-links submit through the API gives the same items either way."""

from __future__ import annotations

import copy
import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest

from api.services.parallel import CpuPool
from api.services.recipients import normalise_addresses
from schemas.common import Channel
from schemas.messages import OperationsMessage, RecipientChunk
from schemas.requests import SEED_LINK_SEND_EXAMPLE
from tests.unit.conftest import FakeMessageSink, api_client, auth

PHONES: list[str | None] = [
    "+905321234567",
    "05321234568",  # national form, read in TR
    "+90 532 123 45 69",
    "12",
    None,
    "",
    "+1 202 555 0143",
    "not a number",
    "+9053212345670000",
] * 5
EMAILS: list[str | None] = ["Ahmet@Example.com", "bad@@example.com", None, "x@example.org"] * 5


@pytest.fixture
def pool() -> Iterator[CpuPool]:
    pool = CpuPool(processes=2, min_items=10, slice_items=7)
    yield pool
    pool.close()


@pytest.mark.parametrize(("channel", "raws"), [(Channel.SMS, PHONES), (Channel.EMAIL, EMAILS)])
def test_a_pool_answers_as_one_thread_does_in_order(
    pool: CpuPool, channel: Channel, raws: list[str | None]
) -> None:
    expected = normalise_addresses(raws, channel, "TR")
    assert {problem for _, problem in expected} > {None}
    assert pool.addresses(raws, channel, "TR") == expected
    assert pool._pool is not None, "the list was long enough for the pool"


def test_short_lists_and_one_process_never_start_a_pool(pool: CpuPool) -> None:
    assert pool.addresses(PHONES[:9], Channel.SMS, "TR") == normalise_addresses(
        PHONES[:9], Channel.SMS, "TR"
    )
    single = CpuPool(processes=1, min_items=1)
    assert single.addresses(PHONES, Channel.SMS, "TR") == normalise_addresses(
        PHONES, Channel.SMS, "TR"
    )
    assert pool._pool is None and single._pool is None


def test_a_pool_whose_process_died_is_replaced_and_the_list_still_answered(
    pool: CpuPool,
) -> None:
    expected = normalise_addresses(PHONES, Channel.SMS, "TR")
    assert pool.addresses(PHONES, Channel.SMS, "TR") == expected
    broken = pool._pool
    assert broken is not None
    for pid in list(broken._processes):  # the executor's own record of its processes
        os.kill(pid, signal.SIGKILL)
    assert pool.addresses(PHONES, Channel.SMS, "TR") == expected
    assert pool._pool is None, "the broken pool is dropped"
    assert pool.addresses(PHONES, Channel.SMS, "TR") == expected
    assert pool._pool is not None and pool._pool is not broken


def submitted_items(parallel_from: int) -> list[tuple[str | None, str | None, str | None]]:
    body: dict[str, Any] = copy.deepcopy(SEED_LINK_SEND_EXAMPLE)
    body["recipients"] = [
        {"name": f"n{i}", "phoneNumber": phone or "", "personalizationData": {}}
        for i, phone in enumerate(p for p in PHONES if p is not None)
    ]
    body["messageTemplate"] = "Merhaba {name}: {link}"
    sink = FakeMessageSink()
    settings = {"address_check_processes": 2, "address_check_parallel_from": parallel_from}
    with api_client(sink, **settings) as client:
        response = client.post("/api/v1/bulk-operations/send-links", json=body, headers=auth())
        assert response.status_code == 202, response.text
    chunks = [
        message
        for topic, _, value in sink.sent
        if topic.endswith(".operations")
        and isinstance(message := OperationsMessage.validate_json(value), RecipientChunk)
    ]
    return [
        (r.address, r.message, r.skip.error_code if r.skip else None)
        for chunk in chunks
        for r in chunk.recipients
    ]


def test_a_submit_queues_the_same_items_with_the_pool_as_without() -> None:
    with_pool = submitted_items(parallel_from=2)
    assert with_pool == submitted_items(parallel_from=1_000_000)
    assert ("+905321234567", "Merhaba n0: https://sponsor.example.com/redeem", None) in with_pool
    assert {code for *_, code in with_pool} >= {None, "INVALID_PHONE", "DUPLICATE_RECIPIENT"}
