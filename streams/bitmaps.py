"""Bitmaps of item batches: one bit per batch index, kept as bytes in the operation's
table value (base64 in its JSON). Python ints do the set arithmetic."""

from __future__ import annotations


def bit(bitmap: bytes, index: int) -> bool:
    return bool(bitmap[index >> 3] & (1 << (index & 7)))


def with_bit(bitmap: bytes, index: int) -> bytes:
    flipped = bytearray(bitmap)
    flipped[index >> 3] |= 1 << (index & 7)
    return bytes(flipped)


def without_bit(bitmap: bytes, index: int) -> bytes:
    flipped = bytearray(bitmap)
    flipped[index >> 3] &= ~(1 << (index & 7)) & 0xFF
    return bytes(flipped)


def set_bits(bitmap: bytes, limit: int) -> list[int]:
    """Indexes of the set bits below ``limit``, in order."""
    return indexes_of(int.from_bytes(bitmap, "little"), limit)


def indexes_of(bits: int, limit: int) -> list[int]:
    found: list[int] = []
    while bits:
        low = bits & -bits
        index = low.bit_length() - 1
        if index >= limit:
            break
        found.append(index)
        bits ^= low
    return found
