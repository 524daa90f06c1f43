"""E-mail over SMTP (aiosmtplib). The item id goes in the Message-ID and an
``X-Idempotency-Key`` header, which receivers (and the simulator) use to recognise a message
sent twice."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage
from email.utils import formatdate

import aiosmtplib

from schemas.common import ErrorCategory
from streams.providers.base import Delivery, ProviderError, network_error


class SmtpEmail:
    channel = "Email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        username: str | None,
        password: str | None,
        start_tls: bool,
        timeout: float,
        connections: int = 4,
    ) -> None:
        self._options = {
            "hostname": host,
            "port": port,
            "username": username,
            "password": password,
            "start_tls": start_tls,
            "timeout": timeout,
        }
        self._sender = sender
        self._pool: asyncio.Queue[aiosmtplib.SMTP] = asyncio.Queue()
        self._connections = connections
        self._created = 0

    async def _connection(self) -> aiosmtplib.SMTP:
        if self._pool.empty() and self._created < self._connections:
            self._created += 1
            client = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
            return client
        return await self._pool.get()

    async def send(self, *, to: str, body: str, subject: str, idempotency_key: str) -> Delivery:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(usegmt=True)
        message_id = f"<{idempotency_key.replace(':', '.')}@bulkops>"
        message["Message-ID"] = message_id
        message["X-Idempotency-Key"] = idempotency_key
        message.set_content(body)
        client = await self._connection()
        try:
            if not client.is_connected:
                await client.connect()
            errors, _ = await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            raise ProviderError(
                "EMAIL_REJECTED", str(exc)[:500], ErrorCategory.VALIDATION, retryable=False
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            permanent = 500 <= exc.code < 600
            raise ProviderError(
                f"SMTP_{exc.code}",
                exc.message[:500],
                ErrorCategory.VALIDATION if permanent else ErrorCategory.PROCESSING,
                retryable=not permanent,
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            client.close()
            raise network_error(exc) from exc
        finally:
            self._pool.put_nowait(client)
        if errors:
            raise ProviderError(
                "EMAIL_REJECTED", str(errors)[:500], ErrorCategory.VALIDATION, retryable=False
            )
        return Delivery(message_id)

    async def close(self) -> None:
        while not self._pool.empty():
            client = self._pool.get_nowait()
            if client.is_connected:
                try:
                    await client.quit()
                except aiosmtplib.SMTPException:
                    client.close()
