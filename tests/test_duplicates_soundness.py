"""A small version of bench/soundness.py's duplicates part: the cross-split repeat check
blocks rarely at zero leakage on tables unlike the ones it was tuned on, and still blocks
copies (issue 16; the guide's "simulate every statistical rule")."""

from __future__ import annotations

import runpy

import pytest

from tests.conftest import ROOT

# bench/soundness.py's simulation (a script, not a package module)
duplicates_rate = runpy.run_path(str(ROOT / "bench" / "soundness.py"))["duplicates_rate"]


@pytest.mark.parametrize(
    ("kind", "ids"),
    [("crowding", True), ("correlated", False), ("mixed", True)],
    ids=["time split, later rows crowd into one level", "correlated codes, no ids", "mixed"],
)
def test_no_leak_rarely_blocks(kind, ids):
    """Zero leakage: nominal <= chance_level (0.1%); 1 block in 20 tables is allowed.
    Before: a time split whose later rows crowd into the common profiles blocked 18 of
    these 20 tables with ids (the chance share came from the earlier splits alone), and
    codes that are all functions of one age blocked 20 of 20 without ids."""
    blocks, reps = duplicates_rate(kind, 1000, 20, 3, ids)
    assert blocks <= 1, f"{kind}: {blocks} of {reps} tables blocked at zero leakage"


def test_copies_still_block():
    """5% of the test rows copied from train under new ids (2.5% of valid + test, over the
    1% that blocks) in a continuous space: every table blocks (100 of 100 in the bench)."""
    blocks, reps = duplicates_rate("continuous", 1000, 10, 4, True, leak=0.05)
    assert blocks >= 9, f"{blocks} of {reps} tables with copies blocked"
