"""One definition of the pipeline: the steps (pure: config and data in, records and
fitted models out, no file I/O; one module each, re-exported by `steps`) and `run`, which
chains them in memory. The DVC stages (valuegate.stages) are thin adapters over the same
steps."""

from valuegate.pipeline import steps
from valuegate.pipeline.run import STEPS, PipelineResult, run

__all__ = ["STEPS", "PipelineResult", "run", "steps"]
