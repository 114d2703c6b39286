"""Every product of the catalogue gets a forecast or a reason (``ml.forecast_coverage``).

``forecast.build_series`` models a sku only once it has enough history (56 days since its first
sale, 8 selling days, a sale in the last 90 days). ``fallback_forecast`` covers every other sku
of the catalogue (``raw.products``, with its category from ``raw.inventory`` where it has one)
so that stock planning never silently misses a product:

* **RecentRate**: a sku that has sold. Its rate of *selling days* over its recent window (the
  last ``recent_days``, or the days since its first sale if fewer), times its mean units per
  selling day there, spread over the week with its category's weekday shape (the shop's where
  it has no category). With fewer than ``min_recent_sale_days`` selling days in that window, the
  last ``long_days`` are used instead when they give the lower rate (a product that sells twice a
  year is not given half a sale per 91 days; one whose sales faded keeps its recent rate; on
  Superstore per product, three origins, the fallbacks' 28-day units went from +90%, +142% and
  +69% above the actual ones to +5%, +36% and -16%). A
  window that opens with the sku's first sale counts ``listing_days`` more unsold days: it starts
  on a sale by construction, and the rate from the first sale on overstated what new products
  went on to sell (Online Retail, three origins a quarter apart: the fallbacks' 28-day units
  +17%, +28% and +26% above the actual ones without it, -11%, +3% and +2% with it). A window
  shorter than ``min_exposure_days`` is topped up with the category's rate for the missing days
  (a product first sold yesterday does not get yesterday's units as its daily rate).
* **CategoryProfile**: a sku that never sold, in a category with selling skus: the median rate
  and median units per selling day of the category's skus that sold in the last
  ``recent_days``, with the category's weekday shape.
* **none**: no forecast rows, only the coverage row saying why: a sku that never sold and has
  no category (or a category where nothing sold), and a sku that sold but is no longer in the
  catalogue (removed from the core: discontinued). A catalogue sku that sold once but not in
  the last ``recent_days`` (inactive) is kept as a RecentRate fallback: its rate over the last
  ``recent_days`` is zero, so its forecast is close to zero with a band that still allows a
  sale, and its coverage row names the last sale.

Bands are whole units and honestly wide: the daily number of selling days is Poisson with a rate
that is itself uncertain, Gamma distributed (a sku's own: Jeffreys' ``Gamma(0.5 + selling days,
exposure days)``; a category's: fitted by moments to the spread of its skus' rates), and each
selling day sells the sku's (the category's) mean units per selling day. A day's units are then
negative binomial with that mean and variance (moment-matched: ``mean * units per selling day +
mean² / Gamma shape``; exactly Poisson-gamma for one unit a sale). Each band holds its level of
that predictive distribution as a whole: the lower bound is the lower tail's quantile, the upper
one the smallest count bringing the mass between them to the level (equal tails would over-cover
a count: a lower bound of 0 holds every zero day). ``yhat`` is the predictive mean, ``yhat_p50``
its median.

Plain Python (pandas, numpy, scipy): no Dagster.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np
import pandas as pd
from scipy.stats import nbinom

from salesflow.forecast import FORECAST_COLUMNS, TOTAL, shrunk_profile

COVERAGE_COLUMNS = ["as_of", "series_id", "status", "method", "reason", "history_days", "sale_days",
                    "last_sale"]
RECENT_RATE = "RecentRate"
CATEGORY_PROFILE = "CategoryProfile"


@dataclass(frozen=True)
class FallbackConfig:
    """Knobs of ``fallback_forecast``. The history thresholds repeat ``build_series``' defaults:
    they only word the reasons."""

    recent_days: int = 91
    long_days: int = 364
    min_recent_sale_days: int = 3
    listing_days: int = 7
    min_exposure_days: int = 14
    weekday_prior: float = 50.0
    min_history: int = 56
    min_sale_days: int = 8
    inactive_days: int = 90


@dataclass
class _Rate:
    """Belief about a sku's daily units: their mean (on an average weekday), the Gamma shape of
    the rate's uncertainty (its squared coefficient of variation is ``1 / shape``), units per
    selling day, the weekday shape and selling days per day."""

    shape: float
    mean: float
    size: float
    weekday: np.ndarray
    events: float


def _catalogue(catalogue: pd.DataFrame | None) -> pd.DataFrame:
    if catalogue is None or not len(catalogue):
        return pd.DataFrame({"sku": pd.Series(dtype=object), "category": pd.Series(dtype=object)})
    cat = pd.DataFrame({"sku": catalogue["sku"].astype(str),
                        "category": catalogue["category"] if "category" in catalogue else None})
    cat["category"] = cat["category"].where(cat["category"].notna(), None)
    cat["category"] = [c.strip() if isinstance(c, str) and c.strip() else None for c in cat["category"]]
    return cat.drop_duplicates("sku", keep="first").reset_index(drop=True)


def _sku_stats(product_daily: pd.DataFrame | None, end: pd.Timestamp, cfg: FallbackConfig) -> pd.DataFrame:
    """Per sku that sold up to ``end``: first and last sale, selling days and units (all time and
    over its rate's window) and the window's length in days. The window is the last
    ``recent_days`` (or the days since the first sale, if fewer); with fewer than
    ``min_recent_sale_days`` selling days in it, the last ``long_days``."""
    cols = ["first", "last", "sale_days", "units", "recent_sale_days", "recent_units", "window"]
    if product_daily is None or not len(product_daily):
        return pd.DataFrame(columns=cols)
    p = pd.DataFrame({"sku": product_daily["sku"].astype(str),
                      "ds": pd.to_datetime(product_daily["sale_date"]).dt.normalize(),
                      "units": pd.to_numeric(product_daily["units"].astype(float), errors="coerce")
                      .fillna(0.0)})
    p = p[(p["ds"] <= end) & (p["units"] > 0) & (p["sku"] != TOTAL)]
    p = p.groupby(["sku", "ds"], sort=True)["units"].sum().reset_index()
    if not len(p):
        return pd.DataFrame(columns=cols)
    g = p.groupby("sku")
    out = g["ds"].agg(first="min", last="max", sale_days="count")
    out["units"] = g["units"].sum()
    span = (end - out["first"]).dt.days + 1
    age = (end - p["ds"]).dt.days.to_numpy()
    for days in (cfg.long_days, cfg.recent_days):
        inside = p[age < days].groupby("sku")["units"]
        out[f"n{days}"] = inside.count().reindex(out.index, fill_value=0).astype(int)
        out[f"u{days}"] = inside.sum().reindex(out.index, fill_value=0.0).astype(float)
    short = out[f"n{cfg.recent_days}"] >= cfg.min_recent_sale_days
    rate_recent = (out[f"n{cfg.recent_days}"] + 0.5) / np.minimum(span, cfg.recent_days)
    rate_long = (out[f"n{cfg.long_days}"] + 0.5) / np.minimum(span, cfg.long_days)
    short = short | (rate_recent <= rate_long)
    days = np.where(short, cfg.recent_days, cfg.long_days)
    out["window"] = np.minimum(span, days).astype(int)
    out["recent_sale_days"] = np.where(short, out[f"n{cfg.recent_days}"], out[f"n{cfg.long_days}"])
    out["recent_units"] = np.where(short, out[f"u{cfg.recent_days}"], out[f"u{cfg.long_days}"])
    return out[cols]


def _units_by_weekday(product_daily: pd.DataFrame | None, end: pd.Timestamp) -> pd.DataFrame:
    if product_daily is None or not len(product_daily):
        return pd.DataFrame(columns=range(7), dtype=float)
    ds = pd.to_datetime(product_daily["sale_date"]).dt.normalize()
    units = pd.to_numeric(product_daily["units"].astype(float), errors="coerce").fillna(0.0)
    keep = ((ds <= end) & (ds > end - pd.Timedelta(days=364)) & (units > 0)).to_numpy()
    frame = pd.DataFrame({"sku": product_daily["sku"].astype(str).to_numpy()[keep],
                          "dow": ds.dt.dayofweek.to_numpy()[keep], "units": units.to_numpy()[keep]})
    return frame.pivot_table(index="sku", columns="dow", values="units", aggfunc="sum",
                             fill_value=0.0).reindex(columns=range(7), fill_value=0.0)


def _group_rate(units: np.ndarray, events: np.ndarray, sizes: np.ndarray,
                weekday: np.ndarray) -> _Rate | None:
    """A group's belief from its skus' daily units, selling days per day and units per selling
    day: the medians, and a Gamma whose spread is that of the skus' daily units (a single sku:
    the widest usual prior, shape 0.5)."""
    ok = np.isfinite(units) & (units > 0)
    if not ok.any():
        return None
    units, events, sizes = units[ok], events[ok], sizes[ok]
    mid = float(np.median(units))
    var = float(np.var(units, ddof=1)) if len(units) > 1 else 0.0
    shape = min(max(mid * mid / var, 0.5), 50.0) if var > 0 else 0.5
    return _Rate(shape, mid, float(np.median(sizes)), weekday, float(np.median(events)))


def _daily_units(rates: list[_Rate], dow: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per sku (rows) and day (columns): the weekday factor, the mean units and the negative
    binomial ``(n, p)`` with that mean and the variance of selling days that are Poisson with a
    Gamma rate, times their units: ``mean * size + mean² / shape`` (moment-matched; exactly
    Poisson-gamma for one unit a sale)."""
    w = np.stack([r.weekday[dow] for r in rates])
    col = lambda attr: np.array([[getattr(r, attr)] for r in rates], float)  # noqa: E731
    mean = col("mean") * w
    with np.errstate(divide="ignore", invalid="ignore"):
        n = 1.0 / (np.maximum(col("size") - 1.0, 0.0) / mean + 1.0 / col("shape"))
        p = n / (n + mean)
    return w, mean, n, p


def _band(n: np.ndarray, p: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """The whole-unit band holding ``level`` of the predictive mass as a whole: the lower bound
    at the lower tail's quantile, the upper one the smallest count bringing the mass between
    them to ``level`` (equal tails over-cover counts: a lower bound of 0 holds all of the zero
    days)."""
    tail = (1.0 - level) / 2.0
    lo = nbinom.ppf(tail, n, p)
    below = np.where(lo > 0, nbinom.cdf(lo - 1, n, p), 0.0)
    hi = nbinom.ppf(np.minimum(level + below, 1.0 - 1e-12), n, p)
    return lo, hi


def _paths(rates: list[_Rate], dow: np.ndarray) -> dict[str, np.ndarray]:
    """The forecast columns of every sku's days, sku after sku (flat arrays)."""
    w, mean, n, p = (a.ravel() for a in _daily_units(rates, dow))
    bands = {k: np.zeros(len(w)) for k in ("yhat_p50", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95",
                                           "yhat_hi_95")}
    yhat = np.where(w > 0, mean, 0.0)
    open_ = (w > 0) & (mean > 0)
    if open_.any():
        n, p = n[open_], p[open_]
        bands["yhat_p50"][open_] = nbinom.ppf(0.5, n, p)
        for level in (80, 95):
            lo, hi = _band(n, p, level / 100)
            bands[f"yhat_lo_{level}"][open_], bands[f"yhat_hi_{level}"][open_] = lo, hi
    lo80, hi80, lo95, hi95, p50 = (bands[k] for k in ("yhat_lo_80", "yhat_hi_80", "yhat_lo_95",
                                                      "yhat_hi_95", "yhat_p50"))
    # nested bands, the mean inside them (a band {0} around a mean of 0.1 holds the same counts)
    lo95 = np.minimum(np.minimum(lo95, lo80), yhat)
    hi95 = np.maximum(np.maximum(hi95, hi80), yhat)
    lo80 = np.clip(np.minimum(lo80, yhat), lo95, None)
    hi80 = np.clip(np.maximum(hi80, yhat), None, hi95)
    p50 = np.clip(p50, lo80, hi80)
    return {"yhat": yhat, "yhat_p50": p50, "yhat_lo_80": lo80, "yhat_hi_80": hi80,
            "yhat_lo_95": lo95, "yhat_hi_95": hi95}


def _when(day) -> str:
    return pd.Timestamp(day).date().isoformat()


def fallback_forecast(
    product_daily: pd.DataFrame | None,
    catalogue: pd.DataFrame | None,
    modelled: pd.DataFrame | Iterable[str],
    as_of: object,
    horizon: int = 28,
    *,
    daily: pd.DataFrame | None = None,
    config: FallbackConfig | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fallback forecasts for the catalogue's skus that ``modelled`` leaves out, and a coverage row
    for every series: ``(forecast_df, coverage_df)``.

    ``product_daily`` has ``sale_date``, ``sku`` and ``units`` (selling days, as in
    ``marts.product_daily_sales``); ``catalogue`` has ``sku`` and ``category`` (None where
    unknown); ``modelled`` is the models' forecast frame (``ml.sales_forecast`` columns: its
    series and model names are recorded as ``modelled``) or just the modelled series ids;
    ``daily`` (``sale_date``, ``revenue``) words the ``TOTAL`` row. ``forecast_df`` has the
    ``ml.sales_forecast`` columns, ``coverage_df`` the ``ml.forecast_coverage`` ones."""
    cfg = config or FallbackConfig()
    end = pd.Timestamp(as_of).normalize()
    as_of_date = end.date()
    if isinstance(modelled, pd.DataFrame):
        models = (modelled.drop_duplicates("series_id").set_index("series_id")["model"].astype(str)
                  .to_dict() if len(modelled) else {})
    else:
        models = {str(s): None for s in modelled}
    cat = _catalogue(catalogue)
    in_catalogue = set(cat["sku"])
    category = dict(zip(cat["sku"], cat["category"]))
    stats = _sku_stats(product_daily, end, cfg)
    by_dow = _units_by_weekday(product_daily, end)

    # weekday shapes: the shop's over every sku, each category's shrunk towards it
    shop_dow = by_dow.sum(axis=0).to_numpy(float) if len(by_dow) else np.zeros(7)
    pooled = shop_dow / shop_dow.sum() if shop_dow.sum() > 0 else np.full(7, 1 / 7)
    shop_shape = shrunk_profile(shop_dow, pooled, 0.0)
    # rates of the skus that sold in the last recent_days (selling days per day of their window)
    active = stats[(end - pd.to_datetime(stats["last"])).dt.days < cfg.recent_days] if len(stats) \
        else stats
    rates = (active["recent_sale_days"] / active["window"]).astype(float) if len(active) else pd.Series(
        dtype=float)
    daily_units = (active["recent_units"] / active["window"]).astype(float) if len(active) else \
        pd.Series(dtype=float)
    sizes = (active["recent_units"] / active["recent_sale_days"]).astype(float) if len(active) else \
        pd.Series(dtype=float)
    shop_rate = _group_rate(daily_units.to_numpy(), rates.to_numpy(), sizes.to_numpy(), shop_shape)
    groups: dict[str, _Rate | None] = {}
    for c in sorted({v for v in category.values() if v}):
        members = [s for s, v in category.items() if v == c]
        dow = by_dow.reindex(members).fillna(0.0).sum(axis=0).to_numpy(float) if len(by_dow) \
            else np.zeros(7)
        shape = shrunk_profile(dow, pooled, cfg.weekday_prior) if shop_dow.sum() > 0 else np.ones(7)
        idx = [s for s in members if s in rates.index]
        groups[c] = _group_rate(daily_units.reindex(idx).to_numpy(), rates.reindex(idx).to_numpy(),
                                sizes.reindex(idx).to_numpy(), shape)

    days = pd.date_range(end + pd.Timedelta(days=1), periods=int(horizon), freq="D")
    dow = days.dayofweek.to_numpy()
    day_list = [d.date() for d in days]
    rows, fallbacks = [], []
    records = stats.to_dict("index") if len(stats) else {}

    def cover(uid, status, method, reason, hist=0, sale_days=0, last=None):
        rows.append((as_of_date, uid, status, method, reason, int(hist), int(sale_days),
                     None if last is None or pd.isna(last) else pd.Timestamp(last).date()))

    def history(uid):
        if uid not in records:
            return 0, 0, None
        s = records[uid]
        return (end - s["first"]).days + 1, int(s["sale_days"]), s["last"]

    if TOTAL in models:
        first = None
        if daily is not None and len(daily):
            rev = pd.to_numeric(daily["revenue"].astype(float), errors="coerce").fillna(0.0)
            ds = pd.to_datetime(daily["sale_date"]).dt.normalize()
            selling = ds[(rev > 0).to_numpy() & (ds <= end).to_numpy()]
            first = selling.min() if len(selling) else None
            n_sale = int(selling.nunique())
            last = selling.max() if len(selling) else None
        hist = (end - first).days + 1 if first is not None else 0
        cover(TOTAL, "modelled", models[TOTAL], "the shop's revenue, forecast by the model its "
              "backtest chose", hist, n_sale if first is not None else 0, last if first is not None else None)

    skus = sorted((in_catalogue | set(stats.index) | set(models)) - {TOTAL})
    for uid in skus:
        hist, n_sale, last = history(uid)
        listed = uid in in_catalogue or not in_catalogue
        if uid in models:
            reason = (f"enough history for model selection ({hist} days since the first sale, "
                      f"{n_sale} selling days)")
            if not listed:
                reason += "; no longer in the catalogue, forecast while its recent sales last"
            cover(uid, "modelled", models[uid], reason, hist, n_sale, last)
            continue
        if not listed:
            cover(uid, "none", None, f"not in the catalogue (removed from the core; last sale "
                  f"{_when(last)}): discontinued, not forecast", hist, n_sale, last)
            continue
        group = groups.get(category.get(uid)) if category.get(uid) else None
        where = f"category {category[uid]!r}" if group is not None else "the shop's skus"
        profile = group or shop_rate
        if n_sale == 0:
            if group is None:
                why = ("no category in raw.inventory" if not category.get(uid)
                       else f"no sku of its category {category[uid]!r} sold in the last "
                            f"{cfg.recent_days} days")
                cover(uid, "none", None, f"never sold and {why}: no rate to forecast from; "
                      "expect its first sales to set one", 0, 0, None)
                continue
            rate = group
            method = CATEGORY_PROFILE
            reason = (f"never sold: median rate of {where} ({rate.mean:.3f} units a day, "
                      f"{rate.size:.2f} a selling day) with its weekday shape; bands widened by "
                      f"the spread of its skus' rates")
        else:
            s = records[uid]
            window, k, units = int(s["window"]), int(s["recent_sale_days"]), float(s["recent_units"])
            size = units / k if k else float(s["units"]) / n_sale
            # a window that opens with the first sale starts on a sale by construction: the
            # product was on the shelf before it, unsold, for about listing_days
            listed = cfg.listing_days if window == hist else 0
            shape, exposure = 0.5 + k, float(window + listed)
            topped = ""
            if window < cfg.min_exposure_days and profile is not None:
                extra = cfg.min_exposure_days - window
                shape += profile.events * extra
                exposure += extra
                topped = f"; the first {cfg.min_exposure_days} days topped up with {where}'s rate"
            weekday = (group or shop_rate).weekday if (group or shop_rate) else shop_shape
            rate = _Rate(shape, shape / exposure * size, size, weekday, shape / exposure)
            method = RECENT_RATE
            inactive = (end - s["last"]).days >= cfg.inactive_days
            if inactive:
                why = (f"inactive: no sale since {_when(last)} ({(end - s['last']).days} days; models "
                       f"need a sale in the last {cfg.inactive_days})")
            elif hist < cfg.min_history:
                why = f"new: first sale {hist} days ago (models need {cfg.min_history})"
            else:
                why = f"rarely sold: {n_sale} selling days (models need {cfg.min_sale_days})"
            reason = (f"{why}; {k} selling days and {units:g} units in its last {window} days"
                      f"{topped}, weekday shape of {where}; Poisson-gamma bands for the rate's "
                      f"uncertainty")
        cover(uid, "fallback", method, reason, hist, n_sale, last)
        fallbacks.append((uid, method, rate))
    if fallbacks:
        h = len(day_list)
        fc = pd.DataFrame({
            "as_of": as_of_date, "series_id": np.repeat([u for u, _, _ in fallbacks], h),
            "ds": day_list * len(fallbacks), **_paths([r for _, _, r in fallbacks], dow),
            "model": np.repeat([m for _, m, _ in fallbacks], h)})[FORECAST_COLUMNS]
    else:
        fc = pd.DataFrame(columns=FORECAST_COLUMNS)
    coverage = pd.DataFrame(rows, columns=COVERAGE_COLUMNS)
    coverage["history_days"] = coverage["history_days"].astype("int64")
    coverage["sale_days"] = coverage["sale_days"].astype("int64")
    return fc, coverage


def coverage_summary(coverage: pd.DataFrame) -> dict[str, int]:
    """Series per status and method, e.g. ``{"modelled": 120, "fallback RecentRate": 30}``."""
    if coverage is None or not len(coverage):
        return {}
    keys = [s if s != "fallback" else f"fallback {m}" for s, m in zip(coverage["status"], coverage["method"])]
    return {k: int(v) for k, v in pd.Series(keys).value_counts().sort_index().items()}
