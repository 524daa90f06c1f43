"""A small Python client for the Bulkops REST API.

    client = BulkopsClient("http://127.0.0.1:8000", token)
    operation_id = client.generate_codes(subscription_tier_id=3, quantity=1000)
    final = client.wait(operation_id, on_progress=print)

``wait`` polls with the backoff of the caller-visibility guide: every 2 s at first, a little
slower past a quarter, slower still past half way, never slower than every 10 s, and never
sooner than the server's ``pollAfterSeconds`` hint.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

TERMINAL = frozenset({"Completed", "Failed", "Cancelled", "PartiallyCompleted"})


class BulkopsError(RuntimeError):
    """An error answer in the API's envelope."""

    def __init__(self, status_code: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status_code} {body.get('error')}: {body.get('message')}")
        self.status_code = status_code
        self.error = body.get("error")
        self.details = body.get("details")


class BulkopsClient:
    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._root = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=f"{self._root}/api/v1/bulk-operations",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )
        self._sleep = sleep

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> BulkopsClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        response = self._http.request(method, path, **kwargs)
        body = response.json()
        if response.status_code >= 400:
            raise BulkopsError(response.status_code, body)
        return dict(body)

    def sql(self, query: str, result_format: str = "json") -> httpx.Response:
        """An Admin's read-only query: the answer (JSON envelope, or the CSV/Parquet file)."""
        response = self._http.post(
            f"{self._root}/api/v1/admin/sql", json={"sql": query, "format": result_format}
        )
        if response.status_code >= 400:
            raise BulkopsError(response.status_code, response.json())
        return response

    def generate_codes(self, **request: Any) -> str:
        """Keyword arguments in snake_case or camelCase, as the request body takes them."""
        return str(self._call("POST", "/generate-codes", json=request)["data"]["operationId"])

    def send_links(self, **request: Any) -> str:
        return str(self._call("POST", "/send-links", json=request)["data"]["operationId"])

    def status(self, operation_id: str) -> dict[str, Any]:
        return dict(self._call("GET", f"/status/{operation_id}")["data"])

    def cancel(self, operation_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/cancel/{operation_id}")["data"])

    def retry(self, operation_id: str) -> dict[str, Any]:
        return dict(self._call("POST", f"/retry/{operation_id}")["data"])

    def history(self, page_size: int = 50, page: int = 1) -> dict[str, Any]:
        return self._call("GET", "/history", params={"pageSize": page_size, "page": page})

    def wait(
        self,
        operation_id: str,
        *,
        timeout: float = 3600.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """Poll until the operation ends; return its final status."""
        deadline = time.monotonic() + timeout
        interval = 2.0
        while True:
            status = self.status(operation_id)
            if on_progress is not None:
                on_progress(status)
            if status["status"] in TERMINAL:
                return status
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{operation_id} did not finish within {timeout:.0f}s")
            interval = next_interval(interval, status)
            self._sleep(interval)


def next_interval(current: float, status: dict[str, Any]) -> float:
    """The guide's intelligent polling: back off as the operation gets further along."""
    done = float(status.get("metrics", {}).get("progressPercentage", 0.0))
    if done > 50:
        current = min(current * 1.5, 10.0)
    elif done > 25:
        current = min(current * 1.2, 5.0)
    hint = float(status.get("pollAfterSeconds") or 0.0)
    return max(min(current, 10.0), min(hint, 10.0), 0.5)
