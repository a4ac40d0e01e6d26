"""Typed schemas of the composed configuration (what `params.yaml` must hold).

Every model forbids unknown keys, so a misspelt key is reported with its path and the
nearest valid key (see `messages.py`). Cross-field rules (the objective must match the
task, fractions must sum to one, ...) raise `ValueError` with a sentence that names the
keys involved.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ESTIMATORS = ("dummy", "linear", "xgboost", "random_forest", "hist_gradient_boosting")
"""Allow-listed estimator names; `models.py` maps each to a scikit-learn-API class."""

THRESHOLD_METRICS = (
    "precision",
    "recall",
    "specificity",
    "false_positive_rate",
    "f1",
    "accuracy",
    "flag_rate",
)
"""Binary metrics that depend on the decision threshold (usable in `constraints`)."""

MODEL_METRICS = {
    "binary": (*THRESHOLD_METRICS, "roc_auc", "pr_auc", "log_loss", "brier"),
    "regression": ("mae", "rmse", "r2"),
}
"""Metrics usable in `good_enough.metrics`, per task."""

_INF = float("inf")
METRIC_RANGES = {
    **{m: (0.0, 1.0) for m in THRESHOLD_METRICS},
    "roc_auc": (0.0, 1.0),
    "pr_auc": (0.0, 1.0),
    "brier": (0.0, 1.0),
    "log_loss": (0.0, _INF),
    "mae": (0.0, _INF),
    "rmse": (0.0, _INF),
    "r2": (-_INF, 1.0),
}
"""The values each metric can take: a constraint outside them can never be met."""

_CONSTRAINT = re.compile(r"^\s*([a-z_0-9]+)\s*(>=|<=)\s*(-?[0-9]*\.?[0-9]+(?:e-?[0-9]+)?)\s*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Constraint(Strict):
    """`metric op bound`, parsed from a string such as `"precision >= 0.6"`."""

    metric: str
    op: Literal[">=", "<="]
    bound: float

    def holds(self, value: float) -> bool:
        if value != value:  # NaN: the metric is undefined at this operating point
            return False
        return value >= self.bound if self.op == ">=" else value <= self.bound

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


def parse_constraint(text: str, allowed: tuple[str, ...]) -> Constraint:
    match = _CONSTRAINT.match(str(text))
    if not match:
        raise ValueError(
            f"{text!r} is not a constraint; write it as '<metric> >= <number>' or "
            f"'<metric> <= <number>', e.g. 'precision >= 0.6'"
        )
    metric, op, bound = match.groups()
    if metric in allowed and metric in METRIC_RANGES:
        low, high = METRIC_RANGES[metric]
        value = float(bound)
        if (op == ">=" and value > high) or (op == "<=" and value < low):
            if low == -_INF:
                span = f"at most {high:g}"
            elif high == _INF:
                span = f"at least {low:g}"
            else:
                span = f"between {low:g} and {high:g}"
            raise ValueError(f"{text!r} can never be met: {metric} is always {span}")
    if metric not in allowed:
        from valuegate.config.messages import nearest

        hint = nearest(metric, allowed)
        raise ValueError(
            f"unknown metric {metric!r} in constraint {text!r}"
            + (f" (did you mean {hint!r}?)" if hint else "")
            + f"; allowed: {', '.join(allowed)}"
        )
    return Constraint(metric=metric, op=op, bound=float(bound))


# --------------------------------------------------------------------------- data


class Features(Strict):
    """Feature lists; `null` means inferred from dtypes (numbers: numeric, rest: categorical)."""

    numeric: list[str] | None = None
    categorical: list[str] | None = None
    drop: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _each_column_once(self) -> Features:
        lists = {"numeric": self.numeric or [], "categorical": self.categorical or []}
        lists["drop"] = self.drop
        for key, columns in lists.items():
            repeated = sorted({c for c in columns if columns.count(c) > 1})
            if repeated:
                raise ValueError(f"{key} lists {repeated} more than once; name each column once")
        pairs = (("numeric", "categorical"), ("numeric", "drop"), ("categorical", "drop"))
        for first, second in pairs:
            both = sorted(set(lists[first]) & set(lists[second]))
            if both:
                raise ValueError(
                    f"{both} listed under both {first} and {second}; a column is one of "
                    "numeric, categorical or drop"
                )
        return self


class Split(Strict):
    """How rows are split; `time` sorts by `data.time_column` (train oldest, test newest)."""

    method: Literal["stratified", "random", "time"] = "stratified"
    train: float = Field(0.6, gt=0, lt=1)
    valid: float = Field(0.2, gt=0, lt=1)
    test: float = Field(0.2, gt=0, lt=1)

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> Split:
        total = self.train + self.valid + self.test
        if abs(total - 1.0) > 1e-6:
            raise ValueError(
                f"train + valid + test must sum to 1, got {self.train:g} + {self.valid:g} + "
                f"{self.test:g} = {total:g}"
            )
        return self


class DataConfig(Strict):
    name: str
    path: str
    format: Literal["auto", "csv", "parquet"] = "auto"
    task: Literal["binary", "regression"]
    target: str
    positive_label: str | int | bool | None = None
    id_column: str | None = None
    time_column: str | None = None
    amount_column: str | None = None
    features: Features = Field(default_factory=Features)
    split: Split = Field(default_factory=Split)
    sample_rows: int | None = Field(
        None,
        ge=100,
        description="keep a seeded sample of this many rows before the split (stratified "
        "for binary tasks); null = every row",
    )

    @model_validator(mode="after")
    def _binary_needs_positive_label(self) -> DataConfig:
        if self.task == "binary" and self.positive_label is None:
            raise ValueError(
                "data.positive_label is required when data.task is 'binary': name the target "
                "value that marks the case to act on (e.g. 'bad' for a defaulted loan)"
            )
        if self.split.method == "time" and not self.time_column:
            raise ValueError("data.split.method 'time' needs data.time_column")
        if self.split.method == "stratified" and self.task == "regression":
            raise ValueError(
                "data.split.method 'stratified' needs a binary task; use 'random' or 'time' "
                "for regression"
            )
        return self


# ---------------------------------------------------------------------- objective


class OutcomeValue(Strict):
    """Value of one outcome for one case: `value + per_amount * amount` (currency)."""

    value: float = 0.0
    per_amount: float = 0.0


class BinaryOutcomes(Strict):
    """Value of each confusion-matrix cell; the positive class is the one acted on."""

    tp: OutcomeValue
    fp: OutcomeValue
    fn: OutcomeValue
    tn: OutcomeValue

    @field_validator("tp", "fp", "fn", "tn", mode="before")
    @classmethod
    def _number_is_fixed_value(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"value": value}
        return value


class RegressionCost(Strict):
    """Cost per unit of error beyond `tolerance`, different above and below the truth."""

    under: float = Field(ge=0, description="currency per unit predicted too low")
    over: float = Field(ge=0, description="currency per unit predicted too high")
    tolerance: float = Field(0.0, ge=0, description="errors this small cost nothing")

    @model_validator(mode="after")
    def _some_cost(self) -> RegressionCost:
        if self.under == 0 and self.over == 0:
            raise ValueError("objective.cost.under and objective.cost.over cannot both be 0")
        return self


class GoodEnough(Strict):
    """The target a model must reach to be worth deploying."""

    value_per_period: float | None = None
    metrics: list[str] = Field(default_factory=list)


class Objective(Strict):
    name: str
    description: str = ""
    decision: str = Field(description="what a positive prediction makes the business do")
    currency: str = "EUR"
    period: str = "month"
    volume: float = Field(gt=0, description="cases decided per period")
    outcomes: BinaryOutcomes | None = None
    cost: RegressionCost | None = None
    constraints: list[str] = Field(default_factory=list)
    good_enough: GoodEnough = Field(default_factory=GoodEnough)
    min_uplift: float = Field(0.0, ge=0, description="currency per period")


# ------------------------------------------------------------------------ models


class SearchDim(Strict):
    """One hyperparameter's search range for tuning."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> SearchDim:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical search dimension needs a non-empty 'choices'")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} search dimension needs 'low' and 'high'")
            if self.low >= self.high:
                raise ValueError(f"'low' ({self.low:g}) must be below 'high' ({self.high:g})")
            if self.log and self.low <= 0:
                raise ValueError("a log-scaled search dimension needs 'low' > 0")
        return self


class CategoricalConfig(Strict):
    """How one model encodes its categorical columns (see docs/scale.md).

    `auto` is the estimator's own default: one-hot for linear, xgboost and random_forest
    (sparse for linear), native categorical splits for hist_gradient_boosting. Levels seen
    in fewer than `min_frequency` training rows, and all but the `max_categories - 1` most
    frequent levels, share one "infrequent" column, so a 4,000-level column costs at most
    `max_categories` columns."""

    encoding: Literal["auto", "onehot", "target", "native"] = "auto"
    min_frequency: int | None = Field(
        5, ge=1, description="training rows a level needs to keep its own column; null = 1"
    )
    max_categories: int | None = Field(
        64, ge=2, description="columns per categorical at most (incl. 'infrequent'); null = all"
    )


class EarlyStoppingConfig(Strict):
    """Early stopping of a boosted candidate on an inner validation part of the rows it is
    fitted on, never the gate's validation rows (valuegate.estimators; docs/tuning.md)."""

    rounds: int = Field(
        50, ge=1, le=10_000, description="rounds without improvement before stopping"
    )
    validation_fraction: float = Field(
        0.15, ge=0.05, le=0.5, description="share of the fitted rows held out to stop on"
    )
    refit: bool = Field(
        False, description="refit on all the rows with the rounds found (else keep the model)"
    )


EARLY_STOPPING_ESTIMATORS = ("xgboost", "hist_gradient_boosting")


class ModelSpec(Strict):
    """One estimator from the allow-listed registry, its parameters and search space."""

    estimator: Literal[ESTIMATORS]  # type: ignore[valid-type]
    params: dict[str, Any] = Field(default_factory=dict)
    search_space: dict[str, SearchDim] = Field(default_factory=dict)
    categorical: CategoricalConfig = Field(default_factory=CategoricalConfig)
    early_stopping: EarlyStoppingConfig | None = None  # None: the estimator's own rounds

    @model_validator(mode="after")
    def _early_stopping_fits_estimator(self) -> ModelSpec:
        if self.early_stopping is not None and self.estimator not in EARLY_STOPPING_ESTIMATORS:
            raise ValueError(
                f"early_stopping: estimator {self.estimator!r} has no boosting rounds to stop; "
                f"it is available for {', '.join(EARLY_STOPPING_ESTIMATORS)}. Remove the block "
                "(or set it to null)"
            )
        if "early_stopping_rounds" in self.params:
            raise ValueError(
                "params.early_stopping_rounds: set early_stopping.rounds instead (valuegate "
                "carves the inner validation rows it stops on; xgboost alone has none)"
            )
        return self

    @model_validator(mode="after")
    def _encoding_fits_estimator(self) -> ModelSpec:
        allowed = CATEGORICAL_ENCODINGS[self.estimator]
        if self.categorical.encoding not in allowed:
            raise ValueError(
                f"categorical.encoding: {self.categorical.encoding!r} is not available for "
                f"estimator {self.estimator!r}. Allowed: {', '.join(allowed)}"
            )
        return self


CATEGORICAL_ENCODINGS: dict[str, tuple[str, ...]] = {
    "dummy": ("auto",),
    "linear": ("auto", "onehot", "target"),
    "random_forest": ("auto", "onehot", "target"),
    "xgboost": ("auto", "onehot", "target", "native"),
    "hist_gradient_boosting": ("auto", "onehot", "target", "native"),
}
"""Categorical encodings each estimator can take (`native`: the estimator's own
categorical splits)."""


class CrossFitConfig(Strict):
    """Out-of-fold scores on the training split, where every model's operating point (and,
    for binary tasks, its calibration) is chosen: never on the rows that then value it."""

    folds: int = Field(5, ge=2, le=20)
    max_rows: int | None = Field(
        50_000, ge=200, description="cross-fit on at most this many training rows; null = all"
    )
    choice_resamples: int = Field(
        200, ge=20, le=10_000, description="bootstrap of the operating-point choice"
    )


class GateConfig(Strict):
    """The metric gate: may a candidate be tuned? (see docs/gate.md)"""

    confidence: float = Field(0.95, gt=0.5, lt=1)
    n_resamples: int = Field(1000, ge=100, le=100_000)
    strict: bool = False
    cross_fit: CrossFitConfig = Field(default_factory=CrossFitConfig)
    calibration: Literal["isotonic", "sigmoid", "none"] = "isotonic"
    final_model: Literal["gated", "most_valuable"] = "gated"


class TuneConfig(Strict):
    """Gated Optuna tuning on business value (see docs/tuning.md)."""

    candidates: Literal["best", "passed"] = "best"
    n_trials: int = Field(40, ge=1)
    timeout: float | None = Field(1800, gt=0, description="seconds per run; null = no cap")
    trial_timeout: float | None = Field(
        300, gt=0, description="seconds per trial; a trial past it is stopped; null = no cap"
    )
    sample_rows: int | None = Field(
        50_000,
        ge=1000,
        description="trials use a seeded sample of this many training rows (stratified for "
        "binary tasks) when the training split is larger; the best params are refit on all "
        "rows; null = all rows",
    )
    min_improvement: float = Field(0.0, ge=0, description="currency per period")
    patience: int = Field(15, ge=1)
    n_folds: int = Field(5, ge=2, le=20)
    large_table_rows: int | None = Field(
        20_000, ge=1000, description="above this many training rows use large_table_n_folds"
    )
    large_table_n_folds: int = Field(3, ge=2, le=20, description="folds on a large table")
    n_jobs: int = Field(1, ge=1, le=64, description="worker processes")
    pruning: bool = True
    pruner: Literal["median", "successive_halving"] = "median"
    storage: str | None = None


class ServeConfig(Strict):
    """The HTTP prediction service (`valuegate serve`)."""

    max_request_bytes: int = Field(1_048_576, ge=1024, description="larger bodies get 413")
    max_records: int = Field(1000, ge=1, description="records per POST /predict")
    token_env: str | None = Field(
        "VALUEGATE_TOKEN", description="env var holding the bearer token; unset = no auth"
    )
    log_path: str = "logs/predictions.sqlite"
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, le=64)


class BatchConfig(Strict):
    """Batch scoring (`valuegate predict` and the `score` stage)."""

    chunk_size: int = Field(100_000, ge=1)
    on_error: Literal["skip", "fail"] = "fail"
    input: str | None = None


class TooGoodConfig(Strict):
    """Bounds above which a test metric is not believed (a leak, not a model): the deploy
    gate blocks the model. null switches a bound off."""

    roc_auc: float | None = Field(0.99, gt=0.5, le=1, description="test ROC AUC ceiling")
    r2: float | None = Field(0.99, gt=0, le=1, description="test R2 ceiling")
    margin_over_honest: float | None = Field(
        0.1, gt=0, le=1, description="most the test metric may exceed the honest estimate by"
    )


class SeedStabilityConfig(Strict):
    """deploy.seed_stability: how much value moves with the seed alone (docs/retrain.md)."""

    seeds: int = Field(
        3, ge=0, le=20, description="other seeds the final model is refitted with; 0 = off"
    )


class DeployConfig(Strict):
    """The deploy gate, the registry and serving."""

    registry: str = "models/registry"
    confidence: float = Field(0.95, gt=0.5, lt=1)
    n_resamples: int = Field(1000, ge=100, le=100_000)
    min_uplift: float = Field(0.0, ge=0, description="currency per period over the champion")
    min_fresh_rows: int = Field(
        100, ge=1, description="test rows neither model saw, needed to compare with the champion"
    )
    min_fresh_per_class: int = Field(
        10,
        ge=1,
        description="binary tasks: fresh rows of each class needed to compare with the champion",
    )
    too_good: TooGoodConfig = Field(default_factory=TooGoodConfig)
    seed_stability: SeedStabilityConfig = Field(default_factory=SeedStabilityConfig)
    promote: bool = True
    strict: bool = False
    serve: ServeConfig = Field(default_factory=ServeConfig)
    batch: BatchConfig = Field(default_factory=BatchConfig)

    @field_validator("registry")
    @classmethod
    def _inside_the_dvc_output(cls, value: str) -> str:
        parts = PurePosixPath(value).parts
        if parts[:2] != ("models", "registry") or ".." in parts:
            raise ValueError(
                f"{value!r} must be models/registry or a directory inside it (e.g. "
                "models/registry/diabetes): only that path is the package stage's persistent "
                "DVC output"
            )
        return value


# ------------------------------------------------------------------------ assess


class AcceptEntry(Strict):
    """A finding the user has looked at and acknowledges, so it no longer blocks."""

    id: str = Field(description="a finding id, e.g. 'target_leakage:checking_status'")
    reason: str = Field(min_length=3, description="why the finding is fine here")

    @field_validator("id")
    @classmethod
    def _known_finding(cls, value: str) -> str:
        from valuegate.assess.findings import check_finding_id

        return check_finding_id(value)


class MissingThresholds(Strict):
    column_warn: float = Field(0.3, ge=0, le=1, description="share of a column's rows")
    row_warn: float = Field(0.05, ge=0, le=1, description="share of rows missing half")


class QualityThresholds(Strict):
    near_constant: float = Field(0.99, gt=0.5, le=1, description="share of the top value")
    id_like: float = Field(0.95, gt=0.5, le=1, description="distinct values per row")
    max_categories: int = Field(100, ge=2, description="levels of a categorical")


class DuplicateThresholds(Strict):
    within_split_warn: float = Field(0.01, ge=0, le=1, description="share of a split")
    cross_split_block: float = Field(
        0.01, ge=0, le=1, description="share of valid+test beyond what chance explains"
    )
    chance_level: float = Field(
        0.001, gt=0, lt=0.5, description="one-sided binomial test level for 'beyond chance'"
    )


class LeakageThresholds(Strict):
    auc_warn: float = Field(0.85, gt=0.5, le=1)
    auc_block: float = Field(0.95, gt=0.5, le=1)
    r2_warn: float = Field(0.7, gt=0, le=1)
    r2_block: float = Field(0.9, gt=0, le=1)
    post_outcome_columns: list[str] = Field(default_factory=list)
    model_check: bool = Field(True, description="quick model on every feature at once")
    time_pairs: bool = Field(True, description="differences of clock/date column pairs")
    pair_min_gain: float = Field(
        0.05, ge=0, le=1, description="a pair beats its better column alone by this much"
    )
    culprit_candidates: int = Field(
        5, ge=1, le=50, description="most important features given a drop-column check"
    )
    max_rounds: int = Field(5, ge=1, le=20, description="leak rounds: set aside, re-check")

    @field_validator("post_outcome_columns")
    @classmethod
    def _each_column_once(cls, value: list[str]) -> list[str]:
        repeated = sorted({c for c in value if value.count(c) > 1})
        if repeated:
            raise ValueError(f"lists {repeated} more than once; name each column once")
        return value

    @model_validator(mode="after")
    def _warn_below_block(self) -> LeakageThresholds:
        for metric in ("auc", "r2"):
            warn, block = getattr(self, f"{metric}_warn"), getattr(self, f"{metric}_block")
            if warn > block:
                raise ValueError(
                    f"{metric}_warn ({warn:g}) must not exceed {metric}_block ({block:g})"
                )
        return self


class LabelNoiseThresholds(Strict):
    warn_share: float = Field(0.25, gt=0, le=1, description="share of sampled rows flagged")


class BalanceThresholds(Strict):
    minority_warn: float = Field(0.1, gt=0, le=0.5)
    min_positives_warn: int = Field(50, ge=1)
    min_positives_block: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _block_below_warn(self) -> BalanceThresholds:
        if self.min_positives_block > self.min_positives_warn:
            raise ValueError(
                f"min_positives_block ({self.min_positives_block}) must not exceed "
                f"min_positives_warn ({self.min_positives_warn})"
            )
        return self


class ShiftThresholds(Strict):
    alpha: float = Field(0.01, gt=0, lt=1, description="per-feature test level")
    effect_warn: float = Field(0.1, gt=0, le=1, description="KS statistic or Cramér's V")
    adversarial_auc_warn: float = Field(0.6, gt=0.5, le=1)


class TimelineThresholds(Strict):
    gap_factor: float = Field(20.0, gt=1, description="largest gap / median gap")


class Remedies(Strict):
    """Opt-in changes to the prepared data; each is recorded in the assessment."""

    drop_leaky_columns: bool = False
    drop_id_like_columns: bool = False
    drop_duplicates: bool = False
    drop_noisy_labels: bool = False


class AssessConfig(Strict):
    """The data-centric assessment between prepare and the models (see docs/assess.md)."""

    block_on: list[Literal["warn", "block"]] = Field(default_factory=lambda: ["block"])
    accept: list[AcceptEntry] = Field(default_factory=list)
    sample_rows: int = Field(50_000, ge=1000, description="rows for sampled statistics")
    n_folds: int = Field(5, ge=2, le=10)
    missing: MissingThresholds = Field(default_factory=MissingThresholds)
    quality: QualityThresholds = Field(default_factory=QualityThresholds)
    duplicates: DuplicateThresholds = Field(default_factory=DuplicateThresholds)
    leakage: LeakageThresholds = Field(default_factory=LeakageThresholds)
    label_noise: LabelNoiseThresholds = Field(default_factory=LabelNoiseThresholds)
    balance: BalanceThresholds = Field(default_factory=BalanceThresholds)
    shift: ShiftThresholds = Field(default_factory=ShiftThresholds)
    timeline: TimelineThresholds = Field(default_factory=TimelineThresholds)
    remedies: Remedies = Field(default_factory=Remedies)


# ------------------------------------------------------------------------ monitor

MONITOR_ALERTS = ("drift", "schema", "value", "rollback")
"""Alert kinds `monitor.fail_on` may list (docs/monitoring.md)."""


class MonitorWindow(Strict):
    """How production rows are cut into windows."""

    by: Literal["time", "count", "all"] = "count"
    size: int = Field(10_000, ge=1, description="rows per window when by is count")
    time_column: str | None = Field(
        None, description="null: data.time_column (ts for the prediction log)"
    )
    every: str | None = Field(
        None, description="a pandas frequency (D, W, MS, QS, YS) for a date column"
    )
    start: float | str | None = Field(None, description="rows before this time are left out")


class MonitorAlerts(Strict):
    """When a window raises an alert (statistics and money)."""

    alpha: float = Field(
        0.05,
        gt=0,
        lt=0.5,
        description="family-wise error rate of a window's drift tests (Holm)",
    )
    min_distance: float = Field(
        0.05, ge=0, le=1, description="Jensen-Shannon distance a drift must reach to alert"
    )
    value_drop: float = Field(
        0.0, ge=0, description="currency per period the model may surely lose before an alert"
    )
    new_category_share: float = Field(
        0.01, ge=0, le=1, description="share of a window's rows in unseen categories"
    )


class MonitorConfig(Strict):
    """Post-production monitoring (`valuegate monitor`, the `monitor` stage)."""

    input: str | None = Field(
        None,
        description="production rows (CSV/Parquet) or the prediction log (.sqlite); "
        "null: deploy.batch.input, else data.path",
    )
    labels: str | None = Field(None, description="labels arriving later (CSV/Parquet), by id")
    id_column: str | None = Field(
        None, description="joins labels; null: data.id_column (request_id for the log)"
    )
    model: str = Field("champion", description="the registry version monitored")
    confidence: float = Field(0.95, gt=0.5, lt=1, description="of every value interval")
    window: MonitorWindow = Field(default_factory=MonitorWindow)
    alerts: MonitorAlerts = Field(default_factory=MonitorAlerts)
    fail_on: list[Literal["drift", "schema", "value", "rollback"]] = Field(
        default_factory=list, description="alert kinds that make the command exit non-zero"
    )

    @field_validator("model")
    @classmethod
    def _a_version(cls, value: str) -> str:
        if value != "champion" and not re.fullmatch(r"v[0-9]+", value):
            raise ValueError(
                f"{value!r} is not a registry version: give 'champion' or a version such as 'v2'"
            )
        return value


class ResourcesConfig(Strict):
    """The machine budget every stage keeps to (see docs/scale.md)."""

    threads: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="threads for every library; null = the cores this process may use",
    )
    max_memory_gb: float = Field(
        4.0, gt=0, description="a stage's estimated peak above this stops it before it starts"
    )
    # Beyond one machine (valuegate.distributed, docs/scale.md "Beyond one machine"):
    # null runs in this process; `local:N` starts a local Dask cluster of N worker
    # processes for the run; `tcp://host:8786` (or tls://) uses a running cluster.
    dask_scheduler: str | None = Field(
        None, description="null | local:N | tcp://host:port: where xgboost fits and scoring run"
    )
    dask_sample_rows: int = Field(
        200_000,
        ge=1_000,
        description="rows (seeded sample) the preprocessing is fitted on before a Dask fit",
    )

    @field_validator("dask_scheduler")
    @classmethod
    def _scheduler_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        local = re.fullmatch(r"local:(\d+)", value)
        if local and 1 <= int(local.group(1)) <= 256:
            return value
        if re.fullmatch(r"(tcp|tls|inproc|ucx)://[^\s/]+(:\d+)?/?", value):
            return value
        raise ValueError(
            f"{value!r} is not a Dask scheduler. Allowed: null (this process), local:N "
            "(a local cluster of N worker processes, 1-256) or a scheduler address such as "
            "tcp://host:8786"
        )


class Meta(Strict):
    conf_fingerprint: str


# ------------------------------------------------------------------------ retrain


class RetrainWindow(Strict):
    """Which labelled periods a (re)training run may learn from (conf/retrain/default.yaml,
    docs/retrain.md); `until` null: no window, data.split as declared."""

    until: int | float | str | None = Field(
        None, description="the newest labelled period (a value of data.time_column)"
    )
    rule: Literal["expanding", "sliding", "weighted"] = "expanding"
    periods: int = Field(2, ge=1, description="sliding: the newest this many periods")
    decay: float = Field(0.5, gt=0, le=1, description="weighted: rows kept per period older")
    holdout: float = Field(
        0.5, gt=0, lt=1, description="share of the newest period's last rows held out as test"
    )

    @field_validator("until", mode="before")
    @classmethod
    def _a_scalar(cls, value: Any) -> Any:
        if isinstance(value, bool):  # YAML's yes/no: never a period
            raise ValueError(f"{value!r} is a YAML boolean, not a period of data.time_column")
        return value


class RetrainCost(Strict):
    """What one retrain costs, in objective.currency (the backtest charges it per retrain)."""

    compute: float = Field(0.0, ge=0, description="currency per retrain: machines")
    review: float = Field(0.0, ge=0, description="currency per retrain: people")


TRIGGER_KEYS = {
    "never": (),
    "every": ("n",),
    "value_at_risk": ("threshold",),
    "drift": ("min_features",),
}
"""The keys each retraining trigger takes (retrain/policy.py says what they mean)."""


class PolicyConfig(Strict):
    """One named retraining policy the backtest replays (retrain/policy.py)."""

    trigger: Literal["never", "every", "value_at_risk", "drift"]
    n: int | None = Field(None, ge=1, description="every: retrain every n periods")
    threshold: float | None = Field(
        None, ge=0, description="value_at_risk: currency per objective.period"
    )
    min_features: int | None = Field(
        None, ge=1, description="drift: drift alerts (features + score) needed"
    )

    @model_validator(mode="after")
    def _keys_of_its_trigger(self) -> PolicyConfig:
        takes = TRIGGER_KEYS[self.trigger]
        for key in ("n", "threshold", "min_features"):
            if getattr(self, key) is not None and key not in takes:
                owner = next(t for t, keys in TRIGGER_KEYS.items() if key in keys)
                raise ValueError(
                    f"{key!r} is for trigger {owner!r}; trigger {self.trigger!r} takes "
                    + (", ".join(takes) if takes else "no other key")
                )
        if self.trigger == "value_at_risk" and self.threshold is None:
            raise ValueError(
                "trigger 'value_at_risk' needs threshold (currency per objective.period: "
                "retrain when the value at risk is surely worse than -threshold)"
            )
        return self


class BacktestConfig(Strict):
    """`valuegate backtest`: retraining policies replayed period by period, in money."""

    periods: list[int | float | str] | None = Field(
        None, description="production periods replayed, in order; null: all but the first"
    )
    period_length: float = Field(
        1.0, gt=0, description="objective.periods in one replayed period (12: months a year)"
    )
    n_resamples: int = Field(1000, ge=100, le=100_000)
    confidence: float = Field(0.95, gt=0.5, lt=1)
    policies: dict[str, PolicyConfig] = Field(
        default_factory=lambda: {"never": PolicyConfig(trigger="never")}
    )

    @field_validator("policies")
    @classmethod
    def _named(cls, value: dict[str, PolicyConfig]) -> dict[str, PolicyConfig]:
        if not value:
            raise ValueError("name at least one policy, e.g. never: {trigger: never}")
        for name in value:
            if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", str(name)):
                raise ValueError(
                    f"policy name {name!r}: letters, digits and _ only, starting with a letter"
                )
        return value

    @field_validator("periods")
    @classmethod
    def _distinct(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None:
            if not value:
                raise ValueError("give at least one period, or null for all but the first")
            if len({str(v) for v in value}) != len(value):
                raise ValueError(f"periods {value} repeat a period")
        return value


class RetrainConfig(Strict):
    """Retraining on new labelled periods (docs/retrain.md)."""

    window: RetrainWindow = Field(default_factory=RetrainWindow)
    cost: RetrainCost = Field(default_factory=RetrainCost)
    backtest: BacktestConfig = Field(default_factory=BacktestConfig)


# ------------------------------------------------------------------------- root


class Config(Strict):
    """The whole composed configuration (the content of `params.yaml`)."""

    seed: int = 42
    meta: Meta
    data: DataConfig
    objective: Objective
    baseline: dict[str, ModelSpec]
    model: dict[str, ModelSpec]
    gate: GateConfig = Field(default_factory=GateConfig)
    tune: TuneConfig = Field(default_factory=TuneConfig)
    deploy: DeployConfig = Field(default_factory=DeployConfig)
    assess: AssessConfig = Field(default_factory=AssessConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    retrain: RetrainConfig = Field(default_factory=RetrainConfig)

    @model_validator(mode="after")
    def _retrain_window_needs_time(self) -> Config:
        if self.retrain.window.until is not None and not self.data.time_column:
            raise ValueError(
                f"retrain.window.until is {self.retrain.window.until!r} but data.time_column "
                "is null: a window is a range of periods of the time column; name it in "
                "data.time_column, or set retrain.window.until=null"
            )
        return self

    @model_validator(mode="after")
    def _cross_checks(self) -> Config:
        task = self.data.task
        if task == "binary" and self.objective.outcomes is None:
            raise ValueError(
                "objective.outcomes (value of tp, fp, fn, tn) is required when data.task is "
                "'binary'"
            )
        if task == "regression" and self.objective.cost is None:
            raise ValueError(
                "objective.cost (under, over, tolerance) is required when data.task is 'regression'"
            )
        if task == "binary" and self.objective.cost is not None:
            raise ValueError("objective.cost is for regression; data.task is 'binary'")
        if task == "regression" and self.objective.outcomes is not None:
            raise ValueError("objective.outcomes is for binary tasks; data.task is 'regression'")
        if task == "binary" and self.data.amount_column is None:
            outcomes = self.objective.outcomes
            for name in ("tp", "fp", "fn", "tn"):
                if getattr(outcomes, name).per_amount != 0:
                    raise ValueError(
                        f"objective.outcomes.{name}.per_amount is set but data.amount_column "
                        "is null: name the column that holds each case's amount"
                    )
        if task == "regression" and self.objective.constraints:
            allowed = MODEL_METRICS["regression"]
        else:
            allowed = THRESHOLD_METRICS
        for i, text in enumerate(self.objective.constraints):
            try:
                parse_constraint(text, allowed)
            except ValueError as exc:
                raise ValueError(f"objective.constraints[{i}]: {exc}") from None
        for i, text in enumerate(self.objective.good_enough.metrics):
            try:
                parse_constraint(text, MODEL_METRICS[task])
            except ValueError as exc:
                raise ValueError(f"objective.good_enough.metrics[{i}]: {exc}") from None
        estimators = [spec.estimator for spec in self.baseline.values()]
        if "dummy" not in estimators or not any(e != "dummy" for e in estimators):
            raise ValueError(
                "baseline must hold a 'dummy' model and at least one simple model (e.g. "
                f"estimator 'linear'); it holds {estimators or 'nothing'}"
            )
        if not self.model:
            raise ValueError("model must select at least one candidate, e.g. model=xgboost")
        clash = sorted(set(self.baseline) & set(self.model))
        if clash:
            raise ValueError(f"names used both as baseline and as candidate: {clash}")
        return self

    @property
    def constraints(self) -> list[Constraint]:
        allowed = (
            MODEL_METRICS["regression"] if self.data.task == "regression" else THRESHOLD_METRICS
        )
        return [parse_constraint(t, allowed) for t in self.objective.constraints]

    @property
    def good_enough_metrics(self) -> list[Constraint]:
        return [
            parse_constraint(t, MODEL_METRICS[self.data.task])
            for t in self.objective.good_enough.metrics
        ]

    def all_models(self) -> dict[str, tuple[str, ModelSpec]]:
        """name -> (role, spec) for baselines first, then candidates."""
        out: dict[str, tuple[str, ModelSpec]] = {}
        out.update({n: ("baseline", s) for n, s in self.baseline.items()})
        out.update({n: ("candidate", s) for n, s in self.model.items()})
        return out
