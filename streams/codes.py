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

_CROCKFORD = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)
BODY_LENGTH = 26
# A body is the block's 128 bits, then two zero bits, read five bits per character (RFC 4648
# base32 of the block, cut to 26 characters, in Crockford's alphabet).
_FIVE_BITS = np.array([16, 8, 4, 2, 1], dtype=np.uint8)


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
        blocks = np.empty((count, 2), dtype=">u8")  # (sponsorId, serial), big-endian
        blocks[:, 0] = sponsor_id
        blocks[:, 1] = np.arange(first_serial, first_serial + count, dtype=np.uint64)
        encryptor = self._cipher.encryptor()
        ciphertext = encryptor.update(blocks.tobytes()) + encryptor.finalize()
        return encode_bodies(ciphertext)

    def codes(self, prefix: str, sponsor_id: int, first_serial: int, count: int) -> list[str]:
        return [f"{prefix}-{body}" for body in self.bodies(sponsor_id, first_serial, count)]


def encode_bodies(ciphertext: bytes) -> list[str]:
    """Each 16-byte block as 26 Crockford base32 characters, all blocks at once."""
    bits = np.unpackbits(np.frombuffer(ciphertext, dtype=np.uint8).reshape(-1, 16), axis=1)
    padded = np.zeros((bits.shape[0], BODY_LENGTH * 5), dtype=np.uint8)
    padded[:, :128] = bits
    digits = padded.reshape(-1, BODY_LENGTH, 5) @ _FIVE_BITS
    text = np.ascontiguousarray(_CROCKFORD[digits])
    return text.view(f"S{BODY_LENGTH}").ravel().astype(f"U{BODY_LENGTH}").tolist()


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
