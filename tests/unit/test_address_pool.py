"""Address checks spread over a real process pool: the same answers in the same order as in
one thread, short lists never start it, a pool whose process died is replaced and the list
still answered, and a send-links submit through the API gives the same items either way."""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures.process import _ExecutorManagerThread
from typing import Any

import psutil
import pytest

from api.services.parallel import MAX_BROKEN, CpuPool
from api.services.recipients import normalise_addresses
from schemas.common import Channel
from schemas.messages import OperationsMessage, RecipientChunk
from schemas.requests import SEED_LINK_SEND_EXAMPLE
from tests.support import wait_for
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
    kill_processes(pool)
    assert pool.addresses(PHONES, Channel.SMS, "TR") == expected
    assert pool._pool is None, "the broken pool is dropped"
    assert pool.addresses(PHONES, Channel.SMS, "TR") == expected
    assert pool._pool is not None and pool._pool is not broken


def kill_processes(pool: CpuPool) -> None:
    """SIGKILL the pool's processes, and wait until the pool has seen it.

    Waiting keeps the next list from racing the pool's breakdown inside CPython (a process
    started by a submit at that moment can crash the fork server, which breaks the next
    pool too): the next list finds the pool broken at its first submit.
    """
    executor = pool._pool
    assert executor is not None
    for pid in list(executor._processes):  # the executor's own record of its processes
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: executor._broken, timeout=30, message="the pool sees its processes died")


def broken_before_use(pool: CpuPool) -> None:
    """The pool's processes started and killed before a list comes."""
    pool._started().submit(int).result()
    kill_processes(pool)


def test_a_pool_that_keeps_breaking_is_given_up(pool: CpuPool) -> None:
    expected = normalise_addresses(PHONES, Channel.SMS, "TR")
    for _ in range(MAX_BROKEN - 1):
        broken_before_use(pool)
        assert pool.addresses(PHONES, Channel.SMS, "TR") == expected  # answered here
    assert pool.addresses(PHONES, Channel.SMS, "TR") == expected  # a new pool works
    assert pool.processes == 2 and pool._pool is not None

    for _ in range(MAX_BROKEN):  # the success above started the count again
        broken_before_use(pool)
        assert pool.addresses(PHONES, Channel.SMS, "TR") == expected
    assert pool.processes == 1 and pool._pool is None, "given up: every list checked here"
    assert pool.addresses(PHONES, Channel.SMS, "TR") == expected
    assert pool._pool is None
    # Nothing of the broken pools is left for the interpreter's exit to wait on.
    wait_for(lambda: not pool_managers(), timeout=30, message="the broken pools' managers end")


def pool_managers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, _ExecutorManagerThread)]


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


def test_pool_processes_leave_with_a_killed_api_process() -> None:
    script = (
        "from api.services.parallel import CpuPool\n"
        "from schemas.common import Channel\n"
        "pool = CpuPool(processes=2, min_items=10)\n"
        "pool.addresses(['+905321234567'] * 20, Channel.SMS, 'TR')\n"
        "print(' '.join(str(pid) for pid in pool._pool._processes), flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True) as api:
        try:
            assert api.stdout is not None
            pids = [int(pid) for pid in api.stdout.readline().split()]
            assert pids and all(psutil.pid_exists(pid) for pid in pids)
            helpers = psutil.Process(api.pid).children(recursive=True)
        finally:
            api.kill()
    gone, alive = psutil.wait_procs(helpers, timeout=10)
    assert len(helpers) >= 3 and alive == [], "pool, fork server, resource tracker: all ended"
    assert {p.pid for p in gone} >= set(pids)
