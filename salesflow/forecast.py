"""Daily sales forecasts with a rolling-origin backtest per series (``ml.sales_forecast``,
``ml.forecast_backtest``).

What is forecast
----------------
* ``TOTAL``: the shop's revenue per day (``marts.daily_sales.revenue``, in the shop's currency);
* every sku with enough history: units sold per day (``marts.product_daily_sales.units``, zero
  days filled in), the figure stock planning needs.

``build_series`` turns the marts into the long frame ``(unique_id, ds, y)`` that ``forecast``
takes; ``series_unit`` names the unit of a series. ``yhat`` is the expected value (a mean, so
that 28 days of ``yhat`` add up to the expected units of the period); ``yhat_p50`` is the
median, the point forecast with the least expected absolute error (Gneiting 2011, "Making
and evaluating point forecasts"): for a product that sells on one day in five it is 0 while
``yhat`` is its rate. The bands are 80% and 95% prediction intervals (central ones for
revenue, whole numbers for units: see Intervals). Use ``yhat`` for sums over days (stock
planning), ``yhat_p50`` for a single day's most typical figure.

How a model is chosen
---------------------
Each series is classified on its last year (Syntetos-Boylan: ADI, the mean interval between
selling days, and CV², the squared coefficient of variation of the non-zero days):

* *smooth* (ADI < 1.32): weekly seasonal naive and ETS(A,N,A) with a weekly season, fitted on
  the last ``light_input_size`` days; with two years of history (``yearly_min_days``), also
  ``YearlyES``: simple exponential smoothing of the series divided by its yearly index and
  less its weekday offsets, the index and offsets put back on the forecast. The yearly index of
  a day is the centred 28-day mean over the centred 364-day mean at the same point (``t % 364``,
  so weekdays stay aligned) of the years before, so a December that sold three times the year's
  level last year is forecast at three times the current level. The largest series (``TOTAL``
  and the ``heavy_top`` skus by recent volume) also try the Theta method and Theta on the
  yearly adjusted series (``YearlyTheta``); ``TOTAL`` and the ``mstl_top`` biggest skus also
  statsforecast's ``MSTL`` with weekly and yearly seasons (its STL needs two full years before
  every backtest window; at about 0.13 s a fit it is too slow for every series);
* *intermittent* (ADI >= 1.32): Croston (SBA), ADIDA, IMAPA and TSB; their flat forecasts are
  spread over the week with the series' weekday profile (shrunk towards the profile of all
  skus), and the weekly seasonal naive forecast is backtested as a yardstick only;
* *unstable*: the last four weeks at under half or over twice the level of the twelve weeks
  before, relative to the same weeks a year earlier where the history holds them (a December
  rise that came last year too is the season), significantly for a count (a launch, a
  stockout, a discontinuation): only adaptive simple models compete (seasonal naive, simple and
  seasonal exponential smoothing, TSB) and the bands are at least as wide as the last backtest
  window's errors;
* *short* (fewer than ``min_train + 2 * horizon`` days): no model selection; a window average of
  the last 28 days (by weekday once three weeks exist), with bands from its own one-step errors
  at widened levels, times ``fallback_widen`` (for a count rounded outward to whole numbers,
  the median to the nearest one).

Every candidate is refitted at each backtest origin on the history before it and forecasts the
next ``horizon`` days: the last ``n_windows`` origins, ``horizon`` days apart, and the same
weeks of the ``yearly_windows`` years before (364 days back, where the history before holds
``min_train`` days), so that the windows before an early-December forecast include last
December and a model that cannot see the season loses there. Each model's fits over all
series and origins run in one ``StatsForecast`` call. Ensembles are chosen by the same
backtest: the mean of the best two and of the best three candidates compete with them. The
candidate whose median forecast has the lowest mean MASE over the windows wins (ties go to the
simpler model, a single model before an ensemble); the reason is recorded per series.

``select`` backtests and chooses; its ``state`` per series (JSON) holds the chosen models and
the bands' quantiles, and ``predict`` refits only those models on a later day's history,
without a backtest (``forecast`` is ``select`` then ``predict`` on the same day).

Measured on real data at four origins a quarter apart (three for Online Retail, whose history
is a year), each forecasting 28 days; mean MASE of ``yhat_p50`` over the dense series (selling
on at least 76% of the last year's days), against statsforecast's weekly seasonal naive,
AutoETS(7), AutoTheta(7) and MSTL([7, 365]) (MSTL([7]) under two years) alone, each fitted on
the whole history:

| dataset (dense series)       | origin | vs best baseline | vs seasonal naive | 80% band |
| ---------------------------- | ------ | ---------------- | ----------------- | -------- |
| Superstore per category (2)  | Dec    | 0.78             | 0.49              | 75%      |
|                              | Sep    | 1.02             | 0.69              | 77%      |
|                              | Jun    | 1.04             | 0.98              | 79%      |
|                              | Mar    | 1.02             | 0.82              | 75%      |
| Superstore per sub-cat. (1)  | Dec    | 0.59             | 0.35              | 82%      |
|                              | Sep    | 0.94             | 0.62              | 75%      |
|                              | Jun    | 1.09             | 0.93              | 71%      |
|                              | Mar    | 1.02             | 0.84              | 86%      |
| CDNOW (2; 18 months)         | Jun    | 1.02             | 0.75              | 59%      |
|                              | Mar    | 1.06             | 0.63              | 88%      |
|                              | Dec    | 1.02             | 0.97              | 45%      |
|                              | Sep    | 1.17             | 0.92              | 100%     |
| demo shop, seed 42 (45-51)   | Jun    | 1.02             | 0.77              | 75%      |
|                              | Mar    | 0.97             | 0.74              | 84%      |
|                              | Dec    | 1.00             | 0.69              | 78%      |
|                              | Sep    | 0.97             | 0.76              | 80%      |

On Superstore's early-December origin the backtest sees last December and picks yearly models
(MASE 0.95 against 1.19 with the last four windows only, and 1.23 for MSTL alone); the best
baseline differs by origin, and afterwards the selection comes within 0-9% of it (17% on
CDNOW's first origin, with eight months of history) or beats it. The 80% bands are
calibrated on the backtest's errors; with one or two dense series per dataset a single
origin's 56 days vary widely (CDNOW's December: Christmas weeks above every earlier window).
On 600 Online Retail products (mostly intermittent, one year of history) the selection's MASE
is 0.85, 0.77 and 0.75 of the best baseline at the November, August and May origins, the bias
of the mean (the sum of ``yhat`` over the actuals', less 1) -12%, +35% and +4%.

The 2,000 synthetic series of three years of ``benchmarks/ml.py``'s speed test take 52.9 s
(``n_jobs=2``, idle machine; 1,462 MB at the peak); on a loaded machine 79 s of CPU time, 1.15
times what a selection on the last four windows with MSTL for the 25 biggest series took in
the same run (69 s).

Selecting on the mean's RMSSE instead (``select_on="rmsse"``) was measured on the 28-day
hold-out of the development data (demo shops of seeds 3, 5, 7, 11, Superstore per product and
per sub-category): over the six datasets the two tie (mean median-MASE 0.843 against 0.847,
mean RMSSE 0.705 against 0.706), so the selection scores the forecast that MASE judges.

Intervals
---------
Model-based intervals of these methods are mis-calibrated on retail data (the intermittent ones
have none), so both bands are conformal: quantiles of the chosen model's backtest errors,
added to the point forecast. Errors are scaled by the square root of the forecast (sales
counts and revenue have a variance roughly proportional to their level), so busy days get wider
bands than quiet ones. The median ``yhat_p50`` is the conformal median: ``yhat`` plus the 50%
quantile of the same scaled errors, clipped to the 80% band and at zero. For a smooth series
the errors' mean is taken off that quantile (``median_debias``): the offset of the median from
the mean is the errors' skew, and their bias in the backtest windows is no more carried into
the median than into the mean (after a decline the windows all over-forecast, and a median
shifted down by them missed CDNOW's Christmas: MASE 1.40 against 0.88 without the shift).
Where the backtest's MASE is lower with it (``median_choice``) a smooth series' median is the
mean itself (rounded for a count); on intermittent series that choice over-fitted the
backtest (Online Retail products: MASE 1.532 against 1.519 at the November origin). The backtest's scores
are honest: each window's band and median are built from the errors of the *other* windows
only. Bands and forecasts are clipped at zero and ordered ``lo95 <= lo80 <= yhat <= hi80 <=
hi95``, with ``lo80 <= yhat_p50 <= hi80``.

Counts (a sku's units when its history is whole numbers) get whole-number bands and median. A
band of 0 to 0.6 units holds the same sales as 0 to 0 units, and one of 0.2 to 1.5 units
leaves out the days without a sale, which continuous bands did on sparse sellers. The lower
bound is the continuous one rounded down; the upper bound is then the smallest whole number
that, over the backtest days the lower bound holds, brings the share of days inside the band
to the level (a discrete conformal quantile), so the band is calibrated as a whole rather than
tail by tail: rounding the lower bound down keeps days of the lower tail inside, so equal tails
over-cover. On the development shops' hold-outs the 80% bands held 94% of the days with both
bounds of the continuous bands rounded outward, 90% as whole-number bands with equal tails,
83% as these. The median is the discrete one (the smallest whole number with at least
half of the backtest days at or below it). A count's band still holds more than its level
where one value dominates: the 80% band of a product that sells on one day in a hundred is
{0}, which holds 99% of the days. Where the mean lies outside the whole-number band, the bound
moves to the mean (``hi80 = yhat = 0.1`` holds the same counts as ``hi80 = 0``).

MASE is scaled by the in-sample MAE of the weekly seasonal naive forecast (``|y[t] - y[t-7]|``)
over the history before the first backtest origin and scores the median ``yhat_p50``; RMSSE
(the M5 measure) is the root mean squared error of the mean ``yhat`` scaled by the in-sample
root mean square of the same weekly naive differences, per window, then averaged; sMAPE (of
``yhat``) is ``2|y - f| / (|y| + |f|)`` with 0/0 counted as 0, as a fraction; coverage is the
share of actual days inside the band. A shop-wide yearly factor for intermittent forecasts
(the ratio of the coming weeks to the recent ones a year earlier) was measured and not
adopted: on Superstore, whose December hold-out motivated it, the shop's units in the hold-out
are 0.97 of the 91 days before (the year-earlier ratios predict 1.02-1.11) and its products
sell on as many days in December as on average (86 selling product-days in the hold-out, 84
at the rate of the year before); its low coverage came from lower bounds above zero on sparse
sellers (bands such as 0.01 to 0.03 units, which hold no sale figure at all), which the count
bands fix.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

TOTAL = "TOTAL"
LEVELS = (80, 95)
FORECAST_COLUMNS = [
    "as_of", "series_id", "ds", "yhat", "yhat_p50", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95",
    "yhat_hi_95", "model",
]
BACKTEST_COLUMNS = [
    "as_of", "series_id", "model", "mase", "rmsse", "smape", "coverage_80", "coverage_95", "chosen",
    "reason",
]
SELECTION_COLUMNS = ["selected_as_of", "series_id", "model", "state"]
ADI_CUTOFF = 1.32

SMOOTH_MODELS = ("SeasonalNaive", "ETS")
# tried on smooth series with two years of history: a model of the series divided by its yearly
# index (the weeks' level against the year's, from the years before); YearlyES is simple
# exponential smoothing of that series less its weekday offsets (fast enough for every series)
YEARLY_MODELS = ("YearlyES",)
HEAVY_MODELS = ("Theta", "YearlyTheta", "MSTL")
INTERMITTENT_MODELS = ("CrostonSBA", "ADIDA", "IMAPA", "TSB")
# the statsforecast model a yearly-adjusted one fits on the adjusted series
YEARLY_BASE = {"YearlyES": "SES", "YearlyETS": "ETS", "YearlyTheta": "Theta"}
UNSTABLE_MODELS = ("SeasonalNaive", "SeasonalES", "SES", "TSB")
# Always backtested, as the yardstick, even where it may not be chosen.
REFERENCE_MODEL = "SeasonalNaive"
FALLBACK_MODELS = ("WindowAverage", "SeasonalWindowAverage")
# Flat forecasts get the series' weekday profile.
FLAT_MODELS = ("CrostonSBA", "ADIDA", "IMAPA", "TSB", "SES")
# Simplest first: ties in the backtest go to the earlier name.
SIMPLICITY = (
    "SeasonalNaive", "WindowAverage", "SeasonalWindowAverage", "SES", "SeasonalES", "CrostonSBA",
    "TSB", "ADIDA", "IMAPA", "ETS", "Theta", "YearlyES", "YearlyETS", "YearlyTheta", "MSTL",
)


@dataclass(frozen=True)
class ForecastConfig:
    """Knobs of ``forecast``; the defaults are the ones the benchmark measures."""

    horizon: int = 28
    n_windows: int = 4
    min_train: int = 56
    heavy_top: int = 25
    # MSTL (about 0.13 s a fit) for TOTAL and this many of the biggest skus only
    mstl_top: int = 5
    light_input_size: int | None = 364
    # backtest windows on the same weeks 1, 2, ... years before the forecast (where the history
    # holds them), besides the n_windows last ones
    yearly_windows: int = 1
    # history a series needs for the yearly models (MSTL: this much before every window)
    yearly_min_days: int = 2 * 365
    # ensembles: the mean of the best 2 .. ensemble_top candidates of the backtest
    ensemble_top: int = 3
    # smooth series: the median is the conformal one or the mean (whole for counts), whichever
    # the backtest prefers
    median_choice: bool = True
    # smooth series: the median's offset from the mean is the backtest errors' median less their
    # mean (their skew), not their bias, which the mean forecast does not carry either
    median_debias: bool = True
    n_jobs: int = 1
    unstable_ratio: float = 2.0
    fallback_widen: float = 1.25
    # what the selection minimises: "mase" (of the median), "rmsse" or "mase_mean" (of the mean)
    select_on: str = "mase"
    # whole-number bands and median for series whose history is whole numbers (not TOTAL)
    count_bands: bool = True
    scale_mode: str = "sqrt"
    weekday_prior: float = 50.0
    ets_model: str = "ANA"
    theta_optimized: bool = False
    smooth_models: tuple[str, ...] = SMOOTH_MODELS
    yearly_models: tuple[str, ...] = YEARLY_MODELS
    heavy_models: tuple[str, ...] = HEAVY_MODELS
    intermittent_models: tuple[str, ...] = INTERMITTENT_MODELS
    unstable_models: tuple[str, ...] = UNSTABLE_MODELS


def series_unit(series_id: str) -> str:
    """What ``y`` counts for a series: ``revenue`` for ``TOTAL``, ``units`` for a sku."""
    return "revenue" if series_id == TOTAL else "units"


# --------------------------------------------------------------------------- series

def _as_timestamp(day: object) -> pd.Timestamp:
    return pd.Timestamp(day).normalize()


def _number(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values.astype(float), errors="coerce").fillna(0.0).to_numpy(float)


def build_series(
    daily: pd.DataFrame,
    product_daily: pd.DataFrame,
    as_of: object,
    *,
    min_history: int = 56,
    min_sale_days: int = 8,
    inactive_days: int = 90,
    detail: bool = False,
) -> pd.DataFrame:
    """The long frame ``(unique_id, ds, y)`` of every series, up to ``as_of``.

    ``daily`` has ``sale_date`` and ``revenue`` (every calendar day; ``Decimal`` allowed),
    ``product_daily`` has ``sale_date``, ``sku`` and ``units`` (selling days only). ``TOTAL`` is
    revenue from the first day with a sale; a sku is its units from its first sale, zero days
    filled, kept when that span is at least ``min_history`` days, it sold on at least
    ``min_sale_days`` days and at least once in the last ``inactive_days`` days. ``ds`` is
    ``datetime64[ns]``, ``y`` float; sorted by ``unique_id`` then ``ds``. ``detail`` adds the
    columns ``orders`` and ``revenue`` (both marts have them), which anomaly scoring uses.
    """
    end = _as_timestamp(as_of)
    if detail:
        for mart, frame, cols in (("daily_sales", daily, ("orders",)),
                                  ("product_daily_sales", product_daily, ("orders", "revenue"))):
            missing = [c for c in cols if frame is not None and c not in frame.columns]
            if missing:
                raise ValueError(f"detail=True needs the column(s) {', '.join(missing)} of "
                                 f"marts.{mart}")
    parts = []
    if daily is not None and len(daily):
        d = pd.DataFrame({
            "ds": pd.to_datetime(daily["sale_date"]).dt.normalize(),
            "y": _number(daily["revenue"]),
            "orders": _number(daily["orders"]) if detail else 0.0,
        })
        d = d[d["ds"] <= end].groupby("ds", sort=True)[["y", "orders"]].sum()
        selling = d.index[d["y"].to_numpy() > 0]
        if len(selling):
            days = pd.date_range(selling.min(), end, freq="D")
            total = d.reindex(days, fill_value=0.0)
            parts.append(pd.DataFrame({"unique_id": TOTAL, "ds": days,
                                       "y": total["y"].to_numpy(float),
                                       "orders": total["orders"].to_numpy(float),
                                       "revenue": total["y"].to_numpy(float)}))
    if product_daily is not None and len(product_daily):
        p = pd.DataFrame({
            "unique_id": product_daily["sku"].astype(str),
            "ds": pd.to_datetime(product_daily["sale_date"]).dt.normalize(),
            "y": _number(product_daily["units"]),
            "orders": _number(product_daily["orders"]) if detail else 0.0,
            "revenue": _number(product_daily["revenue"]) if detail else 0.0,
        })
        p = p[(p["ds"] <= end) & (p["y"] > 0) & (p["unique_id"] != TOTAL)]
        p = p.groupby(["unique_id", "ds"], sort=True)[["y", "orders", "revenue"]].sum().reset_index()
        stats = p.groupby("unique_id")["ds"].agg(["min", "max", "count"])
        span = (end - stats["min"]).dt.days + 1
        keep = stats.index[
            (span >= min_history)
            & (stats["count"] >= min_sale_days)
            & ((end - stats["max"]).dt.days < inactive_days)
        ]
        p = p[p["unique_id"].isin(keep)]
        for uid, g in p.groupby("unique_id", sort=True):
            days = pd.date_range(g["ds"].iloc[0], end, freq="D")
            pos = ((g["ds"] - days[0]).dt.days).to_numpy()
            cols = {c: np.zeros(len(days)) for c in ("y", "orders", "revenue")}
            for c, v in cols.items():
                v[pos] = g[c].to_numpy(float)
            parts.append(pd.DataFrame({"unique_id": uid, "ds": days, **cols}))
    cols = ["unique_id", "ds", "y"] + (["orders", "revenue"] if detail else [])
    if not parts:
        return pd.DataFrame({"unique_id": pd.Series(dtype=object),
                             "ds": pd.Series(dtype="datetime64[ns]"), "y": pd.Series(dtype=float),
                             "orders": pd.Series(dtype=float),
                             "revenue": pd.Series(dtype=float)})[cols]
    out = pd.concat(parts, ignore_index=True)[cols]
    return out.sort_values(["unique_id", "ds"], kind="stable").reset_index(drop=True)


# --------------------------------------------------------------------------- models

def _model(name: str, cfg: ForecastConfig, n: int | None = None, alias: str | None = None):
    from statsforecast import models as m

    if name in YEARLY_BASE:
        return _model(YEARLY_BASE[name], cfg, n, alias=alias or name)
    if alias is not None and alias != name:
        model = _model(name, cfg, n)
        model.alias = alias
        return model

    if name == "SeasonalNaive":
        return m.SeasonalNaive(7, alias=name)
    if name == "ETS":
        return m.AutoETS(season_length=7, model=cfg.ets_model, alias=name)
    if name == "Theta":
        if cfg.theta_optimized:
            return m.OptimizedTheta(season_length=7, alias=name)
        return m.Theta(season_length=7, alias=name)
    if name == "MSTL":
        return m.MSTL(
            season_length=[7, 365],
            trend_forecaster=m.AutoETS(model="ZNN"),
            stl_kwargs={"seasonal_jump": 7, "trend_jump": 7, "low_pass_jump": 7},
            alias=name,
        )
    if name == "CrostonSBA":
        return m.CrostonSBA(alias=name)
    if name == "ADIDA":
        return m.ADIDA(alias=name)
    if name == "IMAPA":
        return m.IMAPA(alias=name)
    if name == "TSB":
        return m.TSB(alpha_d=0.1, alpha_p=0.1, alias=name)
    if name == "SES":
        return m.SimpleExponentialSmoothingOptimized(alias=name)
    if name == "SeasonalES":
        return m.SeasonalExponentialSmoothingOptimized(season_length=7, alias=name)
    if name == "WindowAverage":
        return m.WindowAverage(window_size=max(1, min(28, n or 28)), alias=name)
    if name == "SeasonalWindowAverage":
        return m.SeasonalWindowAverage(7, window_size=max(1, min(4, (n or 28) // 7)), alias=name)
    raise ValueError(f"unknown model {name!r}")


def _limited(name: str, cfg: ForecastConfig) -> int | None:
    """Training days a model sees (None: the whole history)."""
    if name in ("ETS", "Theta", "YearlyETS", "YearlyTheta") and cfg.light_input_size:
        return cfg.light_input_size
    if name == "SeasonalNaive":
        return 28
    return None


def _yearly_index(y: np.ndarray) -> np.ndarray | None:
    """The level of each day of the year against the year's, by position ``t % 364`` from the
    start of ``y`` (so that weekdays stay aligned): the centred 28-day mean over the centred
    364-day mean, averaged over the years ``y`` holds. Positions without a full year around them
    get 1. None when ``y`` is shorter than a year and two months."""
    n = len(y)
    if n < 364 + 56:
        return None
    trend = np.convolve(y, np.ones(364) / 364, "valid")
    local = np.convolve(y, np.ones(28) / 28, "valid")
    t = np.arange(182, n - 181)
    tr, lo = trend[t - 182], local[t - 14]
    ok = tr > 0
    if not ok.any():
        return None
    phase = t[ok] % 364
    sums = np.bincount(phase, weights=lo[ok] / tr[ok], minlength=364)
    cnt = np.bincount(phase, minlength=364)
    s = np.where(cnt > 0, sums / np.maximum(cnt, 1), 1.0)
    if cnt.min() > 0:
        s = s / s.mean()
    return np.clip(s, 0.2, 5.0)


# --------------------------------------------------------------------------- profile

@dataclass
class _Profile:
    uid: str
    n: int
    adi: float
    cv2: float
    kind: str  # smooth, intermittent, short
    windows: int = 0
    origins: tuple[int, ...] = ()  # training lengths of the backtest windows, oldest first
    heavy: bool = False
    yearly: bool = False
    unstable: bool = False
    count: bool = False
    shift: float = 1.0
    candidates: tuple[str, ...] = ()
    tested: tuple[str, ...] = ()
    scale: float = 1.0
    scale2: float = 1.0
    floor: float = 1.0
    weekday: np.ndarray = field(default_factory=lambda: np.ones(7))


def _adi_cv2(y: np.ndarray) -> tuple[float, float]:
    nz = y[y > 0]
    if len(nz) == 0:
        return math.inf, 0.0
    adi = len(y) / len(nz)
    cv2 = float(np.var(nz) / np.mean(nz) ** 2) if len(nz) > 1 else 0.0
    return adi, cv2


def _snaive_scale(y: np.ndarray) -> float:
    """In-sample MAE of the weekly seasonal naive forecast (the MASE denominator)."""
    if len(y) > 7:
        s = float(np.mean(np.abs(y[7:] - y[:-7])))
        if s > 0:
            return s
    if len(y) > 1:
        s = float(np.mean(np.abs(np.diff(y))))
        if s > 0:
            return s
    s = float(np.mean(np.abs(y)))
    return s if s > 0 else 1.0


def _snaive_rms(y: np.ndarray) -> float:
    """In-sample root mean square of the weekly seasonal naive errors (the RMSSE denominator)."""
    for d in ((y[7:] - y[:-7]) if len(y) > 7 else np.empty(0),
              np.diff(y) if len(y) > 1 else np.empty(0), y):
        s = float(np.sqrt(np.mean(np.square(d)))) if len(d) else 0.0
        if s > 0:
            return s
    return 1.0


def _weekday_sums(y: np.ndarray, start: pd.Timestamp) -> np.ndarray:
    k = min(len(y), 364)
    dow = (start.dayofweek + np.arange(len(y) - k, len(y))) % 7
    return np.bincount(dow, weights=y[-k:], minlength=7)


def shrunk_profile(own: np.ndarray, pooled: np.ndarray, strength: float) -> np.ndarray:
    """Weekday factors (mean 1) of the units ``own`` sold per weekday, shrunk towards the shares
    ``pooled`` with the weight of ``strength`` units; flat when there is nothing to go by."""
    total = float(own.sum())
    if total + strength <= 0:
        return np.ones(7)
    return 7.0 * (own + strength * pooled) / (total + strength)


def _shift(y: np.ndarray, uid: str, ratio: float) -> tuple[bool, float]:
    """Level shift of the last 28 days against the 84 before, relative to the same days a year
    earlier where the history holds them (a December rise that came last year too is the
    season, not a shift): (significant, ratio)."""
    if len(y) < 112:
        return False, 1.0
    recent, before = float(np.sum(y[-28:])), float(np.sum(y[-112:-28]))
    shift = (recent / 28 + 1e-9) / (before / 84 + 1e-9)
    usual = 1.0
    if len(y) >= 112 + 364:
        last, last_before = float(np.sum(y[-392:-364])), float(np.sum(y[-476:-392]))
        if last > 0 and last_before > 0:
            usual = (last / 28) / (last_before / 84)
    rel = shift / usual
    if not (rel > ratio or rel < 1.0 / ratio) or recent + before <= 0:
        return False, shift
    if uid == TOTAL:
        return True, shift
    # Units come in multi-packs: a dispersion of 2 over a binomial split of the 112 days' units,
    # the last 28 days' expected share being what the year before had (a quarter without it).
    n = recent + before
    p = usual / (usual + 3.0)
    z = (recent - p * n) / math.sqrt(n * p * (1 - p) * 2.0)
    return abs(z) > 3.0, shift


def _profiles(groups: dict[str, np.ndarray], starts: dict[str, pd.Timestamp],
              cfg: ForecastConfig) -> dict[str, _Profile]:
    h = cfg.horizon
    out: dict[str, _Profile] = {}
    volume: dict[str, float] = {}
    sums = {uid: _weekday_sums(y, starts[uid]) for uid, y in groups.items()}
    sku_sums = [v for uid, v in sums.items() if uid != TOTAL]
    pooled = np.sum(sku_sums, axis=0) if sku_sums else np.ones(7)
    pooled = pooled / pooled.sum() if pooled.sum() > 0 else np.full(7, 1 / 7)
    for uid, y in groups.items():
        n = len(y)
        adi, cv2 = _adi_cv2(y[-365:])
        windows = min(cfg.n_windows, (n - cfg.min_train) // h) if n >= cfg.min_train + h else 0
        if windows < 2:
            kind, windows = "short", 0
        else:
            kind = "intermittent" if adi >= ADI_CUTOFF else "smooth"
        prof = _Profile(uid, n, adi, cv2, kind, windows)
        if windows:
            yearly = [n - 364 * k for k in range(cfg.yearly_windows, 0, -1)
                      if n - 364 * k >= cfg.min_train and n - 364 * k + h <= n - windows * h]
            prof.origins = tuple(yearly) + tuple(n - k * h for k in range(windows, 0, -1))
        prof.scale = _snaive_scale(y[: n - windows * h] if windows else y)
        prof.scale2 = _snaive_rms(y[: n - windows * h] if windows else y)
        prof.floor = _floor(y)
        prof.count = cfg.count_bands and uid != TOTAL and bool(np.all(y == np.round(y)))
        if uid == TOTAL:
            prof.weekday = shrunk_profile(sums[uid], np.full(7, 1 / 7), 0.0)
        else:
            prof.weekday = shrunk_profile(sums[uid], pooled, cfg.weekday_prior)
        if kind != "short":
            prof.unstable, prof.shift = _shift(y, uid, cfg.unstable_ratio)
        out[uid] = prof
        if kind == "smooth":
            volume[uid] = float(np.mean(y[-91:]))
    ranked = [uid for uid, _ in sorted(volume.items(), key=lambda kv: (-kv[1], kv[0]))]
    heavy = set(ranked[: cfg.heavy_top]) | ({TOTAL} & set(volume))
    biggest = set(ranked[: cfg.mstl_top]) | ({TOTAL} & set(volume))
    for uid, prof in out.items():
        if prof.kind == "short":
            continue
        if prof.unstable:
            cands = list(cfg.unstable_models)
        elif prof.kind == "intermittent":
            cands = list(cfg.intermittent_models)
        else:
            cands = list(cfg.smooth_models)
            prof.yearly = prof.n >= cfg.yearly_min_days
            if prof.yearly:
                cands += list(cfg.yearly_models)
            if uid in heavy:
                prof.heavy = True
                # statsmodels' STL needs two full years before every window
                mstl = min(prof.origins) >= cfg.yearly_min_days and uid in biggest
                cands += [c for c in cfg.heavy_models
                          if (c != "MSTL" or mstl) and (c not in YEARLY_BASE or prof.yearly)]
        prof.candidates = tuple(dict.fromkeys(cands))
        prof.tested = tuple(dict.fromkeys((REFERENCE_MODEL, *prof.candidates)))
    return out


def _floor(y: np.ndarray) -> float:
    pos = y[y > 0]
    return float(np.mean(pos)) * 0.05 + 1e-6 if len(pos) else 1.0


def _members(name: str) -> tuple[str, ...]:
    """The models of ``name``: ``Ensemble(A+B)`` is the mean of A and B."""
    if name.startswith("Ensemble(") and name.endswith(")"):
        return tuple(name[len("Ensemble("):-1].split("+"))
    return (name,)


def _simplicity(name: str) -> int:
    members = _members(name)
    if len(members) > 1:
        return len(SIMPLICITY) + len(members)
    return SIMPLICITY.index(name) if name in SIMPLICITY else len(SIMPLICITY)


# --------------------------------------------------------------------------- backtest

def _adjust(name: str, f: np.ndarray, dow: np.ndarray, weekday: np.ndarray) -> np.ndarray:
    f = np.clip(np.where(np.isfinite(f), f, np.nan), 0.0, None)
    return f * weekday[dow] if name in FLAT_MODELS else f


def _paths(groups: dict[str, np.ndarray], starts: dict[str, pd.Timestamp],
           jobs: dict[str, list[tuple[str, int]]], weekday: dict[str, np.ndarray],
           cfg: ForecastConfig) -> dict[tuple[str, int, str], np.ndarray]:
    """``{(uid, t, model): f}``: each model's forecast of the ``horizon`` days after the first
    ``t`` days of each series it is asked for, fitted on those days only. A model's fits run in
    one ``StatsForecast`` call."""
    from statsforecast import StatsForecast

    h = cfg.horizon
    out: dict[tuple[str, int, str], np.ndarray] = {}
    for name, pairs in sorted(jobs.items()):
        if not pairs:
            continue
        if name in FALLBACK_MODELS:
            for uid, t in pairs:
                out[(uid, t, name)] = _fallback_path(groups[uid][:t], name, h)
            continue
        size = _limited(name, cfg)
        ys, factors = [], []
        for uid, t in pairs:
            y = groups[uid][:t]
            factor = None
            if name in YEARLY_BASE:
                index = _yearly_index(y)
                mult = np.ones(h) if index is None else index[np.arange(t, t + h) % 364]
                if index is not None:
                    y = y / index[np.arange(t) % 364]
                add = np.zeros(h)
                if name == "YearlyES":
                    # weekday offsets of the last (up to) 364 days, by position t % 7
                    k = min(t, 364)
                    pos = np.arange(t - k, t) % 7
                    offset = (np.bincount(pos, weights=y[-k:], minlength=7)
                              / np.maximum(np.bincount(pos, minlength=7), 1)) - np.mean(y[-k:])
                    y = y - offset[np.arange(t) % 7]
                    add = offset[np.arange(t, t + h) % 7]
                factor = (add, mult)
            ys.append(y[-size:] if size else y)
            factors.append(factor)
        lens = np.fromiter((len(y) for y in ys), int, len(ys))
        df = pd.DataFrame({
            "unique_id": np.repeat(np.arange(len(pairs)), lens),
            "ds": np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens),
            "y": np.concatenate(ys),
        })
        sf = StatsForecast(models=[_model(name, cfg)], freq=1, n_jobs=cfg.n_jobs,
                           fallback_model=_model("SeasonalNaive", cfg))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = sf.forecast(h=h, df=df)
        fc = fc.sort_values(["unique_id", "ds"], kind="stable")
        vals = fc[name].to_numpy(float).reshape(-1, h)
        for i, v in zip(fc["unique_id"].to_numpy()[::h], vals):
            uid, t = pairs[i]
            if factors[i] is not None:
                v = (v + factors[i][0]) * factors[i][1]
            dow = (starts[uid].dayofweek + t + np.arange(h)) % 7
            v = _adjust(name, v, dow, weekday[uid])
            out[(uid, t, name)] = np.where(np.isfinite(v), v, 0.0)
    return out


def _backtests(groups, starts, profiles: dict[str, _Profile], cfg: ForecastConfig):
    """``{uid: {model: (y[W, h], f[W, h])}}``: every tested model at each backtest origin of
    the series (``_Profile.origins``), each forecasting the next ``horizon`` days."""
    h = cfg.horizon
    jobs: dict[str, list[tuple[str, int]]] = {}
    for uid in sorted(profiles):
        prof = profiles[uid]
        for name in prof.tested:
            jobs.setdefault(name, []).extend((uid, t) for t in prof.origins)
    paths = _paths(groups, starts, jobs, {u: p.weekday for u, p in profiles.items()}, cfg)
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    for uid, prof in profiles.items():
        if not prof.tested:
            continue
        y = np.stack([groups[uid][t:t + h] for t in prof.origins])
        out[uid] = {name: (y, np.stack([paths[(uid, t, name)] for t in prof.origins]))
                    for name in prof.tested}
    return out


def _norm(f: np.ndarray, mode: str, floor: float) -> np.ndarray:
    if mode == "sqrt":
        return np.sqrt(np.maximum(f, 0.0) + floor)
    if mode == "relative":
        return np.maximum(f, floor)
    return np.ones_like(f)


def _conformal_q(e: np.ndarray, level: float) -> tuple[float, float]:
    """Signed error quantiles of a central ``level`` % band, finite-sample adjusted."""
    e = e[np.isfinite(e)]
    n = len(e)
    if n == 0:
        return -math.inf, math.inf
    a = (1 - level / 100) / 2
    hi_rank = min(n, math.ceil((n + 1) * (1 - a)))
    lo_rank = max(1, math.floor((n + 1) * a))
    s = np.sort(e)
    return float(s[lo_rank - 1]), float(s[hi_rank - 1])


def _median_q(e: np.ndarray) -> float:
    """The median of the scaled errors: added to the mean forecast, the conformal median."""
    e = e[np.isfinite(e)]
    return float(np.median(e)) if len(e) else 0.0


def _bands(f: np.ndarray, nf: np.ndarray, q: dict) -> dict[str, np.ndarray]:
    """Bands and median around the mean forecast ``f`` from the scaled-error quantiles ``q``
    (``_quantiles``): ordered ``lo95 <= lo80 <= yhat <= hi80 <= hi95``, none negative, the median
    inside the 80% band. For a count the bounds and the median are whole numbers, except that a
    bound never cuts the mean off its band (a bound at the mean keeps the same whole numbers)."""
    if q.get("count"):
        def upper(x):  # the count covers y exactly when its discrete score is <= the quantile
            return np.floor(f + x * nf + 1e-9) + 1.0

        def lower(x):  # the continuous bound rounded down: it only adds the count below
            return np.floor(f + x * nf + 1e-9)
    else:
        def upper(x):
            return f + x * nf

        lower = upper
    (l80, h80), (l95, h95) = q[80], q[95]
    lo80 = np.minimum(np.maximum(lower(l80), 0.0), f)
    hi80 = np.maximum(upper(h80), f)
    lo95 = np.minimum(np.maximum(lower(l95), 0.0), lo80)
    hi95 = np.maximum(upper(h95), hi80)
    if q.get("plain"):
        mid = np.round(f) if q.get("count") or q.get("round") else f
    else:
        mid = upper(q[50]) if q.get("count") else f + q[50] * nf
    if q.get("round"):
        lo80, lo95 = np.floor(lo80 + 1e-9), np.floor(lo95 + 1e-9)
        hi80, hi95 = np.ceil(hi80 - 1e-9), np.ceil(hi95 - 1e-9)
        mid = np.round(mid)
    return {
        "yhat_p50": np.maximum(np.clip(mid, lo80, hi80), 0.0),
        "yhat_lo_80": lo80, "yhat_hi_80": hi80, "yhat_lo_95": lo95, "yhat_hi_95": hi95,
    }


@dataclass
class _Score:
    mase: float       # of the conformal median (yhat_p50)
    rmsse: float      # of the mean (yhat)
    mase_mean: float  # of the mean (yhat)
    smape: float      # of the mean (yhat)
    cov80: float
    cov95: float
    plain_median: bool = False  # the median is the mean (rounded for a count)

    def key(self, on: str) -> float:
        return {"mase": self.mase, "rmsse": self.rmsse, "mase_mean": self.mase_mean}[on]


def _smape(y: np.ndarray, f: np.ndarray) -> float:
    denom = np.abs(y) + np.abs(f)
    return float(np.mean(np.where(denom > 0, 2 * np.abs(y - f) / np.where(denom > 0, denom, 1.0), 0.0)))


def _quantiles(y: np.ndarray, f: np.ndarray, nf: np.ndarray, count: bool,
               debias: bool = False) -> dict:
    """Scaled-error quantiles of the bands and the median from backtest actuals ``y`` and
    forecasts ``f`` (``nf`` their scale): ``{80: (lo, hi), 95: (lo, hi), 50: median, "count"}``.

    For a count, lower bounds are the continuous ones rounded down; upper bounds and the median
    come from the discrete scores ``(y - 1 - f) / nf``, so that the whole-number bound
    ``_bands`` derives from a quantile holds exactly the backtest days whose score is at or
    below it. The upper quantile is taken over the days the lower bound holds, at the rank that
    brings the band's share of all days to the level. (The discrete lower score
    ``(y + 1 - f) / nf`` fails on sparse sellers: carried to a day with a larger scale its
    one-unit shift grows past a whole unit, and the band loses the zero days.)"""
    y, f, nf = (np.ravel(a) for a in (y, f, nf))
    if not count:
        e = (y - f) / nf
        ok = np.isfinite(e)
        shift = float(np.mean(e[ok])) if debias and ok.any() else 0.0
        return {**{level: _conformal_q(e, level) for level in LEVELS}, 50: _median_q(e) - shift,
                "count": False}
    e, up = (y - f) / nf, (y - 1.0 - f) / nf
    q: dict = {"count": True}
    ok = np.isfinite(e) & np.isfinite(up)
    e, up, y, f, nf = e[ok], up[ok], y[ok], f[ok], nf[ok]
    n = len(e)
    for level in LEVELS:
        lo = _conformal_q(e, level)[0]
        if n == 0 or not np.isfinite(lo):
            q[level] = (lo, _conformal_q(up, level)[1])
            continue
        # the upper bound makes up the level over the days the rounded-down lower bound holds
        held = np.sort(up[y >= np.minimum(np.floor(f + lo * nf + 1e-9), np.ceil(f))])
        rank = min(n, math.ceil((n + 1) * level / 100))
        q[level] = (lo, float(held[rank - 1]) if rank <= len(held) else
                    (float(held[-1]) if len(held) else math.inf))
    u = np.sort(up[np.isfinite(up)])
    q[50] = float(u[max(0, math.ceil(len(u) / 2) - 1)]) if len(u) else 0.0
    if debias and n:
        q[50] -= float(np.mean(e))
    return q


def _debias(prof: _Profile, cfg: ForecastConfig) -> bool:
    return cfg.median_debias and prof.kind == "smooth"


def _score(y: np.ndarray, f: np.ndarray, prof: _Profile, cfg: ForecastConfig) -> _Score:
    if not np.all(np.isfinite(f)):
        return _Score(math.inf, math.inf, math.inf, math.inf, math.nan, math.nan)
    nf = _norm(f, cfg.scale_mode, prof.floor)
    med = np.empty_like(f)
    plain = np.empty_like(f)
    hits: dict[int, list] = {level: [] for level in LEVELS}
    for k in range(y.shape[0]):
        # window k's band and median from the errors of the other windows only
        rest = [np.delete(a, k, axis=0) for a in (y, f, nf)]
        b = _bands(f[k], nf[k], _quantiles(*rest, prof.count, _debias(prof, cfg)))
        med[k] = b["yhat_p50"]
        plain[k] = np.maximum(np.clip(np.round(f[k]) if prof.count else f[k], b["yhat_lo_80"],
                                      b["yhat_hi_80"]), 0.0)
        for level in LEVELS:
            hits[level].append((y[k] >= b[f"yhat_lo_{level}"] - 1e-9)
                               & (y[k] <= b[f"yhat_hi_{level}"] + 1e-9))
    cov = {level: float(np.mean(np.concatenate(hits[level]))) for level in LEVELS}
    mase = float(np.mean(np.mean(np.abs(y - med), axis=1) / prof.scale))
    mase_plain = float(np.mean(np.mean(np.abs(y - plain), axis=1) / prof.scale))
    mase_mean = float(np.mean(np.mean(np.abs(y - f), axis=1) / prof.scale))
    rmsse = float(np.mean(np.sqrt(np.mean(np.square(y - f), axis=1)) / prof.scale2))
    plain_median = cfg.median_choice and prof.kind == "smooth" and mase_plain < mase
    return _Score(mase_plain if plain_median else mase, rmsse, mase_mean, _smape(y, f), cov[80],
                  cov[95], plain_median)


# --------------------------------------------------------------------------- forecast

def _fallback_path(y: np.ndarray, name: str, h: int) -> np.ndarray:
    """The next ``h`` days of a fallback model: the mean of the last 28 days, or of each weekday
    over the last (up to) four weeks, repeated."""
    n = len(y)
    if name == "SeasonalWindowAverage" and n >= 21:
        k = min(4, n // 7)
        return np.resize(y[n - 7 * k:].reshape(k, 7).mean(axis=0), h)
    return np.full(h, float(np.mean(y[-min(28, n):])) if n else 0.0)


def _fallback_errors(y: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """One-step errors of a fallback model over the history: (actual, forecast)."""
    ys, fs = [], []
    first = 14 if name == "SeasonalWindowAverage" else 7
    for t in range(min(first, max(len(y) - 1, 1)), len(y)):
        ys.append(y[t])
        fs.append(_fallback_path(y[:t], name, 1)[0])
    return np.asarray(ys, float), np.asarray(fs, float)


def _config(config: ForecastConfig | None, horizon: int, n_jobs: int | None) -> ForecastConfig:
    cfg = replace(config or ForecastConfig(), horizon=int(horizon))
    if n_jobs is not None:
        cfg = replace(cfg, n_jobs=int(n_jobs))
    if cfg.horizon < 1:
        raise ValueError("horizon must be at least 1")
    return cfg


def _state(prof: _Profile, name: str, q: dict) -> str:
    """What ``predict`` needs of a series besides its history, as JSON."""
    return json.dumps({
        "name": name, "label": name, "kind": prof.kind,
        "members": list(_members(name)),
        "count": bool(prof.count), "floor": float(prof.floor),
        "weekday": [float(v) for v in prof.weekday],
        "q": {"80": list(q[80]), "95": list(q[95]), "50": float(q[50]),
              "count": bool(q.get("count")), "round": bool(q.get("round")),
              "plain": bool(q.get("plain"))},
    }, allow_nan=True)


def load_state(text: str) -> dict:
    """A selection row's ``state`` (as ``select`` stores it) read back for ``predict``."""
    st = json.loads(text)
    q = st["q"]
    st["q"] = {80: tuple(q["80"]), 95: tuple(q["95"]), 50: q["50"], "count": q["count"],
               "round": q["round"], "plain": q.get("plain", False)}
    st["weekday"] = np.asarray(st["weekday"], float)
    return st


def select(
    series: pd.DataFrame,
    as_of: object,
    horizon: int = 28,
    *,
    config: ForecastConfig | None = None,
    n_jobs: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Backtest the candidates of every series of ``series`` (``unique_id, ds, y``) up to
    ``as_of`` and choose one: ``(selection, backtest_df)``. ``selection`` has one row per series
    (``SELECTION_COLUMNS``): the chosen model's label and ``state``, a JSON string with what
    ``predict`` needs besides the history (the model or ensemble members, the series kind, the
    conformal quantiles of its bands, the count flag, the scale floor and the weekday profile).
    ``backtest_df`` has the ``ml.forecast_backtest`` columns."""
    cfg = _config(config, horizon, n_jobs)
    end = _as_timestamp(as_of)
    as_of_date = end.date()
    groups, starts = _split(series, end)
    if not groups:
        return pd.DataFrame(columns=SELECTION_COLUMNS), pd.DataFrame(columns=BACKTEST_COLUMNS)
    profiles = _profiles(groups, starts, cfg)
    tests = _backtests(groups, starts, profiles, cfg)

    sel = []
    rows = []
    for uid in sorted(groups):
        prof = profiles[uid]
        if prof.kind == "short":
            name, q, row = _short_choice(as_of_date, groups[uid], prof, cfg)
            rows.append(row)
            sel.append((as_of_date, uid, name, _state(prof, name, q)))
            continue
        runs = tests[uid]
        scores = {nm: _score(*runs[nm], prof, cfg) for nm in prof.tested}

        def rank(nm):
            return round(scores[nm].key(cfg.select_on), 9), _simplicity(nm)

        # ensembles: the mean of the best two, three, ... candidates, scored like the others
        top = sorted(prof.candidates, key=rank)
        tested = list(prof.tested)
        for k in range(2, min(cfg.ensemble_top, len(top)) + 1):
            nm = f"Ensemble({'+'.join(sorted(top[:k], key=_simplicity))})"
            runs[nm] = (runs[top[0]][0], np.mean([runs[m][1] for m in top[:k]], axis=0))
            scores[nm] = _score(*runs[nm], prof, cfg)
            tested.append(nm)
        best = min([*prof.candidates, *tested[len(prof.tested):]], key=rank)
        y_b, f_b = runs[best]
        nf_b = _norm(f_b, cfg.scale_mode, prof.floor)
        q = _quantiles(y_b, f_b, nf_b, prof.count, _debias(prof, cfg))
        q["plain"] = scores[best].plain_median
        if prof.unstable:
            last = _quantiles(y_b[-1], f_b[-1], nf_b[-1], prof.count)
            for level in LEVELS:
                q[level] = (min(q[level][0], last[level][0]), max(q[level][1], last[level][1]))
        sel.append((as_of_date, uid, best, _state(prof, best, q)))
        reason = _reason(prof, best, scores)
        for nm in tested:
            s = scores[nm]
            rows.append((as_of_date, uid, nm, _num(s.mase), _num(s.rmsse),
                         _num(s.smape), s.cov80, s.cov95, nm == best,
                         reason if nm == best else _other_reason(nm, best, scores, prof)))
    return (pd.DataFrame(sel, columns=SELECTION_COLUMNS),
            pd.DataFrame(rows, columns=BACKTEST_COLUMNS))


def predict(
    series: pd.DataFrame,
    as_of: object,
    selection: pd.DataFrame,
    horizon: int = 28,
    *,
    config: ForecastConfig | None = None,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Forecast the ``horizon`` days after ``as_of`` with the models ``selection`` (from
    ``select``, possibly on an earlier day) chose: each is refitted on the history up to
    ``as_of``, without a backtest, and keeps the bands' quantiles of its selection. Series
    without a selection row are left out. Returns the ``ml.sales_forecast`` columns."""
    cfg = _config(config, horizon, n_jobs)
    end = _as_timestamp(as_of)
    as_of_date = end.date()
    groups, starts = _split(series, end)
    states = {str(r.series_id): load_state(r.state) for r in selection.itertuples(index=False)
              if str(r.series_id) in groups}
    if not states:
        return pd.DataFrame(columns=FORECAST_COLUMNS)
    jobs: dict[str, list[tuple[str, int]]] = {}
    for uid in sorted(states):
        for member in states[uid]["members"]:
            jobs.setdefault(member, []).append((uid, len(groups[uid])))
    days = pd.date_range(end + pd.Timedelta(days=1), periods=cfg.horizon, freq="D")
    weekday = {uid: st["weekday"] for uid, st in states.items()}
    paths = _paths(groups, starts, jobs, weekday, cfg)

    out = []
    day_list = [d.date() for d in days]
    for uid in sorted(states):
        st = states[uid]
        f = np.mean([paths[(uid, len(groups[uid]), m)] for m in st["members"]], axis=0)
        nf = _norm(f, cfg.scale_mode, st["floor"])
        out.append(pd.DataFrame({
            "as_of": as_of_date, "series_id": uid, "ds": day_list, "yhat": f,
            **_bands(f, nf, st["q"]), "model": st["label"],
        }))
    return pd.concat(out, ignore_index=True)[FORECAST_COLUMNS]


def forecast(
    series: pd.DataFrame,
    as_of: object,
    horizon: int = 28,
    *,
    config: ForecastConfig | None = None,
    n_jobs: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Forecast every series of ``series`` (``unique_id, ds, y``) for the ``horizon`` days after
    ``as_of``; returns ``(forecast_df, backtest_df)`` with the ``ml.sales_forecast`` and
    ``ml.forecast_backtest`` columns (``as_of`` and ``ds`` as ``datetime.date``): ``select``
    then ``predict`` on the same day.

    Only history up to ``as_of`` (inclusive) is used; days missing inside a series count as
    zero. Deterministic: the same input gives the same output.
    """
    selection, bt = select(series, as_of, horizon, config=config, n_jobs=n_jobs)
    if not len(selection):
        return pd.DataFrame(columns=FORECAST_COLUMNS), bt
    fc = predict(series, as_of, selection, horizon, config=config, n_jobs=n_jobs)
    return fc, bt


def _num(x: float) -> float:
    return float(x) if np.isfinite(x) else float("nan")


def _split(series: pd.DataFrame, end: pd.Timestamp):
    ds = pd.to_datetime(series["ds"]).dt.normalize()
    keep = (ds <= end).to_numpy()
    s = pd.DataFrame({
        "unique_id": series["unique_id"].astype(str).to_numpy()[keep],
        "ds": ds.to_numpy()[keep],
        "y": pd.to_numeric(series["y"].astype(float), errors="coerce").fillna(0.0)
        .clip(lower=0.0).to_numpy()[keep],
    })
    groups, starts = {}, {}
    for uid, g in s.groupby("unique_id", sort=True):
        first = g["ds"].min()
        y = np.zeros((end - first).days + 1)
        np.add.at(y, (g["ds"] - first).dt.days.to_numpy(), g["y"].to_numpy(float))
        groups[uid], starts[uid] = y, first
    return groups, starts


def _short_choice(as_of_date, y: np.ndarray, prof: _Profile, cfg: ForecastConfig):
    name = "SeasonalWindowAverage" if len(y) >= 21 and prof.adi < ADI_CUTOFF else "WindowAverage"
    ys, fs = _fallback_errors(y, name)
    nf = _norm(fs, cfg.scale_mode, prof.floor)
    e = (ys - fs) / nf
    q = {}
    for level in LEVELS:
        widened = 100 - (100 - level) / 2
        lo, hi = _conformal_q(e, widened) if len(e) >= 5 else (-math.inf, math.inf)
        if not (np.isfinite(lo) and np.isfinite(hi)):
            top = float(np.max(y)) if len(y) else 1.0
            mid = float(np.mean(_norm(np.full(1, np.mean(y) if len(y) else 0.0), cfg.scale_mode,
                                      prof.floor)))
            lo, hi = -top / mid, top / mid
        q[level] = (lo * cfg.fallback_widen, hi * cfg.fallback_widen)
    # counts: the bands rounded outward to whole numbers, the median to the nearest one
    q.update({50: _median_q(e), "count": False, "round": prof.count})
    mase = rmsse = smape = math.nan
    if len(ys):
        med = _bands(fs, nf, q)["yhat_p50"]
        mase = float(np.mean(np.abs(ys - med))) / prof.scale
        rmsse = float(np.sqrt(np.mean(np.square(ys - fs)))) / prof.scale2
        smape = _smape(ys, fs)
    reason = (
        f"short history ({prof.n} days; model selection needs {cfg.min_train + 2 * cfg.horizon}): "
        f"{name} of the last {min(28, prof.n)} days, bands from its one-step errors at widened "
        f"levels (90%/97.5% for 80/95) x{cfg.fallback_widen:g}; MASE (median), RMSSE and sMAPE "
        f"are one-step, in-sample"
    )
    return name, q, (as_of_date, prof.uid, name, mase, rmsse, smape, math.nan, math.nan, True,
                     reason)


def _reason(prof: _Profile, best: str, scores: dict[str, _Score]) -> str:
    ref = scores.get("SeasonalNaive")
    earlier = len(prof.origins) - prof.windows
    windows = f"{prof.windows} backtest windows" + (
        f" and {earlier} on the same weeks of earlier years" if earlier else "")
    median = "median = mean" if scores[best].plain_median else "median"
    text = (f"{prof.kind} (ADI {prof.adi:.2f}, CV² {prof.cv2:.2f}), {windows}: "
            f"{best} MASE {scores[best].mase:.3f} ({median}), "
            f"RMSSE {scores[best].rmsse:.3f} (mean)")
    if ref is not None and best != "SeasonalNaive":
        text += f" vs SeasonalNaive {ref.mase:.3f}, {ref.rmsse:.3f}"
    if prof.unstable:
        text = (f"unstable: last 28 days at {prof.shift:.2f}x the level of the 84 days before; "
                f"adaptive models only, bands at least as wide as the last window's errors; {text}")
    elif prof.kind == "smooth" and not prof.yearly:
        text += "; yearly models not tried (less than two years of history)"
    return text


def _other_reason(name: str, best: str, scores: dict[str, _Score], prof: _Profile) -> str:
    if name not in prof.candidates and not name.startswith("Ensemble("):
        return (f"reference only for {prof.kind} series: MASE {scores[name].mase:.3f} vs "
                f"{best} {scores[best].mase:.3f}")
    return f"not chosen: MASE {scores[name].mase:.3f} vs {best} {scores[best].mase:.3f}"


# --------------------------------------------------------------------------- presentation

def backtest_summary_markdown(backtest: pd.DataFrame, *, top_series: str = TOTAL) -> str:
    """A markdown summary of a ``forecast_backtest`` frame: per chosen model, how many series
    use it and their mean backtest MASE (of the median), RMSSE (of the mean), sMAPE and interval
    coverage; then the rows of ``top_series``."""
    if backtest is None or not len(backtest):
        return "_no backtest rows_"
    chosen = backtest[backtest["chosen"].astype(bool)]
    ref = backtest[backtest["model"] == REFERENCE_MODEL].set_index("series_id")["mase"]
    lines = [
        "| chosen model | series | mean MASE | mean MASE of SeasonalNaive | mean RMSSE | "
        "mean sMAPE | 80% coverage | 95% coverage |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def fmt(x: float, pct: bool = False) -> str:
        if x is None or not np.isfinite(x):
            return "–"
        return f"{x * 100:.0f}%" if pct else f"{x:.3f}"

    groups = sorted(chosen.groupby("model"), key=lambda kv: (-len(kv[1]), kv[0]))
    for name, g in groups + [("all", chosen)]:
        sn = ref.reindex(g["series_id"]).to_numpy(float)
        lines.append(
            f"| {'**all**' if name == 'all' else name} | {len(g)} | {fmt(g['mase'].mean())} | "
            f"{fmt(np.nanmean(sn) if np.isfinite(sn).any() else np.nan)} | "
            f"{fmt(g['rmsse'].mean())} | {fmt(g['smape'].mean())} | "
            f"{fmt(g['coverage_80'].mean(), True)} | {fmt(g['coverage_95'].mean(), True)} |"
        )
    rows = backtest[backtest["series_id"] == top_series]
    if len(rows):
        lines += ["", f"**{top_series}** ({series_unit(top_series)}; MASE of the median "
                  f"forecast, RMSSE of the mean):", "",
                  "| model | MASE | RMSSE | sMAPE | 80% coverage | 95% coverage | chosen |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- |"]
        for r in rows.itertuples(index=False):
            lines.append(f"| {r.model} | {fmt(r.mase)} | {fmt(r.rmsse)} | {fmt(r.smape)} | "
                         f"{fmt(r.coverage_80, True)} | {fmt(r.coverage_95, True)} | "
                         f"{'yes' if r.chosen else ''} |")
        why = rows[rows["chosen"].astype(bool)]["reason"]
        if len(why):
            lines += ["", f"Why: {why.iloc[0]}"]
    return "\n".join(lines)


def forecast_chart_png(
    series: pd.DataFrame,
    forecast_df: pd.DataFrame,
    series_id: str = TOTAL,
    *,
    history_days: int = 120,
    title: str | None = None,
    width: float = 9.0,
    height: float = 3.6,
) -> bytes:
    """PNG bytes of one series: the last ``history_days`` of actuals (``series``: ``unique_id,
    ds, y``) and its forecast with the 80% and 95% bands (``forecast_df``: the
    ``ml.sales_forecast`` columns). Drawn with matplotlib's Agg canvas, no pyplot state."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hist = series[series["unique_id"].astype(str) == series_id]
    hist = hist.assign(ds=pd.to_datetime(hist["ds"])).sort_values("ds")
    fc = forecast_df[forecast_df["series_id"].astype(str) == series_id]
    fc = fc.assign(ds=pd.to_datetime(fc["ds"])).sort_values("ds")
    if len(fc):
        hist = hist[hist["ds"] > fc["ds"].min() - pd.Timedelta(days=history_days + 1)]
    elif len(hist):
        hist = hist[hist["ds"] > hist["ds"].max() - pd.Timedelta(days=history_days)]

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(hist["ds"], hist["y"].astype(float), color="#333333", lw=1.0, label="actual")
    if len(fc):
        ax.fill_between(fc["ds"], fc["yhat_lo_95"], fc["yhat_hi_95"], color="#1f77b4", alpha=0.15,
                        lw=0, label="95% band")
        ax.fill_between(fc["ds"], fc["yhat_lo_80"], fc["yhat_hi_80"], color="#1f77b4", alpha=0.3,
                        lw=0, label="80% band")
        ax.plot(fc["ds"], fc["yhat"], color="#1f77b4", lw=1.6,
                label=f"forecast ({fc['model'].iloc[0]})")
    unit = series_unit(series_id)
    ax.set_title(title or f"{series_id}: daily {unit}, actuals and forecast")
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.autofmt_xdate()
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
