"""Leaks in combination: columns that are harmless one at a time but give the target away
together, and the quick cross-validated model behind the honest estimate.

Two checks (see docs/assess.md):
- **time pairs**: clock times (hhmm integers), dates and time-named numbers come in pairs
  whose difference is often the outcome itself (actual minus scheduled arrival = the
  delay). The difference of each pair of the same kind is scored like one feature;
- **the quick model**: a histogram gradient boosting model on every feature (plus those
  pair differences, which trees cannot form from the raw columns), cross-validated with
  `valuegate.folds.make_folds` on the assessment's sample. When it reaches the block level,
  drop-column importance on its most important features names the culprit.

`QuickModel` also gives the honest estimate: the same cross-validated model on exactly the
features the models will be trained on. Pure: arrays and frames in, numbers out.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from valuegate.assess.inputs import FIT_THREADS, AssessData, model_matrix
from valuegate.folds import make_folds

CLOCK, DATE, NUMBER = "clock", "date", "number"
TIME_NAME = re.compile(r"(time|date|_at$|_ts$|timestamp|hour|when|day$)", re.IGNORECASE)
DATE_TEXT = re.compile(r"^\s*\d{1,4}[-/.]\d{1,2}([-/.]\d{1,4})?([ T]\d{1,2}:\d{2}.*)?\s*$")
MAX_TIME_COLUMNS = 30  # 435 pairs at most: each pair costs one binned-mean score
MINUTES_PER_DAY = 24 * 60
MIN_FALL = 0.005  # a drop-column fall smaller than this is noise of the folds, not a culprit
# Stand-ins of a leak (columns the leak's culprits made redundant, see leakage._stand_ins):
# their joint removal must lower the leak-free quick model by at least this (ROC AUC or R2)
# to count. Fold noise on the 3 drop-column folds is ~0.005; the stand-in pair of a lending
# table (balance + paid principal, which carry the interest rate) was worth ~0.08.
STAND_IN_FALL = 0.02


def time_kind(column: pd.Series) -> str | None:
    """'clock' (hhmm clock times: integers 0..2400 whose last two digits are minutes),
    'date' (datetimes, or text that parses as dates), 'number' (another number whose name
    says time, e.g. a timestamp or a duration), or None."""
    name = str(column.name)
    if ptypes.is_datetime64_any_dtype(column):
        return DATE
    if ptypes.is_bool_dtype(column):
        return None
    if ptypes.is_numeric_dtype(column):
        values = column.to_numpy(float)
        values = values[np.isfinite(values)]
        if (
            len(values) >= 20
            and np.all(values == np.round(values))
            and values.min() >= 0
            and values.max() <= 2400
            and np.all(np.mod(values, 100) < 60)
            and np.mean(values >= 100) > 0.5
            and len(np.unique(values)) >= 20
        ):
            return CLOCK
        return NUMBER if TIME_NAME.search(name) else None
    sample = column.dropna().astype(str).head(200)
    if len(sample) < 20 or sample.str.match(DATE_TEXT).mean() < 0.9:
        return None
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return DATE if parsed.notna().mean() >= 0.9 else None


def as_minutes(values: np.ndarray) -> np.ndarray:
    return np.floor(values / 100) * 60 + np.mod(values, 100)


def pair_difference(a: pd.Series, b: pd.Series, kind: str) -> np.ndarray:
    """a - b as floats (NaN where either is missing): clock times in minutes, wrapped to
    -12..+12 hours (a flight landing at 00:10 that was due at 23:50 is 20 minutes late);
    dates in days."""
    if kind == CLOCK:
        d = as_minutes(a.to_numpy(float)) - as_minutes(b.to_numpy(float))
        return np.mod(d + MINUTES_PER_DAY / 2, MINUTES_PER_DAY) - MINUTES_PER_DAY / 2
    if kind == DATE:
        ta = pd.to_datetime(a, errors="coerce", utc=True, format="mixed")
        tb = pd.to_datetime(b, errors="coerce", utc=True, format="mixed")
        return ((ta - tb).dt.total_seconds() / 86400.0).to_numpy(float)
    d = a.to_numpy(float) - b.to_numpy(float)
    d[~np.isfinite(d)] = np.nan
    return d


def time_pairs(frame: pd.DataFrame, columns: list[str]) -> list[tuple[str, str, str]]:
    """(a, b, kind) for each pair of time-like columns of the same kind."""
    kinds: dict[str, list[str]] = {}
    for column in columns:
        kind = time_kind(frame[column])
        if kind:
            kinds.setdefault(kind, []).append(column)
    return [
        (a, b, kind)
        for kind, names in kinds.items()
        for a, b in itertools.combinations(names[:MAX_TIME_COLUMNS], 2)
    ]


def score(y: np.ndarray, predicted: np.ndarray, task: str) -> float | None:
    """ROC AUC (binary) or R2 (regression) on the rows that have a prediction; None when
    it is undefined (one class, or a constant target)."""
    covered = ~np.isnan(predicted)
    y, predicted = y[covered], predicted[covered]
    if task == "binary":
        if len(np.unique(y)) < 2:
            return None
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(y, predicted))
    total = float(((y - y.mean()) ** 2).sum())
    return 1.0 - float(((y - predicted) ** 2).sum()) / total if total else None


@dataclass
class QuickModel:
    """The assessment's quick model on one sample of the training split: rows `positions`
    of train, target `y` (0/1 or float), folds from `make_folds` (forward-chaining for a time
    split, grouped when the id repeats). Results are cached per feature set."""

    data: AssessData
    positions: np.ndarray
    y: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]]
    seed: int
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, data: AssessData, positions: np.ndarray, n_folds: int, seed: int):
        y = data.y("train")[positions].astype(float)
        groups = None
        if data.id_column and data.id_column in data.splits["train"]:
            groups = data.splits["train"][data.id_column].to_numpy()[positions]
        n_folds = n_folds if data.task != "binary" else max(2, min(n_folds, int(_minority(y))))
        folds = make_folds(
            y,
            data.task,
            n_folds,
            seed,
            time_ordered=data.split_method == "time",
            groups=groups,
        )
        return cls(data, positions, y, folds, seed)

    @property
    def fold_kind(self) -> str:
        from valuegate.folds import fold_kind

        groups = None
        if self.data.id_column and self.data.id_column in self.data.splits["train"]:
            groups = self.data.splits["train"][self.data.id_column].to_numpy()[self.positions]
        return fold_kind(self.data.split_method == "time", groups)

    def matrix(self, features: list[str], pairs: list[tuple[str, str, str]]):
        """(matrix, categorical mask, column groups): one column per feature, then one per
        pair difference; `groups[f]` = the matrix columns that use feature f."""
        frame = self.data.splits["train"].iloc[self.positions]
        numeric = [c for c in self.data.numeric if c in features]
        categorical = [c for c in self.data.categorical if c in features]
        matrix, mask = model_matrix([frame], numeric, categorical)
        order = numeric + categorical
        groups = {c: [i] for i, c in enumerate(order)}
        if pairs:
            extra = np.column_stack([pair_difference(frame[a], frame[b], k) for a, b, k in pairs])
            for j, (a, b, _) in enumerate(pairs):
                groups[a].append(matrix.shape[1] + j)
                groups[b].append(matrix.shape[1] + j)
            matrix = np.hstack([matrix, extra])
            mask = np.r_[mask, np.zeros(len(pairs), dtype=bool)]
        return matrix, mask, groups

    def _model(self, mask: np.ndarray):
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        kind = (
            HistGradientBoostingClassifier
            if self.data.task == "binary"
            else (HistGradientBoostingRegressor)
        )
        return kind(
            # Quick, not tuned: 50 trees at a high learning rate reach most of what a
            # tuned model does on these checks at half the cost of 100 (measured here).
            max_iter=50,
            learning_rate=0.2,
            max_leaf_nodes=31,
            min_samples_leaf=20,
            categorical_features=mask if mask.any() else None,
            early_stopping=False,
            random_state=self.seed,
        )

    def _predict(self, model, matrix: np.ndarray) -> np.ndarray:
        if self.data.task == "binary":
            return model.predict_proba(matrix)[:, 1]
        return model.predict(matrix)

    def out_of_fold(self, matrix: np.ndarray, mask: np.ndarray, folds=None) -> np.ndarray:
        """Each covered row predicted by a model fitted on its fold's training rows (NaN
        for rows no fold tests: the first block of forward-chaining folds)."""
        from threadpoolctl import threadpool_limits

        predicted = np.full(len(self.y), np.nan)
        if matrix.shape[1] == 0:
            return predicted
        for fit_rows, test_rows in folds if folds is not None else self.folds:
            if self.data.task == "binary" and len(np.unique(self.y[fit_rows])) < 2:
                continue
            model = self._model(mask)
            with threadpool_limits(FIT_THREADS, user_api="openmp"):
                model.fit(matrix[fit_rows], self.y[fit_rows])
                predicted[test_rows] = self._predict(model, matrix[test_rows])
        return predicted

    def evaluate(self, features: list[str], pairs=()) -> float | None:
        """Cross-validated score of the quick model on `features` (+ pair differences)."""
        return self._score(features, list(pairs), last3=False)

    def score_without(
        self, features: list[str], pairs: list[tuple[str, str, str]], drop
    ) -> float | None:
        """Score of the quick model on `features` without the columns `drop` (and the pair
        differences that use them), on the drop-column folds (the last 3): comparable with
        `drop_column`'s figures. Cached."""
        drop = set(drop)
        kept = [f for f in features if f not in drop]
        kept_pairs = [p for p in pairs if p[0] not in drop and p[1] not in drop]
        return self._score(kept, kept_pairs, last3=True)

    def _score(
        self, features: list[str], pairs: list[tuple[str, str, str]], last3: bool
    ) -> float | None:
        """Out-of-fold score on every fold or on the last 3, cached per feature set: the
        leak rounds, drop-column importance and the stand-in search ask for the same sets
        again (with 3 folds or fewer, both fold sets are the same)."""
        folds = self.folds[-3:] if last3 else self.folds
        key = (len(folds), tuple(sorted(features)), tuple(pairs))
        if key not in self._cache:
            matrix, mask, _ = self.matrix(features, pairs)
            predicted = self.out_of_fold(matrix, mask, folds)
            self._cache[key] = score(self.y, predicted, self.data.task)
        return self._cache[key]

    def drop_column(
        self, features: list[str], pairs: list[tuple[str, str, str]], candidates: int
    ) -> tuple[float | None, dict[str, float | None]]:
        """(score with every feature, {feature: score without it}) on the same folds (at
        most 3 of them, to bound the cost), for the `candidates` most important features
        (`important`), most important first."""
        full = self.score_without(features, pairs, [])
        top = self.important(features, pairs, candidates)
        return full, {feature: self.score_without(features, pairs, [feature]) for feature in top}

    def important(
        self, features: list[str], pairs: list[tuple[str, str, str]], candidates: int
    ) -> list[str]:
        """The `candidates` features whose permutation most lowers the score of a model
        fitted on the first drop-column fold, most important first (one fit)."""
        from threadpoolctl import threadpool_limits

        matrix, mask, groups = self.matrix(features, pairs)
        fit_rows, test_rows = self.folds[-3:][0]
        model = self._model(mask)
        with threadpool_limits(FIT_THREADS, user_api="openmp"):
            model.fit(matrix[fit_rows], self.y[fit_rows])
            part = matrix[test_rows]
            base = score(self.y[test_rows], self._predict(model, part), self.data.task) or 0.0
            rng = np.random.default_rng(self.seed)
            importance = {}
            for feature, columns in groups.items():
                shuffled = part.copy()
                shuffled[:, columns] = shuffled[rng.permutation(len(part))][:, columns]
                after = score(self.y[test_rows], self._predict(model, shuffled), self.data.task)
                importance[feature] = base - (after if after is not None else 0.0)
        return sorted(importance, key=lambda f: -importance[f])[:candidates]


def _minority(y: np.ndarray) -> int:
    counts = np.bincount(y.astype(int), minlength=2)
    return int(counts.min())
