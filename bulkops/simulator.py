"""A provider simulator: the SMS, WhatsApp and SMTP APIs our adapters speak, on 127.0.0.1.

It enforces a rate limit per sender (429 + ``Retry-After``), injects latency and failures
(permanent ones by recipient, transient ones by attempt, or an outage mode), deduplicates on
the idempotency key (``Idempotency-Key`` header, or the e-mail ``Message-ID``) and keeps a
ledger of what it delivered, so tests and benchmarks can prove "each recipient exactly once".

Control it over HTTP: ``GET /_ledger`` (summary), ``GET /_ledger/{channel}`` (entries),
``POST /_config`` (change behaviour at run time), ``POST /_reset``.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from email import message_from_bytes
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

SMS_PATH = "/2010-04-01/Accounts/{sid}/Messages.json"
WHATSAPP_PATH = "/{version}/{phone_id}/messages"


@dataclass
class SimulatorConfig:
    rate_per_second: float = 0.0  # per sender; 0 = unlimited
    burst: float = 0.0  # bucket size; 0 = one second of rate
    latency_ms: float = 0.0
    permanent_failure_rate: float = 0.0  # by recipient: the same recipient always fails
    transient_failure_rate: float = 0.0  # by (key, attempt): a retry may pass
    fail_first_attempts: int = 0  # every key fails this many times with 503 first
    mode: str = "normal"  # "normal" | "error500" | "throttle"
    throttle_retry_after: float = 1.0


@dataclass
class LedgerEntry:
    channel: str
    key: str
    to: str
    body: str
    sender: str
    message_id: str
    accepted_at: float


@dataclass
class Ledger:
    entries: dict[str, LedgerEntry] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    requests: int = 0
    rate_limited_at: list[float] = field(default_factory=list)
    failures: int = 0


class _Bucket:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst or rate
        self.tokens = self.burst
        self.updated = time.monotonic()

    def take(self) -> float | None:
        """None when a token was taken; else seconds until the next one."""
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


def _fraction(*parts: str) -> float:
    digest = hashlib.sha256("|".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class ProviderSimulator:
    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        self.ledger = Ledger()
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    # -- behaviour shared by every channel --------------------------------------------------

    def _bucket(self, sender: str) -> _Bucket | None:
        if self.config.rate_per_second <= 0:
            return None
        bucket = self._buckets.get(sender)
        if bucket is None or bucket.rate != self.config.rate_per_second:
            bucket = self._buckets[sender] = _Bucket(self.config.rate_per_second, self.config.burst)
        return bucket

    def decide(self, channel: str, sender: str, key: str, to: str) -> tuple[int, str, float | None]:
        """(status, error code, retry-after) for one attempt; 200 means deliver."""
        with self._lock:
            self.ledger.requests += 1
            attempt = self.ledger.attempts.get(key, 0) + 1
            self.ledger.attempts[key] = attempt
            if key in self.ledger.entries:
                return 200, "", None
            config = self.config
            if config.mode == "throttle":
                self.ledger.rate_limited_at.append(time.time())
                return 429, "RATE_LIMITED", config.throttle_retry_after
            bucket = self._bucket(f"{channel}:{sender}")
            if bucket is not None:
                wait = bucket.take()
                if wait is not None:
                    self.ledger.rate_limited_at.append(time.time())
                    return 429, "RATE_LIMITED", max(wait, 0.01)
            if config.mode == "error500":
                self.ledger.failures += 1
                return 500, "INTERNAL", None
            if attempt <= config.fail_first_attempts:
                self.ledger.failures += 1
                return 503, "UNAVAILABLE", None
            if _fraction("permanent", to) < config.permanent_failure_rate:
                self.ledger.failures += 1
                return 400, "INVALID_RECIPIENT", None
            if _fraction("transient", key, str(attempt)) < config.transient_failure_rate:
                self.ledger.failures += 1
                return 503, "UNAVAILABLE", None
            return 0, "", None

    def deliver(self, channel: str, sender: str, key: str, to: str, body: str) -> tuple[str, bool]:
        """Record a delivery; (message id, was it new)."""
        with self._lock:
            existing = self.ledger.entries.get(key)
            if existing is not None:
                self.ledger.duplicates += 1
                return existing.message_id, False
            message_id = f"SM{uuid.uuid4().hex}"
            self.ledger.entries[key] = LedgerEntry(
                channel, key, to, body, sender, message_id, time.time()
            )
            return message_id, True

    def summary(self) -> dict[str, Any]:
        with self._lock:
            per_channel: dict[str, int] = {}
            for entry in self.ledger.entries.values():
                per_channel[entry.channel] = per_channel.get(entry.channel, 0) + 1
            return {
                "delivered": len(self.ledger.entries),
                "perChannel": per_channel,
                "duplicatesSuppressed": self.ledger.duplicates,
                "requests": self.ledger.requests,
                "rateLimited": len(self.ledger.rate_limited_at),
                "rateLimitedAt": list(self.ledger.rate_limited_at),
                "failures": self.ledger.failures,
            }

    def entries(self, channel: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(e) for e in self.ledger.entries.values() if channel in (None, e.channel)]

    def reset(self) -> None:
        with self._lock:
            self.ledger = Ledger()
            self._buckets.clear()

    async def _latency(self) -> None:
        if self.config.latency_ms > 0:
            await asyncio.sleep(self.config.latency_ms / 1000)

    # -- HTTP: SMS (Twilio shape) and WhatsApp Cloud API -----------------------------------

    async def _sms(self, request: web.Request) -> web.Response:
        form = await request.post()
        key = request.headers.get("Idempotency-Key") or str(uuid.uuid4())
        to, sender, body = (
            str(form.get("To", "")),
            str(form.get("From", "")),
            str(form.get("Body", "")),
        )
        if not to or not body:
            return web.json_response(
                {"code": 21604, "message": "To and Body are required", "status": 400}, status=400
            )
        await self._latency()
        status, code, retry_after = self.decide("SMS", sender, key, to)
        if status == 200 or status == 0:
            sid, _ = self.deliver("SMS", sender, key, to, body)
            return web.json_response({"sid": sid, "status": "queued", "to": to}, status=201)
        headers = {"Retry-After": f"{retry_after:.3f}"} if retry_after is not None else {}
        twilio = {
            "RATE_LIMITED": 20429,
            "INVALID_RECIPIENT": 21211,
            "INTERNAL": 20500,
            "UNAVAILABLE": 20503,
        }
        return web.json_response(
            {"code": twilio.get(code, 20500), "message": code, "status": status},
            status=status,
            headers=headers,
        )

    async def _whatsapp(self, request: web.Request) -> web.Response:
        payload = await request.json()
        key = request.headers.get("Idempotency-Key") or str(uuid.uuid4())
        sender = request.match_info["phone_id"]
        to = str(payload.get("to", ""))
        body = str(payload.get("text", {}).get("body", ""))
        if payload.get("messaging_product") != "whatsapp" or not to:
            return web.json_response({"error": {"message": "bad request", "code": 100}}, status=400)
        await self._latency()
        status, code, retry_after = self.decide("WhatsApp", sender, key, to)
        if status in (0, 200):
            wamid, _ = self.deliver("WhatsApp", sender, key, to, body)
            return web.json_response(
                {
                    "messaging_product": "whatsapp",
                    "contacts": [{"input": to, "wa_id": to}],
                    "messages": [{"id": f"wamid.{wamid}"}],
                }
            )
        meta = {
            "RATE_LIMITED": 130429,
            "INVALID_RECIPIENT": 131026,
            "INTERNAL": 1,
            "UNAVAILABLE": 2,
        }
        headers = {"Retry-After": f"{retry_after:.3f}"} if retry_after is not None else {}
        return web.json_response(
            {"error": {"message": code, "type": "OAuthException", "code": meta.get(code, 1)}},
            status=status,
            headers=headers,
        )

    async def _ledger_summary(self, _: web.Request) -> web.Response:
        return web.json_response(self.summary())

    async def _ledger_entries(self, request: web.Request) -> web.Response:
        return web.json_response(self.entries(request.match_info["channel"]))

    async def _config(self, request: web.Request) -> web.Response:
        changes = await request.json()
        for name, value in changes.items():
            if not hasattr(self.config, name):
                return web.json_response({"error": f"unknown setting {name}"}, status=400)
            setattr(self.config, name, type(getattr(self.config, name))(value))
        return web.json_response(asdict(self.config))

    async def _reset(self, _: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"reset": True})

    def web_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post(SMS_PATH, self._sms)
        app.router.add_post(WHATSAPP_PATH, self._whatsapp)
        app.router.add_get("/_ledger", self._ledger_summary)
        app.router.add_get("/_ledger/{channel}", self._ledger_entries)
        app.router.add_post("/_config", self._config)
        app.router.add_post("/_reset", self._reset)
        return app

    # -- SMTP -------------------------------------------------------------------------------

    def smtp_handler(self) -> _SmtpHandler:
        return _SmtpHandler(self)


class _SmtpHandler:
    def __init__(self, simulator: ProviderSimulator) -> None:
        self.simulator = simulator

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content or b""
        message = message_from_bytes(raw if isinstance(raw, bytes) else raw.encode())
        key = str(message.get("X-Idempotency-Key") or message.get("Message-ID") or uuid.uuid4())
        to = ",".join(envelope.rcpt_tos)
        sender = str(envelope.mail_from)
        await self.simulator._latency()
        status, _, _ = self.simulator.decide("Email", sender, key, to)
        if status == 429:
            return "451 4.7.1 Rate limited, try again later"
        if status in (500, 503):
            return "451 4.3.0 Temporary failure"
        if status == 400:
            return "550 5.1.1 Recipient address rejected"
        payload = message.get_payload(decode=True)
        body = payload.decode(errors="replace") if isinstance(payload, bytes) else str(payload)
        self.simulator.deliver("Email", sender, key, to, body.strip())
        return "250 OK"


class SimulatorThread:
    """Runs the simulator's HTTP and SMTP servers on a private event loop in a thread."""

    def __init__(
        self,
        simulator: ProviderSimulator,
        *,
        host: str = "127.0.0.1",
        http_port: int,
        smtp_port: int,
    ) -> None:
        self.simulator = simulator
        self.host = host
        self.http_port = http_port
        self.smtp_port = smtp_port
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="simulator", daemon=True
        )
        self._runner: web.AppRunner | None = None
        self._smtp: Controller | None = None

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.http_port}"

    def start(self) -> SimulatorThread:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start_http(), self._loop).result(timeout=10)
        self._smtp = Controller(
            self.simulator.smtp_handler(), hostname=self.host, port=self.smtp_port, ready_timeout=10
        )
        self._smtp.start()
        return self

    async def _start_http(self) -> None:
        self._runner = web.AppRunner(self.simulator.web_app(), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.http_port).start()

    def stop(self) -> None:
        if self._smtp is not None:
            self._smtp.stop()
            self._smtp = None
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
            self._runner = None
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
