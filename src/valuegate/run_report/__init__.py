"""The business report of a run (`reports/run.html`): pure functions from the run's records
to one self-contained HTML page. The `report` stage (stages/report.py) reads the records."""

from valuegate.run_report.page import RunRecords, build_report

__all__ = ["RunRecords", "build_report"]
