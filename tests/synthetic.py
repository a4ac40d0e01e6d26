"""Seeded synthetic tables that reproduce problems seen on real data (shared test data).

- `flights`: a flights-like table whose target, "arrival delay over 15 minutes", leaks
  through post-outcome columns, alone (`arr_delay`) and in combination (`arr_time` with
  `sched_arr_time`: their difference modulo midnight is the delay; `air_time` with the
  departure delay and the distance). The legitimate features (the departure delay, the
  schedule, carrier, route, a ~4,000-level tail number) explain it only in part.
- `identical_profiles`: distinct customers (unique ids) described by a few coded
  attributes, so many share their whole feature vector with a customer in another split
  without any row being a copy.

Small and fast: a few thousand rows in well under a second.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

# Which flights columns are recorded only after the outcome (the arrival).
FLIGHTS_LEAKS = ("arr_delay", "arr_time", "air_time")


def _hhmm(minutes: np.ndarray) -> np.ndarray:
    """Minutes after midnight (any integer, wrapped to one day) as hhmm clock times."""
    m = np.mod(np.round(minutes).astype(np.int64), 24 * 60)
    return (m // 60) * 100 + m % 60


def flights(n: int = 6000, seed: int = 0, with_delay: bool = True) -> pd.DataFrame:
    """One row per flight; target `status` is 'late' when the arrival delay exceeds 15
    minutes (about a third of flights), else 'on_time'. Times are hhmm integers
    (e.g. 1457 = 14:57), durations minutes, distances miles."""
    rng = np.random.default_rng(seed)
    dests = np.array([f"D{i:02d}" for i in range(40)])
    dest_distance = rng.integers(150, 2600, size=len(dests))
    carriers = np.array(["AA", "B6", "DL", "EV", "MQ", "UA", "US", "WN", "9E", "VX"])
    carrier_delay = rng.normal(0, 6, size=len(carriers))
    tails = np.array([f"N{i:04d}{c}" for i, c in enumerate(rng.choice(list("ABCJ"), 4000))])

    d = rng.integers(0, len(dests), size=n)
    c = rng.integers(0, len(carriers), size=n)
    distance = dest_distance[d]
    sched_dep = rng.integers(5 * 60, 23 * 60, size=n)
    sched_air = distance / 8.0 + 20.0
    sched_arr = sched_dep + sched_air + 15.0  # 15 minutes of taxiing in the schedule
    # Departure delays: mostly small, a heavy tail; later in the day and by carrier.
    late_departure = rng.random(n) < 0.35
    dep_delay = (
        np.where(late_departure, rng.exponential(30, size=n), rng.normal(-3, 4, size=n))
        + carrier_delay[c]
        + (sched_dep - 14 * 60) / 60.0
    )
    dep_delay = np.round(dep_delay)
    # Time lost or gained en route is smaller than the departure delay but large next to
    # the taxiing noise, so the air time
    # (known only on arrival) together with the departure delay gives the arrival away.
    air_time = np.round(np.maximum(20, sched_air + rng.normal(0, 14, size=n)))
    arr_delay = dep_delay + (air_time - sched_air) + np.round(rng.normal(0, 2, size=n))
    out = pd.DataFrame(
        {
            "date": (
                pd.Timestamp("2023-01-01") + pd.to_timedelta(rng.integers(0, 365, n), "D")
            ).strftime("%Y-%m-%d"),
            "sched_dep_time": _hhmm(sched_dep),
            "dep_time": _hhmm(sched_dep + dep_delay),
            "sched_arr_time": _hhmm(sched_arr),
            "arr_time": _hhmm(sched_arr + arr_delay),
            "air_time": air_time,
            "distance": distance.astype(float),
            "carrier": carriers[c].astype(object),
            "tailnum": tails[rng.integers(0, len(tails), size=n)].astype(object),
            "origin": rng.choice(["EWR", "JFK", "LGA"], size=n).astype(object),
            "dest": dests[d].astype(object),
        }
    )
    if with_delay:
        out["arr_delay"] = arr_delay
    out["status"] = np.where(arr_delay > 15, "late", "on_time").astype(object)
    return out


def identical_profiles(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """Distinct customers (`customer_id` unique) with a few coded attributes (4 x 3 x 3 x 2
    x 3 = 216 profiles), so about half the rows share their whole coded profile, and
    often the label, with another customer. Target `churn` is 'yes' for about 30%."""
    rng = np.random.default_rng(seed)
    age_band = rng.choice(["18-29", "30-44", "45-59", "60+"], size=n, p=[0.3, 0.35, 0.25, 0.1])
    plan = rng.choice(["basic", "plus", "premium"], size=n, p=[0.6, 0.3, 0.1])
    region = rng.choice(["north", "south", "west"], size=n, p=[0.5, 0.3, 0.2])
    paperless = rng.choice([0, 1], size=n, p=[0.4, 0.6])
    tenure_band = rng.choice([1, 2, 3], size=n, p=[0.5, 0.3, 0.2])
    income_band = rng.choice(["A", "B", "C", "D", "E"], size=n)
    children = rng.choice([0, 1, 2, 3], size=n, p=[0.4, 0.3, 0.2, 0.1])
    contract = rng.choice(["monthly", "yearly", "two_year"], size=n)
    latent = (
        0.8 * (plan == "basic")
        + 0.5 * (age_band == "18-29")
        - 0.6 * (tenure_band - 1)
        + 0.3 * paperless
        + rng.logistic(size=n)
    )
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in rng.permutation(n)],
            "age_band": age_band.astype(object),
            "plan": plan.astype(object),
            "region": region.astype(object),
            "paperless": paperless,
            "tenure_band": tenure_band,
            "income_band": income_band.astype(object),
            "children": children,
            "contract": contract.astype(object),
            "churn": np.where(latent > np.quantile(latent, 0.7), "yes", "no").astype(object),
        }
    )
