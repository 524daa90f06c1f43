from __future__ import annotations

import base64
import itertools
import os
import re

import pytest

from streams.codes import BODY_LENGTH, CodeMinter, encode_bodies

SECRET = "unit-test-secret-" + "x" * 32


def test_codes_are_deterministic_for_replays() -> None:
    minter = CodeMinter(SECRET)
    assert minter.codes("L2025", 7, 100, 50) == CodeMinter(SECRET).codes("L2025", 7, 100, 50)


def test_overlapping_ranges_agree_item_by_item() -> None:
    minter = CodeMinter(SECRET)
    assert minter.bodies(7, 0, 10)[5:] == minter.bodies(7, 5, 5)


def test_bodies_are_unique_across_serials_and_sponsors() -> None:
    minter = CodeMinter(SECRET)
    bodies = minter.bodies(7, 0, 100_000) + minter.bodies(8, 0, 100_000)
    assert len(set(bodies)) == len(bodies)


def test_format_is_prefix_dash_crockford_body() -> None:
    for code in CodeMinter(SECRET).codes("L2025ANT", 3, 0, 200):
        prefix, body = code.split("-", 1)
        assert prefix == "L2025ANT"
        assert len(body) == BODY_LENGTH
        assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]+", body), body


def test_another_secret_gives_other_codes() -> None:
    assert CodeMinter(SECRET).bodies(7, 0, 5) != CodeMinter(SECRET + "!").bodies(7, 0, 5)


def test_consecutive_codes_share_no_visible_structure() -> None:
    """Neighbouring serials must not give neighbouring codes (enumeration resistance)."""
    bodies = CodeMinter(SECRET).bodies(7, 0, 1000)
    same_first_half = sum(a[:13] == b[:13] for a, b in itertools.pairwise(bodies))
    assert same_first_half == 0


@pytest.mark.parametrize(("sponsor", "serial"), [(0, 0), (2**64, 0), (1, -1), (1, 2**64)])
def test_out_of_range_inputs_are_refused(sponsor: int, serial: int) -> None:
    with pytest.raises(ValueError, match="64 bits"):
        CodeMinter(SECRET).bodies(sponsor, serial, 1)


GOLDEN_SECRET = "golden-secret-for-the-code-format-0123456789"


def test_codes_stay_byte_for_byte_what_they_were() -> None:
    """Values minted by the first (pure-Python base32) implementation: a code once handed
    out must never change, whatever makes minting faster."""
    minter = CodeMinter(GOLDEN_SECRET)
    assert minter.bodies(7, 0, 3) == [
        "F0KSD53KT3C7THQCDNJHRN2514",
        "VZAP33A9RM4Q11E0GEV5VWYSCG",
        "5ECXHZ77HX4XZWR9HATV5G7QRW",
    ]
    assert minter.bodies(2**63 - 1, 2**64 - 3, 3) == [
        "2J6ARY3G4ZDJ51RR97BWTPJ5QC",
        "QE16N14VWD7NMJK3CW09KR8JY8",
        "2DAQH447XP3DK90NYD6C2M0714",
    ]
    assert minter.codes("L2025", 42, 123456789, 2) == [
        "L2025-VBWBFN50T8RH0XK5V7P7GM3VY0",
        "L2025-KGRRC6H2ZN0HB3QS88SJC84AP4",
    ]


def _reference_body(block: bytes) -> str:
    """RFC 4648 base32 of one block, cut to 26 characters, in Crockford's alphabet."""
    table = bytes.maketrans(
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    )
    return base64.b32encode(block)[:BODY_LENGTH].translate(table).decode()


def test_the_vectorised_encoding_is_base32_block_by_block() -> None:
    blocks = os.urandom(16 * 5000)
    expected = [_reference_body(blocks[i : i + 16]) for i in range(0, len(blocks), 16)]
    assert encode_bodies(blocks) == expected


@pytest.mark.parametrize("prefix", ["L2025", "A-B-C", "X", "İNDİRİM", "WITH SPACE"])
def test_codes_are_the_prefix_a_dash_and_the_body_whatever_the_prefix(prefix: str) -> None:
    """The fast path writes the prefix into the same buffer as the bodies; prefixes it cannot
    take (not ASCII, or with the separator) are joined one by one, with the same result."""
    minter = CodeMinter(GOLDEN_SECRET)
    bodies = minter.bodies(9, 1000, 300)
    assert minter.codes(prefix, 9, 1000, 300) == [f"{prefix}-{body}" for body in bodies]
    assert minter.codes(prefix, 9, 1000, 0) == []
