"""The REST API under generated input (schemathesis) against a running server.

Every operation in the OpenAPI document gets valid and invalid requests (a fixed seed, a
bounded number per operation), sent by two sponsors and an admin, with path parameters that
are sometimes real operation and job ids of either sponsor. Checks: no server error, refusal
of data that breaks the schema, auth not ignored, and answers that match the document
(status codes and bodies). Failures are collected per operation, so one run reports them all.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    ignored_auth,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from api.auth import Role
from bulkops.simulator import SimulatorThread
from tests.integration.conftest import Server, provider_env
from tests.integration.test_codegen_flow import submit, wait_terminal
from tests.integration.test_dealer_invitations import dealer_rows, invite, sponsor_client, stock

pytestmark = pytest.mark.timeout(900)

# Per operation and generation mode; raise it for a deeper run outside CI.
EXAMPLES = int(os.environ.get("BULKOPS_FUZZ_EXAMPLES", "20"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]
# Path parameters that name real things, so the fuzzer reaches past the 404.
ID_PARAMETERS = ("operationId", "jobId")
# Streams that never end by design (like the WebSocket, which is not in the document):
# a generated request would only wait for its read timeout. Covered by their own tests.
ENDLESS = {"GET /api/v1/bulk-operations/events"}


def seed_operations(server: Server) -> dict[str, list[str]]:
    """A finished code run and link send of sponsor 7, one of sponsor 8, and a dealer job."""
    own = server.client(sponsor_id=7)
    codes = submit(own, {"subscriptionTierId": 1, "quantity": 50, "processing": {"batchSize": 10}})
    links = own.post(
        "/send-links",
        json={
            "operationName": "fuzz seed",
            "channel": "SMS",
            "messageTemplate": "Merhaba {name}: {link}",
            "recipients": [
                {"name": f"Alıcı {i}", "phoneNumber": f"+90532000{i:04d}"} for i in range(3)
            ],
        },
    )
    assert links.status_code == 202, links.text
    links_id = links.json()["data"]["operationId"]
    other = submit(server.client(sponsor_id=8), {"subscriptionTierId": 1, "quantity": 20})
    for client, operation_id in ((own, codes), (own, links_id)):
        assert wait_terminal(client, operation_id, timeout=120)["status"] == "Completed"
    stock(server, 7, tier_id=2, quantity=10)
    response = invite(sponsor_client(server, 7), dealer_rows(2, "M", 1))
    assert response.status_code == 202, response.text
    return {
        "operationId": [codes, links_id, other, "codegen_00000000000000000000000000000000"],
        "jobId": [response.json()["data"]["jobId"], "nonexistent"],
    }


def with_real_ids(
    operation: Any, mode: GenerationMode, ids: dict[str, list[str]]
) -> st.SearchStrategy[Case]:
    """Generated cases, half of them with path parameters naming real things."""
    generated = operation.as_strategy(generation_mode=mode)
    names = [p.name for p in operation.path_parameters if p.name in ID_PARAMETERS]
    if mode is GenerationMode.NEGATIVE:
        # An extra query parameter whose value is null or [] is not sent at all, so the
        # request that arrives is valid: not a case of invalid input being accepted.
        return generated.filter(
            lambda case: all(value not in (None, []) for value in (case.query or {}).values())
        )
    if not names:
        return generated
    real = st.fixed_dictionaries({name: st.sampled_from(ids[name]) for name in names}).flatmap(
        lambda params: operation.as_strategy(generation_mode=mode, path_parameters=params)
    )
    return st.one_of(generated, real)


def fuzz(
    operation: Any,
    mode: GenerationMode,
    ids: dict[str, list[str]],
    send: Callable[[Case, str], None],
    tokens: list[str],
) -> None:
    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=with_real_ids(operation, mode, ids), token=st.sampled_from(tokens))
    def run(case: Case, token: str) -> None:
        send(case, token)

    try:
        run()
    except Unsatisfiable:  # nothing in this operation can be made invalid (no parameters)
        assert mode is GenerationMode.NEGATIVE


def test_generated_requests_get_documented_answers_and_no_server_errors(
    make_server: Any, simulator: SimulatorThread
) -> None:
    # The job batches it submits are never answered (no type's worker runs here): a stop
    # need not wait for them.
    server = make_server(**provider_env(simulator), BULKOPS_SHUTDOWN_GRACE_SECONDS="1").start()
    ids = seed_operations(server)
    document = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(document)
    tokens = [
        server.token(7),
        server.token(8),
        server.token(None, role=Role.ADMIN),
    ]
    failures: dict[str, str] = {}
    sent = 0

    def send(case: Case, token: str) -> None:
        nonlocal sent
        sent += 1
        label = f"{case.operation.label} [{case.meta.generation.mode.value if case.meta else '?'}]"
        if label in failures:
            return
        try:
            case.call_and_validate(
                base_url=server.base_url,
                headers={"Authorization": f"Bearer {token}"},
                checks=CHECKS,
                timeout=30,
            )
        except (Exception, BaseExceptionGroup) as failure:  # collected, reported below
            failures[label] = str(failure)[:3000]

    operations = [
        operation
        for operation in (result.ok() for result in schema.get_all_operations())
        if f"{operation.method.upper()} {operation.path}" not in ENDLESS
    ]
    assert len(operations) >= 20
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, ids, send, tokens)
    print(f"{sent} generated requests over {len(operations)} operations")
    assert not failures, "\n\n".join(f"== {label}\n{text}" for label, text in failures.items())
