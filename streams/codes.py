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

import time
from datetime import UTC, datetime, timedelta

import numpy as np
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from schemas.common import ItemStatus
from schemas.messages import ItemBatch, ResultBatch

_CROCKFORD = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
BODY_LENGTH = 26
# A body is the block's 128 bits, then two zero bits, read five bits per character (RFC 4648
# base32 of the block, cut to 26 characters, in Crockford's alphabet). Character k is bits
# [5k, 5k+5): inside the 16-bit big-endian pair of bytes starting at byte 5k // 8.
_FIRST_BYTE = (5 * np.arange(BODY_LENGTH)) // 8
_SHIFT = (11 - (5 * np.arange(BODY_LENGTH)) % 8).astype(np.uint16)
# Digit values 0-31 become their characters; every other byte stays as it is.
_DIGITS_TO_TEXT = _CROCKFORD + bytes(range(32, 256))
_SEPARATOR = b" "


class CodeMinter:
    """Turns (sponsor, serial range) into code bodies; one AES call per batch."""

    def __init__(self, secret: str) -> None:
        key = HKDF(
            algorithm=hashes.SHA256(), length=16, salt=None, info=b"bulkops/codes/v1"
        ).derive(secret.encode())
        self._cipher = Cipher(algorithms.AES(key), modes.ECB())  # noqa: S305 - single-block PRP

    def _blocks(self, sponsor_id: int, first_serial: int, count: int) -> bytes:
        if not 0 < sponsor_id < 2**64 or not 0 <= first_serial <= 2**64 - count:
            raise ValueError("sponsor id and serials must fit in 64 bits")
        blocks = np.empty((count, 2), dtype=">u8")  # (sponsorId, serial), big-endian
        blocks[:, 0] = sponsor_id
        blocks[:, 1] = np.arange(first_serial, first_serial + count, dtype=np.uint64)
        encryptor = self._cipher.encryptor()
        return encryptor.update(blocks.tobytes()) + encryptor.finalize()

    def bodies(self, sponsor_id: int, first_serial: int, count: int) -> list[str]:
        return encode_bodies(self._blocks(sponsor_id, first_serial, count))

    def codes(self, prefix: str, sponsor_id: int, first_serial: int, count: int) -> list[str]:
        ciphertext = self._blocks(sponsor_id, first_serial, count)
        head = f"{prefix}-"
        if head.isascii() and head.isprintable() and " " not in head:  # every CodePrefix
            return encode_bodies(ciphertext, head)
        return [head + body for body in encode_bodies(ciphertext)]


def encode_bodies(ciphertext: bytes, head: str = "") -> list[str]:
    """Each 16-byte block as 26 Crockford base32 characters after ``head``, all blocks at
    once: the digits are cut from byte pairs by numpy, turned into characters by one
    ``bytes.translate`` and into strings by one ``split`` (``head``: printable ASCII, no
    space)."""
    n = len(ciphertext) // 16
    raw = np.zeros((n, 18), dtype=np.uint8)  # two zero bytes for the last pair
    raw[:, :16] = np.frombuffer(ciphertext, dtype=np.uint8).reshape(n, 16)
    pairs = (raw[:, _FIRST_BYTE].astype(np.uint16) << 8) | raw[:, _FIRST_BYTE + 1]
    start = len(head)
    text = np.empty((n, start + BODY_LENGTH + 1), dtype=np.uint8)
    text[:, :start] = np.frombuffer(head.encode("ascii"), dtype=np.uint8)
    text[:, start:-1] = (pairs >> _SHIFT) & 31
    text[:, -1] = _SEPARATOR[0]
    joined = text.tobytes().translate(_DIGITS_TO_TEXT).decode("ascii")
    return joined.split(" ")[:-1]


def generate_codes(
    minter: CodeMinter, batch: ItemBatch, taken_at: datetime | None = None
) -> ResultBatch:
    """Process one code-generation item batch: every item succeeds with its code.

    ``taken_at``: when the batch was taken, its items' ``processed_at`` (now by default).
    """
    spec = batch.code
    if spec is None:
        raise ValueError("a code-generation batch needs its code spec")
    started = time.perf_counter()
    now = taken_at or datetime.now(UTC)
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
