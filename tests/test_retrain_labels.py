"""New labelled windows appended to the training data (retrain/labels.py) and the
`valuegate retrain` command's own parts (dry run, result paragraph, bad input)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT
from tests.retrain_tables import data_config
from tests.retrain_tables import rows as table_rows
from valuegate.cli import main
from valuegate.data import file_sha256, load_raw, source_sha256
from valuegate.errors import DataError
from valuegate.retrain.command import result_paragraph
from valuegate.retrain.labels import append, appended_files, labelled_rows, window_file

DATA = data_config(path="data/raw/t.csv")


def _rows(ids, year, seed=0):
    return table_rows(ids, year, np.random.default_rng(seed), decimals=3)


@pytest.fixture
def root(tmp_path):
    (tmp_path / "data/raw").mkdir(parents=True)
    _rows(range(300), 2015).to_csv(tmp_path / DATA.path, index=False)
    return tmp_path


def test_an_appended_window_joins_the_data_once(root):
    before = source_sha256(DATA, root)
    assert before == file_sha256(root / DATA.path)  # nothing appended: the file's own digest
    new = _rows(range(300, 400), 2016, seed=1)
    target, count = append(DATA, new, 2016, root)
    assert target == window_file(DATA, 2016, root) and count == 100
    assert target.name == "window-2016.parquet" and (target.stat().st_mode & 0o777) == 0o644
    assert appended_files(DATA, root) == [target]
    rows = load_raw(DATA, root)
    assert len(rows) == 400 and rows["id"].tolist() == list(range(400))
    assert source_sha256(DATA, root) != before
    # The same rows again: nothing to do; other rows for that window, or rows the data
    # already holds: refused, naming what is wrong.
    assert append(DATA, new, 2016, root)[1] == 0
    with pytest.raises(DataError, match="window 2016 was already appended"):
        append(DATA, _rows(range(400, 450), 2016), 2016, root)
    with pytest.raises(DataError, match=r"50 of the 50 new rows repeat ids .*'id'"):
        append(DATA, _rows(range(350, 400), 2017), 2017, root)
    with pytest.raises(DataError, match=r"lack the columns \['x'\]"):
        append(DATA, _rows(range(500, 510), 2017).drop(columns="x"), 2017, root)
    # Dry run: checked, not written.
    path, count = append(DATA, _rows(range(600, 610), 2017), 2017, root, dry_run=True)
    assert count == 10 and not path.exists()


def test_a_broken_appended_file_is_named(root):
    target = window_file(DATA, 2016, root)
    target.parent.mkdir(parents=True)
    _rows(range(300, 310), 2016).drop(columns="x").to_parquet(target)
    with pytest.raises(DataError, match=r"window-2016.parquet: lacks the columns \['x'\]"):
        load_raw(DATA, root)


def test_labels_join_production_rows_by_id(root):
    rows = _rows(range(300, 320), 2016).drop(columns="y")
    rows.to_csv(root / "rows.csv", index=False)
    labels = pd.DataFrame({"id": range(300, 310), "y": ["bad", "good"] * 5})
    labels.to_csv(root / "labels.csv", index=False)
    joined = labelled_rows(DATA, root / "labels.csv", root / "rows.csv")
    # only the rows whose label has arrived
    assert joined["id"].tolist() == list(range(300, 310))
    assert joined["y"].tolist() == ["bad", "good"] * 5
    pd.DataFrame({"id": [999], "y": ["bad"]}).to_csv(root / "stray.csv", index=False)
    with pytest.raises(DataError, match="match no row"):
        labelled_rows(DATA, root / "stray.csv", root / "rows.csv")
    with pytest.raises(DataError, match="lacks the target column 'y'"):
        labelled_rows(DATA, root / "rows.csv")


def test_result_paragraph_says_what_happened():
    record = {
        "version": "v2",
        "champion_after": "v2",
        "reason": "xgboost beats champion v1 by 12,000 USD/month",
        "versus_champion": {
            "champion": "v1",
            "observed_uplift": 12_000.4,
            "ci_lower": 3_000,
            "ci_upper": 21_000,
            "confidence": 0.975,
            "rows": 34_563,
        },
        "churn": {
            "applies": True,
            "flipped_share": 0.041,
            "new_acts": {"share": 0.03, "value_per_period": 15_000},
            "new_holds": {"share": 0.011, "value_per_period": -3_000},
        },
        "seed_stability": {"seeds": [43, 44, 45], "spread": 4_000, "noise": False},
    }
    window = {
        "until": 2016,
        "rule": "expanding",
        "holdout": 0.5,
        "rows_per_period": {"2015": 68_785, "2016": 69_126},
        "test_period": 2016,
    }
    text = result_paragraph(record, window, "USD/month")
    assert text.startswith("Retrained on the expanding window up to 2016: 2015 (68,785 rows)")
    assert "Promoted: v2 is the champion now." in text
    assert "Uplift over v1: 12,000 USD/month (0.975 bounds 3,000 to 21,000)" in text
    assert (
        "Decisions flip on 4.1% of cases" in text and "Seed spread: 4,000 USD/month over 4" in text
    )
    refused = {**record, "version": None, "champion_after": "v1"}
    assert "Not promoted; the champion stays v1." in result_paragraph(refused, {}, "USD/month")


def test_retrain_dry_run_and_bad_window(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = main(["retrain", "--window", "2016", "--dry-run", "+experiment=employment"])
    out = capsys.readouterr()
    assert code == 0 and "Dry run: would train on the expanding window up to 2016" in out.out
    assert "dvc exp run -S +experiment=employment -S retrain.window.until=2016" in out.out
    assert main(["retrain", "--window", "1999", "--dry-run", "+experiment=employment"]) == 2
    err = capsys.readouterr().err
    assert "retrain.window.until: 1999 is not a period" in err and "Traceback" not in err
    # german credit has no time column: the config names the key
    assert main(["retrain", "--window", "2016", "--dry-run"]) == 2
    assert "retrain.window.until is 2016 but data.time_column is null" in capsys.readouterr().err


def test_rows_read_from_a_csv_keep_the_datas_codes_and_types():
    from valuegate.retrain.labels import aligned

    current = pd.DataFrame(
        {
            "id": pd.Series([1, 2], dtype="int32"),
            "SCHL": pd.Categorical(["21", "1"]),
            "x": [0.5, 1.5],
        }
    )
    # as pandas reads a CSV of new rows: codes as numbers, a gap making them floats
    new = pd.DataFrame({"id": [3, 4], "SCHL": [21.0, np.nan], "x": [1, 2]})
    out = aligned(new, current)
    assert out["SCHL"].tolist()[0] == "21" and pd.isna(out["SCHL"].tolist()[1])
    assert out["id"].dtype == "int32" and out["x"].tolist() == [1, 2]
