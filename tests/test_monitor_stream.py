"""Streamed windows (issue 15): the input is read window by window (Parquet by record
batches, CSV in chunks, the prediction log by time slices), so memory follows the largest
window; the record must not depend on how the input was cut into reads."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.test_monitor import configured, outputs, packaged  # noqa: F401 (a fixture)
from valuegate.bundle import load_bundle, validate_chunk
from valuegate.errors import DataError
from valuegate.monitor.windows import Source, Window, stream_windows
from valuegate.stages.monitor import monitor


def _same(a: dict, b: dict) -> None:
    """Two monitoring records equal but for where the input was (JSON round trip: NaN
    compares equal as text)."""
    a, b = dict(a), dict(b)
    a.pop("input"), b.pop("input")
    assert json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _rows(splits) -> pd.DataFrame:
    rows = pd.concat([splits["valid"], splits["test"]], ignore_index=True)
    rows = rows.sample(frac=1.0, random_state=2).reset_index(drop=True)
    rows["year"] = np.repeat([2016, 2017, 2018, 2019], len(rows) // 4)
    return rows


@pytest.mark.slow
@pytest.mark.parametrize("suffix", ["parquet", "csv"])
def test_streamed_windows_give_the_record_of_one_whole_read(packaged, tmp_path, suffix):  # noqa: F811
    cfg, splits, directory, _ = packaged
    bundle = load_bundle(directory)
    rows = _rows(splits)
    rows.loc[rows.year == 2018, "duration_in_month"] *= 30  # one window drifts
    path = tmp_path / f"production.{suffix}"
    rows.to_parquet(path) if suffix == "parquet" else rows.to_csv(path, index=False)
    for by in ({"by": "count", "size": 90}, {"by": "time", "time_column": "year"}):
        config = configured(cfg, input=str(path), window=by)
        whole = monitor(config, bundle=bundle, batch_rows=10**6, **outputs(tmp_path / "a"))
        streamed = monitor(config, bundle=bundle, batch_rows=37, **outputs(tmp_path / "b"))
        assert len(streamed["windows"]) == 4
        assert any(a["kind"] == "drift" for a in streamed["alerts"])
        _same(whole, streamed)


@pytest.mark.slow
def test_the_prediction_log_is_read_by_time_slices(packaged, tmp_path):  # noqa: F811
    from valuegate.serving.log import PredictionLog, log_span

    cfg, splits, directory, _ = packaged
    bundle = load_bundle(directory)
    rows = _rows(splits)
    clean = validate_chunk(rows, bundle.fields)[0]
    scores = bundle.score_frame(clean)
    records = clean[bundle.features].astype(object).where(clean.notna(), None)
    path = tmp_path / "predictions.sqlite"
    writer = PredictionLog(path, bundle.fields, bundle.task, segment_rows=64, background=False)
    for i, (record, score) in enumerate(zip(records.to_dict("records"), scores, strict=True)):
        writer.append(f"r{i}", "v1", [(record, float(score), bool(score >= 0.3), 0.0)])
    writer.close()
    span = log_span(path, "v1")
    assert span["rows"] == len(rows) and span["first"] <= span["last"]
    source = Source(path, from_log=True, model_version="v1", batch_rows=50)
    assert len(source._log_slices()) == -(-len(rows) // 50)
    assert sum(len(b) for b in source.batches()) == len(rows)
    config = configured(cfg, input=str(path), window={"by": "count", "size": 100})
    whole = monitor(config, bundle=bundle, batch_rows=10**6, **outputs(tmp_path / "a"))
    streamed = monitor(config, bundle=bundle, batch_rows=50, **outputs(tmp_path / "b"))
    assert [w["rows"] for w in streamed["windows"]] == [100, 100, 100, 100]
    _same(whole, streamed)


def test_windows_are_handed_over_as_soon_as_their_last_row_is_read(tmp_path):
    path = tmp_path / "x.csv"
    pd.DataFrame({"x": range(10)}).to_csv(path, index=False)
    source = Source(path, batch_rows=3)
    contiguous = [Window("a", np.arange(0, 4)), Window("b", np.arange(4, 10))]
    out = [(i, w.label, part["x"].tolist()) for i, w, part in stream_windows(source, contiguous)]
    assert out == [(0, "a", [0, 1, 2, 3]), (1, "b", [4, 5, 6, 7, 8, 9])]
    interleaved = [Window("odd", np.arange(1, 10, 2)), Window("even", np.arange(0, 10, 2))]
    got = {w.label: part["x"].tolist() for _, w, part in stream_windows(source, interleaved)}
    assert got == {"odd": [1, 3, 5, 7, 9], "even": [0, 2, 4, 6, 8]}
    beyond = [Window("gone", np.arange(8, 12))]  # the file shrank between the two reads
    with pytest.raises(DataError, match="changed while it was read: window gone"):
        list(stream_windows(source, beyond))
