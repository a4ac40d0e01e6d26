"""A small version of bench/soundness.py: the gate's false-pass rate against a constant and
a coarse baseline, and its power, so that a regression of issue 12 fails CI (< 30 s)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "soundness.py"


@pytest.fixture(scope="module")
def soundness():
    spec = importlib.util.spec_from_file_location("soundness", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def loose_bound(reps: int, nominal: float = 0.05) -> float:
    """Nominal + 2.5 binomial standard errors at the nominal rate."""
    return nominal + 2.5 * math.sqrt(nominal * (1 - nominal) / reps)


@pytest.mark.parametrize(
    "scenario", ["no-signal candidate vs the dummy", "continuous candidate vs a 4-level baseline"]
)
def test_false_pass_rate_against_unlike_baselines(soundness, scenario):
    """Before issue 12: 42% (dummy) and 17% (coarse) false passes at a nominal 5%."""
    function, kind, _sizes = soundness.SCENARIOS[scenario]
    assert kind == "false"
    passes, reps = function(500, 60, 200, 3)
    assert passes / reps <= loose_bound(reps), f"{scenario}: {passes} of {reps} passed"


def test_the_gate_still_has_power(soundness):
    """A gate that never passes would meet every false-pass bound: AUC 0.80 against 0.70 at
    n=500 must pass often (about 70% in the bench)."""
    function, kind, _sizes = soundness.SCENARIOS["power: AUC 0.80 vs 0.70"]
    assert kind == "power"
    passes, reps = function(500, 30, 200, 4)
    assert passes / reps >= 0.35
