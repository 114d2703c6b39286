"""The forecast benchmark's own measures: origins, dense series and the whole-unit coverage floor."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import ml  # noqa: E402  (benchmarks/ml.py)


def test_origins_are_a_quarter_apart_and_the_latest_leaves_a_full_horizon():
    daily = pd.DataFrame({"sale_date": pd.date_range("2010-12-01", "2011-12-09", freq="D")})
    got = ml.origins(daily, 4)
    assert [o.strftime("%Y-%m-%d") for o in got] == [
        "2011-02-11", "2011-05-13", "2011-08-12", "2011-11-11"]
    # the hold-out of the latest origin ends on the last day of the data
    assert got[-1] + pd.Timedelta(days=ml.HORIZON) == pd.Timestamp("2011-12-09")


def test_a_dominant_value_sets_the_floor_a_whole_unit_band_can_reach():
    # 26 days without a sale and 2 days of one unit: any band holding 0 holds 26 of 28 days
    y = np.array([0.0] * 26 + [1.0] * 2)
    assert ml.whole_unit_floor(y, 0.80) == pytest.approx(26 / 28)
    # 95% of 28 days is 26.6: only [0, 1] holds enough, and it holds every day
    assert ml.whole_unit_floor(y, 0.95) == pytest.approx(1.0)


def test_spread_values_reach_the_first_share_at_or_above_the_level():
    # 28 different values: a band of 23 consecutive ones is the least share >= 80%
    assert ml.whole_unit_floor(np.arange(28.0), 0.80) == pytest.approx(23 / 28)
    # two values of 14 days each: one alone holds 50%, so only both reach 80%
    assert ml.whole_unit_floor(np.array([0.0] * 14 + [5.0] * 14), 0.80) == pytest.approx(1.0)


def test_a_series_is_dense_when_it_sells_on_more_than_half_of_the_open_days():
    y = np.zeros(400)
    y[-364:][::2] = 1.0  # 182 selling days in the last 364
    assert ml.is_dense(y, 300)      # 182 > 150
    assert not ml.is_dense(y, 364)  # 182 is not more than 182
    assert not ml.is_dense(y, 0)
