from __future__ import annotations

import itertools
import re

import pytest

from streams.codes import BODY_LENGTH, CodeMinter

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
