"""Daily sales forecasts with a rolling-origin backtest per series (``ml.sales_forecast``,
``ml.forecast_backtest``).

What is forecast
----------------
* ``TOTAL``: the shop's revenue per day (``marts.daily_sales.revenue``, in the shop's currency);
* every sku with enough history: units sold per day (``marts.product_daily_sales.units``, zero
  days filled in), the figure stock planning needs.

``build_series`` turns the marts into the long frame ``(unique_id, ds, y)`` that ``forecast``
takes; ``series_unit`` names the unit of a series. ``yhat`` is the expected value (a mean, so
that 28 days of ``yhat`` add up to the expected units of the period), the bands are central
80% and 95% prediction intervals.

How a model is chosen
---------------------
Each series is classified on its last year (Syntetos-Boylan: ADI, the mean interval between
selling days, and CV², the squared coefficient of variation of the non-zero days):

* *smooth* (ADI < 1.32): weekly seasonal naive and ETS(A,N,A) with a weekly season, fitted on
  the last ``light_input_size`` days; the largest series (``TOTAL`` and the ``heavy_top`` skus
  by recent volume) also try the Theta method (weekly deseasonalisation), MSTL with weekly and
  yearly seasonality when two years precede the first backtest origin, and the mean of those
  (``Ensemble``);
* *intermittent* (ADI >= 1.32): Croston (SBA), ADIDA, IMAPA, TSB and their mean; their flat
  forecasts are spread over the week with the series' weekday profile (shrunk towards the
  profile of all skus), and the weekly seasonal naive forecast is backtested as a yardstick only;
* *unstable*: the last four weeks at under half or over twice the level of the twelve weeks
  before, significantly for a count (a launch, a stockout, a discontinuation): only adaptive
  simple models compete (seasonal naive, simple and seasonal exponential smoothing, TSB) and the
  bands are at least as wide as the last backtest window's errors;
* *short* (fewer than ``min_train + 2 * horizon`` days): no model selection; a window average of
  the last 28 days (by weekday once three weeks exist), with bands from its own one-step errors
  at widened levels, times ``fallback_widen``.

``statsforecast``'s ``cross_validation`` fits every candidate at up to ``n_windows`` origins,
``horizon`` days apart, each forecasting the next ``horizon`` days. The candidate with the
lowest mean MASE over the windows wins (ties go to the simpler model); the reason is recorded
per series.

Intervals
---------
Model-based intervals of these methods are mis-calibrated on retail data (the intermittent ones
have none), so both bands are conformal: quantiles of the chosen model's backtest errors,
added to the point forecast. Errors are scaled by the square root of the forecast (sales
counts and revenue have a variance roughly proportional to their level), so busy days get wider
bands than quiet ones. The backtest's coverage figures are honest: each window's band is built
from the errors of the *other* windows only. Bands and forecasts are clipped at zero and
ordered ``lo95 <= lo80 <= yhat <= hi80 <= hi95``.

MASE is scaled by the in-sample MAE of the weekly seasonal naive forecast (``|y[t] - y[t-7]|``)
over the history before the first backtest origin; sMAPE is ``2|y - f| / (|y| + |f|)`` with 0/0
counted as 0, as a fraction; coverage is the share of actual days inside the band.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field, replace
from typing import Iterable

import numpy as np
import pandas as pd

TOTAL = "TOTAL"
LEVELS = (80, 95)
FORECAST_COLUMNS = [
    "as_of", "series_id", "ds", "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95",
    "model",
]
BACKTEST_COLUMNS = [
    "as_of", "series_id", "model", "mase", "smape", "coverage_80", "coverage_95", "chosen",
    "reason",
]
ADI_CUTOFF = 1.32

SMOOTH_MODELS = ("SeasonalNaive", "ETS")
HEAVY_MODELS = ("Theta", "MSTL", "Ensemble")
INTERMITTENT_MODELS = ("CrostonSBA", "ADIDA", "IMAPA", "TSB", "Ensemble")
UNSTABLE_MODELS = ("SeasonalNaive", "SeasonalES", "SES", "TSB")
# Always backtested, as the yardstick, even where it may not be chosen.
REFERENCE_MODEL = "SeasonalNaive"
FALLBACK_MODELS = ("WindowAverage", "SeasonalWindowAverage")
# Flat forecasts get the series' weekday profile.
FLAT_MODELS = ("CrostonSBA", "ADIDA", "IMAPA", "TSB", "SES")
# Simplest first: ties in the backtest go to the earlier name.
SIMPLICITY = (
    "SeasonalNaive", "WindowAverage", "SeasonalWindowAverage", "SES", "SeasonalES", "CrostonSBA",
    "TSB", "ADIDA", "IMAPA", "ETS", "Theta", "MSTL", "Ensemble",
)


@dataclass(frozen=True)
class ForecastConfig:
    """Knobs of ``forecast``; the defaults are the ones the benchmark measures."""

    horizon: int = 28
    n_windows: int = 4
    min_train: int = 56
    heavy_top: int = 25
    light_input_size: int | None = 364
    yearly_min_days: int = 2 * 365 + 28
    n_jobs: int = 1
    unstable_ratio: float = 2.0
    fallback_widen: float = 1.25
    scale_mode: str = "sqrt"
    weekday_prior: float = 50.0
    ets_model: str = "ANA"
    theta_optimized: bool = False
    smooth_models: tuple[str, ...] = SMOOTH_MODELS
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

def _model(name: str, cfg: ForecastConfig, n: int | None = None):
    from statsforecast import models as m

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
    if name in ("ETS", "Theta") and cfg.light_input_size:
        return cfg.light_input_size
    return None


# --------------------------------------------------------------------------- profile

@dataclass
class _Profile:
    uid: str
    n: int
    adi: float
    cv2: float
    kind: str  # smooth, intermittent, short
    windows: int = 0
    heavy: bool = False
    yearly: bool = False
    unstable: bool = False
    shift: float = 1.0
    candidates: tuple[str, ...] = ()
    tested: tuple[str, ...] = ()
    members: tuple[str, ...] = ()
    scale: float = 1.0
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


def _weekday_sums(y: np.ndarray, start: pd.Timestamp) -> np.ndarray:
    k = min(len(y), 364)
    dow = (start.dayofweek + np.arange(len(y) - k, len(y))) % 7
    return np.bincount(dow, weights=y[-k:], minlength=7)


def _shrunk_profile(own: np.ndarray, pooled: np.ndarray, strength: float) -> np.ndarray:
    share = (own + strength * pooled) / (own.sum() + strength)
    return 7.0 * share


def _shift(y: np.ndarray, uid: str, ratio: float) -> tuple[bool, float]:
    """Level shift of the last 28 days against the 84 before: (significant, ratio)."""
    if len(y) < 112:
        return False, 1.0
    recent, before = float(np.sum(y[-28:])), float(np.sum(y[-112:-28]))
    shift = (recent / 28 + 1e-9) / (before / 84 + 1e-9)
    if not (shift > ratio or shift < 1.0 / ratio) or recent + before <= 0:
        return False, shift
    if uid == TOTAL:
        return True, shift
    # Units come in multi-packs: a dispersion of 2 over a binomial split of the 112 days' units.
    n = recent + before
    z = (recent - 0.25 * n) / math.sqrt(n * 0.25 * 0.75 * 2.0)
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
        prof.scale = _snaive_scale(y[: n - windows * h] if windows else y)
        prof.floor = _floor(y)
        if uid == TOTAL:
            prof.weekday = _shrunk_profile(sums[uid], np.full(7, 1 / 7), 0.0)
        else:
            prof.weekday = _shrunk_profile(sums[uid], pooled, cfg.weekday_prior)
        if kind != "short":
            prof.unstable, prof.shift = _shift(y, uid, cfg.unstable_ratio)
        out[uid] = prof
        if kind == "smooth":
            volume[uid] = float(np.mean(y[-91:]))
    ranked = [uid for uid, _ in sorted(volume.items(), key=lambda kv: (-kv[1], kv[0]))]
    heavy = set(ranked[: cfg.heavy_top]) | ({TOTAL} & set(volume))
    for uid, prof in out.items():
        if prof.kind == "short":
            continue
        if prof.unstable:
            cands = list(cfg.unstable_models)
        elif prof.kind == "intermittent":
            cands = list(cfg.intermittent_models)
        else:
            cands = list(cfg.smooth_models)
            if uid in heavy:
                prof.heavy = True
                prof.yearly = prof.n - prof.windows * h >= cfg.yearly_min_days
                cands += [c for c in cfg.heavy_models if c != "MSTL" or prof.yearly]
        base = [c for c in cands if c != "Ensemble"]
        if "Ensemble" in cands:
            prof.members = tuple(c for c in base if c != "SeasonalNaive")
            if len(prof.members) < 2:
                cands.remove("Ensemble")
        prof.candidates = tuple(dict.fromkeys(c for c in cands if c != "Ensemble")) + (
            ("Ensemble",) if "Ensemble" in cands else ())
        prof.tested = tuple(dict.fromkeys((REFERENCE_MODEL, *prof.candidates)))
    return out


def _floor(y: np.ndarray) -> float:
    pos = y[y > 0]
    return float(np.mean(pos)) * 0.05 + 1e-6 if len(pos) else 1.0


def _label(name: str, prof: _Profile) -> str:
    return f"Ensemble({'+'.join(prof.members)})" if name == "Ensemble" else name


# --------------------------------------------------------------------------- backtest

def _frame(groups: dict[str, np.ndarray], starts: dict[str, pd.Timestamp], uids: Iterable[str],
           last: int | None = None) -> pd.DataFrame:
    parts = []
    for uid in uids:
        y = groups[uid]
        ds = pd.date_range(starts[uid], periods=len(y), freq="D")
        if last is not None and len(y) > last:
            y, ds = y[-last:], ds[-last:]
        parts.append(pd.DataFrame({"unique_id": uid, "ds": ds, "y": y}))
    return pd.concat(parts, ignore_index=True)


def _adjust(name: str, f: np.ndarray, dow: np.ndarray, prof: _Profile) -> np.ndarray:
    f = np.clip(np.where(np.isfinite(f), f, np.nan), 0.0, None)
    return f * prof.weekday[dow] if name in FLAT_MODELS else f


def _backtests(groups, starts, profiles: dict[str, _Profile], cfg: ForecastConfig):
    """``{uid: {model: (y[W, h], f[W, h])}}`` from rolling-origin cross-validation."""
    from statsforecast import StatsForecast

    jobs: dict[tuple, list[str]] = {}
    for uid, prof in profiles.items():
        for name in prof.tested:
            if name != "Ensemble":
                jobs.setdefault((name, prof.windows, _limited(name, cfg)), []).append(uid)
    merged: dict[tuple, list[str]] = {}
    for (name, windows, size), uids in sorted(jobs.items(), key=lambda kv: str(kv[0])):
        merged.setdefault((windows, size, tuple(uids)), []).append(name)
    out: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
    h = cfg.horizon
    for (windows, size, uids), names in merged.items():
        sf = StatsForecast(models=[_model(nm, cfg) for nm in names], freq="D", n_jobs=cfg.n_jobs,
                           fallback_model=_model("SeasonalNaive", cfg))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cv = sf.cross_validation(h=h, df=_frame(groups, starts, uids), n_windows=windows,
                                     step_size=h, input_size=size)
        cv = cv.sort_values(["unique_id", "cutoff", "ds"], kind="stable")
        y = cv["y"].to_numpy(float).reshape(-1, windows, h)
        dow = cv["ds"].dt.dayofweek.to_numpy().reshape(-1, windows, h)
        uid_order = cv["unique_id"].to_numpy()[:: windows * h]
        for name in names:
            f = cv[name].to_numpy(float).reshape(-1, windows, h)
            for i, uid in enumerate(uid_order):
                out.setdefault(uid, {})[name] = (y[i], _adjust(name, f[i], dow[i], profiles[uid]))
    for uid, prof in profiles.items():
        if "Ensemble" in prof.tested:
            runs = out[uid]
            y = runs[prof.members[0]][0]
            out[uid]["Ensemble"] = (y, np.mean([runs[m][1] for m in prof.members], axis=0))
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


@dataclass
class _Score:
    mase: float
    smape: float
    cov80: float
    cov95: float


def _smape(y: np.ndarray, f: np.ndarray) -> float:
    denom = np.abs(y) + np.abs(f)
    return float(np.mean(np.where(denom > 0, 2 * np.abs(y - f) / np.where(denom > 0, denom, 1.0), 0.0)))


def _score(y: np.ndarray, f: np.ndarray, prof: _Profile, cfg: ForecastConfig) -> _Score:
    if not np.all(np.isfinite(f)):
        return _Score(math.inf, math.inf, math.nan, math.nan)
    mase = float(np.mean(np.mean(np.abs(y - f), axis=1) / prof.scale))
    nf = _norm(f, cfg.scale_mode, prof.floor)
    e = (y - f) / nf
    cov = {}
    for level in LEVELS:
        hits = []
        for k in range(y.shape[0]):
            lo, hi = _conformal_q(np.delete(e, k, axis=0).ravel(), level)
            lo_b = np.maximum(f[k] + lo * nf[k], 0.0)
            hits.append((y[k] >= lo_b - 1e-9) & (y[k] <= f[k] + hi * nf[k] + 1e-9))
        cov[level] = float(np.mean(np.concatenate(hits)))
    return _Score(mase, _smape(y, f), cov[80], cov[95])


# --------------------------------------------------------------------------- forecast

def _fit_predict(groups, starts, needs: dict[str, list[str]], profiles, cfg: ForecastConfig,
                 dow: np.ndarray) -> dict[tuple[str, str], np.ndarray]:
    from statsforecast import StatsForecast

    out = {}
    h = cfg.horizon
    for name, uids in sorted(needs.items()):
        if name in FALLBACK_MODELS:
            for uid in uids:
                out[(uid, name)] = _fallback_path(groups[uid], name, h)
            continue
        sf = StatsForecast(models=[_model(name, cfg)], freq="D", n_jobs=cfg.n_jobs,
                           fallback_model=_model("SeasonalNaive", cfg))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fc = sf.forecast(h=h, df=_frame(groups, starts, uids, last=_limited(name, cfg)))
        fc = fc.sort_values(["unique_id", "ds"], kind="stable")
        vals = fc[name].to_numpy(float).reshape(-1, h)
        for uid, v in zip(fc["unique_id"].to_numpy()[::h], vals):
            v = _adjust(name, v, dow, profiles[uid])
            out[(uid, name)] = np.where(np.isfinite(v), v, 0.0)
    return out


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
    ``ml.forecast_backtest`` columns (``as_of`` and ``ds`` as ``datetime.date``).

    Only history up to ``as_of`` (inclusive) is used; days missing inside a series count as
    zero. Deterministic: the same input gives the same output.
    """
    cfg = replace(config or ForecastConfig(), horizon=int(horizon))
    if n_jobs is not None:
        cfg = replace(cfg, n_jobs=int(n_jobs))
    if cfg.horizon < 1:
        raise ValueError("horizon must be at least 1")
    end = _as_timestamp(as_of)
    as_of_date = end.date()
    groups, starts = _split(series, end)
    if not groups:
        return pd.DataFrame(columns=FORECAST_COLUMNS), pd.DataFrame(columns=BACKTEST_COLUMNS)
    profiles = _profiles(groups, starts, cfg)
    tests = _backtests(groups, starts, profiles, cfg)

    chosen: dict[str, str] = {}
    quant: dict[str, dict[int, tuple[float, float]]] = {}
    rows = []
    for uid in sorted(groups):
        prof = profiles[uid]
        if prof.kind == "short":
            name, q, row = _short_choice(as_of_date, groups[uid], prof, cfg)
            chosen[uid], quant[uid] = name, q
            rows.append(row)
            continue
        runs = tests[uid]
        scores = {nm: _score(*runs[nm], prof, cfg) for nm in prof.tested}
        best = min(prof.candidates,
                   key=lambda nm: (round(scores[nm].mase, 9), SIMPLICITY.index(nm)))
        chosen[uid] = best
        y_b, f_b = runs[best]
        e = (y_b - f_b) / _norm(f_b, cfg.scale_mode, prof.floor)
        q = {level: _conformal_q(e.ravel(), level) for level in LEVELS}
        if prof.unstable:
            for level in LEVELS:
                lo_l, hi_l = _conformal_q(e[-1], level)
                q[level] = (min(q[level][0], lo_l), max(q[level][1], hi_l))
        quant[uid] = q
        reason = _reason(prof, best, scores)
        for nm in prof.tested:
            s = scores[nm]
            rows.append((as_of_date, uid, _label(nm, prof), _num(s.mase), _num(s.smape), s.cov80,
                         s.cov95, nm == best,
                         reason if nm == best else _other_reason(nm, best, scores, prof)))

    needs: dict[str, list[str]] = {}
    for uid, name in chosen.items():
        for member in (profiles[uid].members if name == "Ensemble" else (name,)):
            needs.setdefault(member, []).append(uid)
    days = pd.date_range(end + pd.Timedelta(days=1), periods=cfg.horizon, freq="D")
    dow = days.dayofweek.to_numpy()
    paths = _fit_predict(groups, starts, needs, profiles, cfg, dow)

    out = []
    day_list = [d.date() for d in days]
    for uid in sorted(groups):
        prof, name = profiles[uid], chosen[uid]
        members = prof.members if name == "Ensemble" else (name,)
        f = np.mean([paths[(uid, m)] for m in members], axis=0)
        nf = _norm(f, cfg.scale_mode, prof.floor)
        (l80, h80), (l95, h95) = quant[uid][80], quant[uid][95]
        lo80 = np.minimum(np.maximum(f + l80 * nf, 0.0), f)
        hi80 = np.maximum(f + h80 * nf, f)
        lo95 = np.minimum(np.maximum(f + l95 * nf, 0.0), lo80)
        hi95 = np.maximum(f + h95 * nf, hi80)
        out.append(pd.DataFrame({
            "as_of": as_of_date, "series_id": uid, "ds": day_list, "yhat": f,
            "yhat_lo_80": lo80, "yhat_hi_80": hi80, "yhat_lo_95": lo95, "yhat_hi_95": hi95,
            "model": _label(name, prof),
        }))
    fc = pd.concat(out, ignore_index=True)[FORECAST_COLUMNS]
    bt = pd.DataFrame(rows, columns=BACKTEST_COLUMNS)
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
    mase = smape = math.nan
    if len(ys):
        mase = float(np.mean(np.abs(ys - fs))) / prof.scale
        smape = _smape(ys, fs)
    reason = (
        f"short history ({prof.n} days; model selection needs {cfg.min_train + 2 * cfg.horizon}): "
        f"{name} of the last {min(28, prof.n)} days, bands from its one-step errors at widened "
        f"levels (90%/97.5% for 80/95) x{cfg.fallback_widen:g}; MASE and sMAPE are one-step, "
        f"in-sample"
    )
    return name, q, (as_of_date, prof.uid, name, mase, smape, math.nan, math.nan, True, reason)


def _reason(prof: _Profile, best: str, scores: dict[str, _Score]) -> str:
    ref = scores.get("SeasonalNaive")
    text = (f"{prof.kind} (ADI {prof.adi:.2f}, CV² {prof.cv2:.2f}), {prof.windows} backtest "
            f"windows: {_label(best, prof)} MASE {scores[best].mase:.3f}")
    if ref is not None and best != "SeasonalNaive":
        text += f" vs SeasonalNaive {ref.mase:.3f}"
    if prof.unstable:
        text = (f"unstable: last 28 days at {prof.shift:.2f}x the level of the 84 days before; "
                f"adaptive models only, bands at least as wide as the last window's errors; {text}")
    elif prof.heavy and not prof.yearly:
        text += "; MSTL not tried (less than two years before the first backtest origin)"
    return text


def _other_reason(name: str, best: str, scores: dict[str, _Score], prof: _Profile) -> str:
    if name not in prof.candidates:
        return (f"reference only for {prof.kind} series: MASE {scores[name].mase:.3f} vs "
                f"{_label(best, prof)} {scores[best].mase:.3f}")
    return f"not chosen: MASE {scores[name].mase:.3f} vs {_label(best, prof)} {scores[best].mase:.3f}"


# --------------------------------------------------------------------------- presentation

def backtest_summary_markdown(backtest: pd.DataFrame, *, top_series: str = TOTAL) -> str:
    """A markdown summary of a ``forecast_backtest`` frame: per chosen model, how many series
    use it and their mean backtest MASE, sMAPE and interval coverage; then the rows of
    ``top_series``."""
    if backtest is None or not len(backtest):
        return "_no backtest rows_"
    chosen = backtest[backtest["chosen"].astype(bool)]
    ref = backtest[backtest["model"] == REFERENCE_MODEL].set_index("series_id")["mase"]
    lines = [
        "| chosen model | series | mean MASE | mean MASE of SeasonalNaive | mean sMAPE | "
        "80% coverage | 95% coverage |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
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
            f"{fmt(g['smape'].mean())} | {fmt(g['coverage_80'].mean(), True)} | "
            f"{fmt(g['coverage_95'].mean(), True)} |"
        )
    rows = backtest[backtest["series_id"] == top_series]
    if len(rows):
        lines += ["", f"**{top_series}** ({series_unit(top_series)}):", "",
                  "| model | MASE | sMAPE | 80% coverage | 95% coverage | chosen |",
                  "| --- | ---: | ---: | ---: | ---: | --- |"]
        for r in rows.itertuples(index=False):
            lines.append(f"| {r.model} | {fmt(r.mase)} | {fmt(r.smape)} | "
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
