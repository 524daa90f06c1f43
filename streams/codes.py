"""Redeemable codes: unique across the whole system by construction, and unguessable.

A code is ``{prefix}-{body}`` where ``body`` is the 128-bit AES encryption of the pair
``(sponsorId, serial)`` written in Crockford base32 (26 characters, no I/L/O/U).

* Unique: every sponsor's serials come from one counter kept by the worker that owns the
  sponsor's partition (see ``streams.app``), so no two items anywhere share a
  ``(sponsorId, serial)`` plaintext; AES under one key is a permutation of 128-bit blocks,
  so distinct plaintexts give distinct bodies. No lookup, no retry loop, no lock.
* Unguessable: without the key the bodies are indistinguishable from random 128-bit values
  (AES is a pseudo-random permutation): seeing any number of codes tells nothing about others.
* Replay-safe: the body is a pure function of (key, sponsor, serial), so a batch processed
  twice yields the same codes and the ClickHouse tables dedupe them.

The key is derived from ``BULKOPS_CODE_SECRET`` with HKDF. Rotating that secret changes
future codes only, and the by-construction argument then holds per key: across two keys a
collision has probability 2**-128 per pair of codes.
"""

from __future__ import annotations

import base64
import struct
import time
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from schemas.common import ItemStatus
from schemas.messages import ItemBatch, ResultBatch

_RFC4648 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CROCKFORD = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_TO_CROCKFORD = bytes.maketrans(_RFC4648, _CROCKFORD)
_BLOCK = struct.Struct(">QQ")
BODY_LENGTH = 26


class CodeMinter:
    """Turns (sponsor, serial range) into code bodies; one AES call per batch."""

    def __init__(self, secret: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=16, salt=None, info=b"bulkops/codes/v1"
        ).derive(secret.encode())
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 - single-block PRP

    def bodies(self, sponsor_id: int, first_serial: int, count: int) -> list[str]:
        if not 0 < sponsor_id < 2**64 or not 0 <= first_serial <= 2**64 - count:
            raise ValueError("sponsor id and serials must fit in 64 bits")
        pack = _BLOCK.pack
        plaintext = b"".join(pack(sponsor_id, s) for s in range(first_serial, first_serial + count))
        encryptor = self._cipher.encryptor()
        ciphertext = encryptor.update(plaintext) + encryptor.finalize()
        b32 = base64.b32encode
        return [
            b32(ciphertext[i : i + 16])[:BODY_LENGTH].translate(_TO_CROCKFORD).decode()
            for i in range(0, len(ciphertext), 16)
        ]

    def codes(self, prefix: str, sponsor_id: int, first_serial: int, count: int) -> list[str]:
        return [f"{prefix}-{body}" for body in self.bodies(sponsor_id, first_serial, count)]


def generate_codes(minter: CodeMinter, batch: ItemBatch) -> ResultBatch:
    """Process one code-generation item batch: every item succeeds with its code."""
    spec = batch.code
    if spec is None:
        raise ValueError("a code-generation batch needs its code spec")
    started = time.perf_counter()
    now = datetime.now(UTC)
    codes = minter.codes(
        spec.prefix, batch.sponsor_id, spec.serial_base + batch.start_index, batch.count
    )
    return ResultBatch(
        operation_id=batch.operation_id,
        sponsor_id=batch.sponsor_id,
        operation_type=batch.operation_type,
        batch_index=batch.batch_index,
        start_index=batch.start_index,
        statuses=[ItemStatus.SUCCESS] * batch.count,
        results=list(codes),
        processed_at=now,
        duration_ms=(time.perf_counter() - started) * 1000,
        tier_id=spec.tier_id,
        expires_at=now + timedelta(days=spec.validity_days),
        batch_name=spec.batch_name,
    )
