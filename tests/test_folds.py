"""The one fold maker: forward-chaining for time order, grouped for repeated ids, and a
clear error (not scikit-learn's) when the data cannot give the folds asked for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from valuegate.errors import DataError
from valuegate.folds import fold_kind, make_folds


def test_time_ordered_folds_never_test_before_they_train():
    y = np.tile([0, 1], 50)
    folds = make_folds(y, "binary", 4, 0, time_ordered=True)
    assert len(folds) == 4
    for train, test in folds:
        assert train.max() < test.min()


def test_repeated_ids_stay_on_one_side_and_missing_ids_are_their_own_group():
    y = np.tile([0, 1], 50)
    ids = np.repeat(np.arange(25), 4).astype(object)
    ids[:3] = None
    assert fold_kind(False, ids) == "group"
    for train, test in make_folds(y, "binary", 5, 0, groups=ids):
        shared = set(pd.Series(ids[train]).dropna()) & set(pd.Series(ids[test]).dropna())
        assert not shared
    assert fold_kind(False, pd.array([1, 2, None, 3], dtype="Int64")) == "kfold"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"groups": np.array(["a", "b", "c"] * 33 + ["a"], dtype=object)}, "data.id_column"),
        ({"time_ordered": True}, "too few for 5 forward-chaining folds"),
    ],
)
def test_too_little_data_for_the_folds_is_a_data_error(kwargs, message):
    n = 4 if kwargs.get("time_ordered") else 100
    y = np.tile([0, 1], n // 2)
    with pytest.raises(DataError, match=message):
        make_folds(y, "binary", 5, 0, **kwargs)
