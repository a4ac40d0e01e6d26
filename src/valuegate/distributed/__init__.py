"""Beyond one machine, on existing engines (issue 14 item 5; docs/scale.md, "Beyond one
machine"): xgboost fits with xgboost's Dask API and batch scoring runs partition by
partition on a Dask cluster, chosen by `resources.dask_scheduler` (null: this process;
`local:N`: a local cluster of N worker processes; `tcp://host:8786`: a running one).

What runs on Dask: the fit of an xgboost model on the training rows (`train.fit_on_dask`,
called by `training.fit_model` for every xgboost baseline, candidate and tuned refit) and
batch scoring of Parquet input (`score.score_parquet_on_dask`). What does not: the gate's
cross-fit (one fit per fold on at most `gate.cross_fit.max_rows` rows: cap it for a large
table), tuning trials (on `tune.sample_rows`), the other estimators and the value model's
statistics, which need arrays of one split's scores, not of its rows.

Needs the `distributed` extra (`pip install 'valuegate[distributed]'`): dask, distributed
and psycopg (for a shared Optuna study in PostgreSQL). Nothing here is imported unless a
scheduler is set.
"""

from __future__ import annotations

from valuegate.distributed.cluster import dask_client, require_dask, worker_count

__all__ = ["dask_client", "require_dask", "worker_count"]
