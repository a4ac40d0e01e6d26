"""Expected errors: each carries a message written for a person, not a traceback."""


class ValuegateError(Exception):
    """Base class for errors a user can fix; printed without a traceback."""

    exit_code = 2
    kind = "error"

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self.kind


class ConfigError(ValuegateError):
    """The composed configuration is invalid (names the key path, value and allowed ones)."""

    kind = "config error"


class DataError(ValuegateError):
    """The data does not match the data config (names the column and rows)."""

    kind = "data error"


class StaleParamsError(ValuegateError):
    """params.yaml was composed from a different conf/ than the one on disk."""

    kind = "stale params"


class ArtifactError(ValuegateError):
    """An artifact is missing, altered or holds types outside the trusted list."""

    kind = "artifact error"


class GateRefusedError(ValuegateError):
    """No candidate passed the gate and `gate.strict` is true (or tuning was refused)."""

    kind = "gate refused"
    exit_code = 3


class BudgetError(ValuegateError):
    """A stage would exceed the machine budget (`resources.max_memory_gb`)."""

    kind = "over budget"
