"""Sales and stock anomalies (``ml.sales_anomalies``): one row per unusual day or event, ready
for an email.

Sales (``detect_sales_anomalies``)
----------------------------------
The series are the forecasting ones (``salesflow.forecast.build_series(..., detail=True)``):
``TOTAL`` revenue and units per sku, with the number of orders and the revenue of each day.
Rows report revenue (``TOTAL``) or units (skus). Every day is compared with what the days before
it lead to expect: a daily run, which reads the last ``CONTEXT_DAYS`` only, reports the same
alert keys (series, first day, direction) as scoring the whole history does for those days.

What is scored is decided per series from its history (``_scored_quantity``): the number of
orders, a count of independent purchases that one customer buying a case does not inflate,
where it varies; where a series' orders are constant or mostly (``one_share``) 1 -- a shop
whose lines are a product's whole day, or daily totals imported from another till -- a sku's
units (as counts), or its revenue if its units are constant too, and the shop's revenue.
Without an ``orders`` column the reported figure itself is scored. A product's units as day
totals are heavy-tailed (a customer's case is one day's units): their dispersion is measured on
every ordinary day, and a spike must also beat the last 13 weeks' highest day and lie
``lumpy_spreads`` robust spreads of log ratios out (a drop: below their lowest open day).

* weekday profile: each weekday's mean over the last 12 weeks, shrunk for sparse sellers
  towards the shop's (``TOTAL``'s) weekday shares of the same weeks; a weekday on which the
  series sold nothing in those weeks though its other days make that unlikely (at least
  ``unavailable_mass`` expected: a day the shop does not trade) is learnt as 0;
* level: the sales of the last 28 days over the sum of their weekday factors (a ratio, not a
  mean of day / factor, which a slow seller's rare sale on a weekday of small factor would
  inflate), leaving out days that were unusually low, runs of zero sales too long for the
  product's level (out of stock, delisted), promotion days (sold at least 5% below the recent
  median unit price), closed days and days the shop does not trade; an unusually high day
  counts up to the count that would be unusual (``calendar_z``), so that a lumpy seller's
  few busy days do not drop out of its level;
* expected = level x weekday factor, times the calendar and shop factors below.

Closed days: the configured ``closed_days``, and for the products every day the whole shop sold
nothing (its Saturdays, its Christmas break, a bank holiday): no lower limit, no part in a
stock-out run or a shift, not counted in the level.

Counts are scored against a negative binomial with that mean and the series' own trailing
dispersion: ``score`` is the normal quantile of the tail probability (signed). A day is
anomalous when it lies outside ``[lower, upper]``: it is significant *and* a relative effect of
at least ``spike_ratio`` (``drop_ratio`` below) *and*, for a sku, ``min_units`` units away from
the expected value, with spikes scored only for skus expected to sell ``min_expected`` units and
not on promotion days. Significant means a likelihood ratio: the day is ``exp(spike_evidence)``
times likelier under a mean of ``spike_test_ratio`` x the expected value than under the expected
value (``drop_evidence``, ``drop_test_ratio`` for drops). Unlike a tail probability, this asks
whether the day is explained by an effect of the size worth reporting, so a slow seller's chance
day of 5 orders for 1 expected, frequent among hundreds of products, weighs less than a busy
product's 4x. A sku's drop is weighed in units over the spread of units per order
(``E[q²]/E[q]``, so that they vary like a count): a day with fewer orders *and* smaller ones is
more unusual than one with fewer orders only. Spikes stay on orders (one customer buying a case
is not a spike). Days listed in ``closed_days`` (``MM-DD`` every year, or ``YYYY-MM-DD``: the
shop is closed) have no lower limit. Severity follows the size of the effect: ``high`` at 4x or
more (a quarter or less), ``medium`` at 3x (a third), else ``low``. ``kind`` is ``spike``,
``drop``, or ``outage`` for a ``TOTAL`` day at 10% of the expected or less (``stockout``,
``outage`` or ``level_shift`` for the events below). A band that nearly admits a day without
sales (its lower limit under half a unit, or 1% of the shop's mean day) has no drop below it.
Without order counts
the ``TOTAL`` revenue is scored with ``z`` robust spreads of its square root.

Recurring calendar effects are learnt from the history (a holiday list only for closed days): an
unusual day is compared with the same date one year before (364/365/366 days: fixed-date
holidays such as 25 December) and the same weekday 52/53 weeks before (the n-th weekday of a
month, such as Black Friday). When one of those days was unusual in the same direction, by a
ratio within a factor 2, its observed/expected ratio becomes part of this year's expectation:
the effect alarms in its first year at most. On a day the whole shop moved (``TOTAL`` unusual,
calendar days included) a sku may follow the shop or not, so its band covers both: one row for
the shop, not one per product.

Events that last (``_events``), one row each, dated by their first day so that every later
daily run reports the same alert key while the event goes on (the note says how many open days
so far); day rows of the same direction inside a found event are the event's:

* ``stockout`` (a sku) / ``outage`` (``TOTAL``): a run of open days without a sale, of a series
  that sold on at least ``stockout_share`` of the open days before it, once the run (2 open
  days or more) is ``exp(stockout_evidence)`` times unlikely. An empty day's chance is the
  share of open days without a sale before the run began (runs already found left out),
  weekday-aware. Runs fewer than ``shift_min_days`` selling days apart are one event (a unit
  found on the shelf does not end a stock-out, nor start a new alert), and until a product
  back from a stock-out has sold on that many open days its low days are not drops;
* ``level_shift``: Page's CUSUM of the day log-likelihood ratio of ``shift_up`` (``shift_down``)
  x the expected value against the expected value (each day's ratio capped, so that one day
  does not make a shift; for heavy-tailed day totals at ``shift_evidence / shift_min_days``,
  so that a few customers' cases in a week do not either), alarming at ``shift_evidence`` after ``shift_min_days`` days whose
  observed/expected is ``shift_effect`` or more away from 1; its first day is where the CUSUM
  last left 0, its last where the CUSUM peaked (later days speak against it: the expected level
  has followed, or the level is back), so the row gives the shift's size. The level coming back
  within ``level_days`` of an opposite shift is not a shift.

Measured (``benchmarks/anomalies.py``: events planted with a fixed seed, 5 replicates, in the
last 90 days of real series where the series' history makes them distinguishable; each grain
as sale lines / as one line per product per day):

* Online Retail, 156 products (stock-outs only: no product sells enough for a 2x day or a 40%
  week to stand out): recall 0.92 / 0.89, precision 0.99 / 0.97, one row per event; nothing
  planted, 0.50 / 1.58 rows per 1,000 series-days. Those rows are mostly real events of the
  shop: runs of 4 to 42 open days without a sale, and at the day-total grain also one day
  (20 September 2011) on which six products sold 9-54x their usual units at once, and a
  Christmas-season rise; at that grain orders are 1 on every day, so a wholesale order and a
  run on a product look alike;
* Superstore per category, 2 categories (stock-outs): recall 0.73 / 0.76, precision 1.00;
  its sub-categories sell too seldom for any kind;
* CDNOW (one product, the whole shop): recall 0.68 / 0.68 (stock-outs 10/10, spikes 2/3 and
  3/3, shifts 2/4 and 1/4, one-day drops to 25-35% 1/5), precision 0.84 / 0.89; unplanted, no
  row / one (the shop's revenue 37% below its level for 9 days in June 1998);
* a daily run (``lookback_days=7``) on each day of the window reports the same alert keys as
  the whole history (CDNOW, Superstore per category);
* the demo shop's truth: recall 0.73 (a product's 45-unit day for about 5 expected now falls
  just inside its band), one day row of 9 not planted (a 3-unit day for 21.6 expected);
  besides, 168 stock-out and 16 level-shift rows for its products over 760 days, which the
  generator makes (3-18 day stock-outs, launches, discontinuations, seasonal items) without
  listing them in its truth. Its daily run on 2025-06-30 reports its current stock-outs and
  no level shift of a slow seller that began months before;
* speed, 2,000 synthetic series of three years: 13.1 s for the whole history, 10.0 s for a
  daily run (the tails of the negative binomial come straight from ``scipy.special``, series
  scored as counts skip the rolling spread they do not use, and a daily run builds rows for
  its flagged days only).

Stock (``detect_stock_anomalies``)
----------------------------------
Between two consecutive snapshots the stock should fall by the units sold in between. Stock
that falls further (breakage, theft, a miscount) is an anomaly: ``expected`` is the previous
stock minus the units sold, ``lower`` that minus the tolerance, ``upper`` is empty (an increase
is a delivery), severity by the share of the previous stock lost (half: ``high``, a fifth:
``medium``), kind ``stock_drop``.

Rows have the ``ml.sales_anomalies`` columns: ``as_of, series_id, ds, observed, expected,
lower, upper, score, direction`` (``up``/``down``) ``, severity`` (``low``/``medium``/``high``,
the words of ``marts.stock_status``) ``, kind, note`` (a sentence for the alert email).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from salesflow.forecast import TOTAL

ANOMALY_COLUMNS = [
    "as_of", "series_id", "ds", "observed", "expected", "lower", "upper", "score", "direction",
    "severity", "kind", "note",
]
SEVERITY_ORDER = {"low": 1, "medium": 2, "high": 3}
# kinds of one row per event, dated by its first day and reported while the event lasts
MULTI_DAY_KINDS = ("stockout", "outage", "level_shift")
_YEAR_LAGS = (364, 371, 365, 366)
CONTEXT_DAYS = 2 * 365
ALPHA_PRIOR = 0.1
ALPHA_PRIOR_DAYS = 28.0
ALPHA_MIN = 0.005
ALPHA_MAX = 2.0
LUMPY_ALPHA_MAX = 20.0


@dataclass(frozen=True)
class SalesAnomalyConfig:
    """Thresholds of ``detect_sales_anomalies`` (see the module docstring). ``closed_days``:
    days the shop is closed, ``MM-DD`` (every year) or ``YYYY-MM-DD``."""

    z: float = 4.0
    spike_evidence: float = 7.0
    drop_evidence: float = 4.3
    spike_test_ratio: float = 2.5
    drop_test_ratio: float = 0.2
    spike_ratio: float = 1.8
    drop_ratio: float = 0.4
    min_units: float = 4.0
    min_expected: float = 2.0
    promotion_cut: float = 0.05
    level_days: int = 28
    weekday_weeks: int = 12
    spread_days: int = 91
    min_history: int = 28
    weekday_prior_days: float = 14.0
    spread_floor: float = 0.5
    unavailable_mass: float = 6.0
    calendar_z: float = 3.0
    calendar_tolerance: float = math.log(2.0)
    outage_ratio: float = 0.1
    one_share: float = 0.8
    lumpy_spreads: float = 3.5
    stockout_evidence: float = 7.0
    stockout_share: float = 0.6
    shift_up: float = 1.5
    shift_down: float = 0.55
    shift_evidence: float = 9.0
    shift_min_days: int = 5
    shift_effect: float = 0.25
    currency: str = ""
    closed_days: tuple[str, ...] = ()


# --------------------------------------------------------------------------- series math

def _trailing_sum(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Sum and count of ``x[t-k .. t-1]`` for every ``t``."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    idx = np.arange(len(x))
    lo = np.maximum(idx - k, 0)
    return c[idx] - c[lo], (idx - lo).astype(float)


def _trailing_weekday_sums(y: np.ndarray, dow: np.ndarray, weeks: int,
                           seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per day and weekday, the sum and the number of ``seen`` days of the ``weeks`` weeks
    before it (the day itself excluded): two ``(n, 7)`` arrays."""
    n = len(y)
    vals = np.zeros((n, 7))
    cnt = np.zeros((n, 7))
    vals[np.arange(n), dow] = np.where(seen, y, 0.0)
    cnt[np.arange(n), dow] = seen
    cv = np.vstack([np.zeros(7), np.cumsum(vals, axis=0)])
    cc = np.vstack([np.zeros(7), np.cumsum(cnt, axis=0)])
    idx = np.arange(n)
    lo = np.maximum(idx - 7 * weeks, 0)
    return cv[idx] - cv[lo], cc[idx] - cc[lo]


def _weekday_factor(y: np.ndarray, dow: np.ndarray, weeks: int, prior: np.ndarray,
                    prior_days: float, seen: np.ndarray) -> np.ndarray:
    """Trailing weekday factor of each day (mean 1 over a week), from the ``seen`` days of the
    last ``weeks`` weeks plus ``prior_days`` pseudo-days spread as ``prior`` (weekday shares,
    one row per day or one for all)."""
    n = len(y)
    idx = np.arange(n)
    sums, counts = _trailing_weekday_sums(y, dow, weeks, seen)
    means = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    k = counts.sum(axis=1)
    m = np.divide(sums.sum(axis=1), k, out=np.zeros(n), where=k > 0)
    # Each weekday's mean, shrunk towards the prior shape by pseudo-days at the overall mean.
    prior = np.broadcast_to(prior, (n, 7))
    shrunk = (means * counts + prior_days * prior * m[:, None]) / (counts + prior_days / 7)
    total = shrunk.sum(axis=1)
    return np.divide(7 * shrunk[idx, dow], total, out=np.ones(n), where=total > 0)


def _weekday_shares(y: np.ndarray, dow: np.ndarray, weeks: int, seen: np.ndarray) -> np.ndarray:
    """Each day's trailing share of each weekday over the ``seen`` days (rows sum to 1; even
    shares until every weekday was seen twice)."""
    n = len(y)
    sums, counts = _trailing_weekday_sums(y, dow, weeks, seen)
    means = np.divide(sums, counts, out=np.zeros((n, 7)), where=counts > 0)
    total = means.sum(axis=1, keepdims=True)
    ok = (total > 0) & (counts.min(axis=1, keepdims=True) >= 2)
    return np.divide(means, total, out=np.full((n, 7), 1 / 7), where=ok)


def _level(y: np.ndarray, w: np.ndarray, days: int, seen: np.ndarray) -> np.ndarray:
    """Weekday-adjusted mean of the ``seen`` days among the last ``days``; of all of them when
    fewer than half were seen (a long gap is the new normal, not an exception)."""
    s, _ = _trailing_sum(np.where(seen, y, 0.0), days)
    sw, _ = _trailing_sum(np.where(seen, w, 0.0), days)
    c, _ = _trailing_sum(seen.astype(float), days)
    s_all, c_all = _trailing_sum(y, days)
    sw_all, _ = _trailing_sum(w, days)
    mean_seen = np.divide(s, sw, out=np.zeros(len(y)), where=sw > 1e-9)
    mean_all = np.divide(s_all, sw_all, out=np.zeros(len(y)), where=sw_all > 1e-9)
    mean_all = np.where(c_all >= min(7, days), mean_all, np.nan)
    return np.where(c >= c_all / 2, mean_seen, mean_all)


def _spread(r: np.ndarray, days: int, floor: np.ndarray | float) -> np.ndarray:
    """Robust trailing spread (interquartile range / 1.349) of the residuals ``r``."""
    prev = pd.Series(r).shift(1)
    roll = prev.rolling(days, min_periods=14)
    iqr = (roll.quantile(0.75) - roll.quantile(0.25)).to_numpy() / 1.349
    return np.maximum(np.nan_to_num(iqr, nan=0.0), floor)


def _dispersion(x: np.ndarray, expected: np.ndarray, ok: np.ndarray, days: int,
                alpha_max: float = ALPHA_MAX) -> np.ndarray:
    """Trailing negative-binomial dispersion ``alpha`` (variance = m + alpha m²) of counts,
    shrunk towards ALPHA_PRIOR by ALPHA_PRIOR_DAYS pseudo-days."""
    e = np.where(ok, np.nan_to_num(expected, nan=0.0), 0.0)
    excess = np.where(ok, (x - e) ** 2 - e, 0.0)
    s_ex, _ = _trailing_sum(excess, days)
    s_e2, _ = _trailing_sum(e * e, days)
    n_ok, _ = _trailing_sum(ok.astype(float), days)
    mean_e2 = np.divide(s_e2, n_ok, out=np.zeros(len(x)), where=n_ok > 0)
    alpha = (s_ex + ALPHA_PRIOR * ALPHA_PRIOR_DAYS * mean_e2) / (
        s_e2 + ALPHA_PRIOR_DAYS * mean_e2 + 1e-12)
    return np.clip(np.nan_to_num(alpha, nan=ALPHA_PRIOR), ALPHA_MIN, alpha_max)


def _nb(expected: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(n, p)`` of scipy's negative binomial with mean ``expected`` and dispersion ``alpha``."""
    m = np.maximum(expected, 1e-9)
    n = 1.0 / alpha
    return n, n / (n + m)


def _count_z(x: np.ndarray, expected: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Signed normal score of a count's tail probability under the negative binomial."""
    from scipy import special

    n, p = _nb(expected, alpha)
    # the negative binomial's tails as regularised incomplete beta functions (what
    # ``scipy.stats.nbinom`` computes, without its argument checks): P(X <= k) = I_p(n, k + 1),
    # P(X >= k) = I_{1-p}(k, n) for k >= 1; only the tail on the day's side is needed
    k = np.floor(x)
    upper = x >= expected
    tail = np.where(upper,
                    np.where(k >= 1, special.betainc(np.maximum(k, 1.0), n, 1.0 - p), 1.0),
                    np.where(k >= 0, special.betainc(n, np.maximum(k, 0.0) + 1.0, p), 0.0))
    z = np.clip(-special.ndtri(np.clip(tail, 1e-300, 1.0)), 0.0, None)
    return np.where(upper, z, -z)


def _evidence_bound(expected: np.ndarray, alpha: np.ndarray, ratio: float,
                    evidence: float) -> np.ndarray:
    """The count beyond which a day is ``exp(evidence)`` times likelier under a mean of
    ``ratio`` x ``expected`` than under ``expected`` (both negative binomial with dispersion
    ``alpha``): above it for ``ratio > 1``, below it for ``ratio < 1``. The log-likelihood ratio
    is linear in the count, ``a + b x``, so the bound is ``(evidence - a) / b``."""
    e = np.maximum(np.nan_to_num(expected, nan=0.0), 0.0)
    n = 1.0 / alpha
    shrink = np.log((n + e) / (n + ratio * e))
    a, b = n * shrink, math.log(ratio) + shrink
    b = np.where(np.abs(b) < 1e-12, math.copysign(1e-12, math.log(ratio)), b)
    return (evidence - a) / b


def _unavailable(y: np.ndarray, expected: np.ndarray, mass: float) -> np.ndarray:
    """Days inside a run of zero sales too long for the expected level (out of stock, not
    listed, closed): the run's expected total is at least ``mass``."""
    n = len(y)
    out = np.zeros(n, dtype=bool)
    e = np.nan_to_num(expected, nan=0.0)
    i = 0
    while i < n:
        if y[i] > 0:
            i += 1
            continue
        j = i
        while j < n and y[j] <= 0:
            j += 1
        if j - i >= 2 and e[i:j].sum() >= mass:
            out[i:j] = True
        i = j
    return out


@dataclass
class _Scored:
    expected: np.ndarray
    z: np.ndarray
    unavailable: np.ndarray
    alpha: np.ndarray
    spread: np.ndarray
    seen: np.ndarray | None = None
    idle: np.ndarray | None = None
    weekday: np.ndarray | None = None
    alpha_all: np.ndarray | None = None


def _trailing_extremes(v: np.ndarray, ok: np.ndarray, days: int) -> tuple[np.ndarray, np.ndarray]:
    """Highest and lowest of the ``ok`` values among the ``days`` days before each day."""
    s = pd.Series(np.where(ok, v, np.nan)).shift(1).rolling(days, min_periods=14)
    hi = np.nan_to_num(s.max().to_numpy(), nan=np.inf)
    lo = np.nan_to_num(s.min().to_numpy(), nan=-np.inf)
    return hi, lo


def _z(x, expected, alpha, spread, counts: bool) -> np.ndarray:
    e = np.nan_to_num(expected, nan=0.0)
    if counts:
        return _count_z(x, e, alpha)
    return (np.sqrt(x) - np.sqrt(e)) / spread


def _score(x: np.ndarray, dow: np.ndarray, prior: np.ndarray, prior_days: float,
           cfg: SalesAnomalyConfig, counts: bool, runs: bool,
           exclude: np.ndarray | None = None, lumpy: bool = False) -> _Scored:
    """Expected value and score of every day from the days before it. The second pass leaves
    out the first pass's anomalous days and the zero runs of an unavailable product, but keeps
    the empty days of a weekday that sold nothing in the last ``weekday_weeks`` weeks (a day
    the shop does not trade: its weekday factor is learnt as 0). ``lumpy``: the dispersion is
    measured on every day (day totals of units, where one customer's case is one day's
    spike), up to ``LUMPY_ALPHA_MAX``."""
    n = len(x)
    sums, cnts = _trailing_weekday_sums(x, dow, cfg.weekday_weeks, np.ones(n, dtype=bool))
    # a weekday without a sale in the last weeks, where the other days' sales make that
    # unlikely by chance (a slow seller's blank weekday is chance, not a day it is not sold)
    rate = np.divide(sums.sum(axis=1), cnts.sum(axis=1), out=np.zeros(n),
                     where=cnts.sum(axis=1) > 0)
    day_n = cnts[np.arange(n), dow]
    idle = ((x <= 0) & (sums[np.arange(n), dow] <= 0) & (day_n >= 2)
            & (rate * day_n >= cfg.unavailable_mass))
    warm = np.arange(n) >= cfg.min_history
    seen = np.ones(n, dtype=bool)
    w = _weekday_factor(x, dow, cfg.weekday_weeks, prior, prior_days, seen)
    # a day the shop does not trade teaches the weekday factor (0), not the level
    exp1 = _level(x, w, cfg.level_days, ~idle) * w
    ok1 = warm & np.isfinite(exp1)
    r1 = np.sqrt(x) - np.sqrt(np.nan_to_num(exp1, nan=0.0))
    # the robust spread of square roots scores what is not a count (counts: the dispersion)
    s1 = (np.full(n, cfg.spread_floor) if counts
          else _spread(np.where(ok1, r1, np.nan), cfg.spread_days, 0.0))
    a1 = _dispersion(x, exp1, ok1, cfg.spread_days)
    z1 = np.where(ok1, _z(x, exp1, a1, np.maximum(s1, 1e-9), counts), 0.0)
    gone = _unavailable(x, exp1, cfg.unavailable_mass) if runs else np.zeros(n, dtype=bool)
    seen = ~gone & (~(np.abs(z1) >= cfg.calendar_z) | idle)
    if exclude is not None:
        seen &= ~exclude
    w2 = _weekday_factor(x, dow, cfg.weekday_weeks, prior, prior_days, seen)
    # A high day counts in the level up to the count it would take to be unusual: leaving it
    # out would bias a slow, lumpy seller's level down (its few busy days are much of its sales).
    high = ~gone & ok1 & (z1 >= cfg.calendar_z)
    if exclude is not None:
        high &= ~exclude
    xl = x
    if counts and high.any():
        from scipy import special

        nn, pp = _nb(np.nan_to_num(exp1[high], nan=0.0), a1[high])
        top = np.ceil(special.nbdtrik(special.ndtr(cfg.calendar_z), nn, pp))
        xl = x.copy()
        xl[high] = np.minimum(x[high], np.nan_to_num(top, nan=0.0))
    exp2 = _level(xl, w2, cfg.level_days, (seen | high) & ~idle) * w2
    ok2 = warm & np.isfinite(exp2)
    r2 = np.sqrt(x) - np.sqrt(np.nan_to_num(exp2, nan=0.0))
    s2 = (np.full(n, cfg.spread_floor) if counts
          else np.maximum(_spread(np.where(ok2 & seen, r2, np.nan), cfg.spread_days, 0.0), 1e-9))
    wild = np.abs(z1) >= 2 * cfg.calendar_z
    shut = exclude if exclude is not None else np.zeros(n, dtype=bool)
    a2 = (_dispersion(x, exp2, ok2 & ~gone & ~wild & ~shut, cfg.spread_days, LUMPY_ALPHA_MAX)
          if lumpy else _dispersion(x, exp2, ok2 & seen, cfg.spread_days))
    # the weeks' dispersion (level shifts) of heavy-tailed day totals counts their wild days too
    a_all = (_dispersion(x, exp2, ok2 & ~gone & ~shut, cfg.spread_days, LUMPY_ALPHA_MAX)
             if lumpy else a2)
    z2 = np.where(ok2, _z(x, exp2, a2, s2, counts), 0.0)
    return _Scored(exp2, z2, gone, a2, s2, seen, idle, w2, a_all)


def _ratio(obs: np.ndarray, exp: np.ndarray, eps: float) -> np.ndarray:
    return (obs + eps) / (np.maximum(exp, 0.0) + eps)


def _calendar_factor(x: np.ndarray, expected: np.ndarray, sc: _Scored, cfg: SalesAnomalyConfig,
                     eps: float) -> np.ndarray:
    """For an unusual day: the observed/expected ratio of the closest unusual day in the same
    direction a year before (same date or same weekday 52/53 weeks back); 1 otherwise."""
    n = len(x)
    ratio = _ratio(x, expected, eps)
    log_now = np.log(ratio)
    unusual = np.abs(sc.z) >= cfg.calendar_z
    best = np.ones(n)
    gap = np.full(n, cfg.calendar_tolerance)
    for lag in _YEAR_LAGS:
        if n <= lag:
            continue
        past_r = np.ones(n)
        past_u = np.zeros(n, dtype=bool)
        past_r[lag:] = ratio[:-lag]
        past_u[lag:] = unusual[:-lag]
        log_past = np.log(past_r)
        d = np.abs(log_past - log_now)
        take = unusual & past_u & (np.sign(log_past) == np.sign(log_now)) & (d < gap)
        best = np.where(take, past_r, best)
        gap = np.where(take, d, gap)
    return best


# --------------------------------------------------------------------------- sales

def _fmt(value: float, unit: str, currency: str) -> str:
    if unit == "revenue":
        text = f"{value:,.2f}"
        return f"{text} {currency}".strip()
    if abs(value - round(value)) < 1e-9:
        n = int(round(value))
        return f"{n} unit{'' if n == 1 else 's'}"
    return f"{value:,.1f} units"


def _sales_note(uid: str, day: date, obs: float, exp: float, lo: float, hi: float,
                kind: str, severity: str, currency: str) -> str:
    unit = "revenue" if uid == TOTAL else "units"
    what = "Shop revenue" if uid == TOTAL else f"Sales of {uid}"
    when = f"{day:%a %d %b %Y}"
    if exp > 0:
        r = obs / exp
        rel = (f"{r:.1f}x the expected {_fmt(exp, unit, currency)}" if r >= 1
               else f"{(1 - r) * 100:.0f}% below the expected {_fmt(exp, unit, currency)}")
    else:
        rel = f"against an expected {_fmt(exp, unit, currency)}"
    label = {"spike": "a spike", "drop": "a drop", "outage": "almost no sales (outage or closure?)"}
    return (f"{what} on {when}: {_fmt(obs, unit, currency)}, {rel} (usual range "
            f"{_fmt(lo, unit, currency)} to {_fmt(hi, unit, currency)}); {label[kind]}, "
            f"{severity} severity.")


def _severity(ratio: float, up: bool) -> str:
    if up:
        return "high" if ratio >= 4 else "medium" if ratio >= 3 else "low"
    return "high" if ratio <= 0.25 else "medium" if ratio <= 1 / 3 else "low"


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Contract dtypes, also for an empty frame."""
    for col in ("observed", "expected", "lower", "upper", "score"):
        frame[col] = frame[col].astype(float)
    return frame


def _prepare(series: pd.DataFrame, end: pd.Timestamp) -> dict[str, tuple]:
    """``{uid: (days, y, counts, revenue)}`` with zero days filled; ``counts`` is the ``orders``
    column when the frame has one (else ``y``), ``revenue`` the ``revenue`` column (else None)."""
    ds = pd.to_datetime(series["ds"]).dt.normalize()
    keep = (ds <= end).to_numpy()

    def col(name: str) -> np.ndarray:
        v = pd.to_numeric(series[name].astype(float), errors="coerce").fillna(0.0).clip(lower=0.0)
        return v.to_numpy()[keep]

    has_counts = "orders" in series.columns
    has_revenue = "revenue" in series.columns
    s = pd.DataFrame({
        "unique_id": series["unique_id"].astype(str).to_numpy()[keep],
        "ds": ds.to_numpy()[keep],
        "y": col("y"),
        "c": col("orders") if has_counts else col("y"),
        "r": col("revenue") if has_revenue else col("y"),
    })
    out = {}
    if not len(s):
        return out
    # one pass over the rows: day numbers from the last day, grouped by series
    uids, code = np.unique(s["unique_id"].to_numpy(), return_inverse=True)
    back = ((end - pd.DatetimeIndex(s["ds"])) // pd.Timedelta(days=1)).to_numpy(np.int64)
    order = np.argsort(code, kind="stable")
    bounds = np.searchsorted(code[order], np.arange(len(uids) + 1))
    values = s[["y", "c", "r"]].to_numpy(float)[order]
    back = back[order]
    calendar = pd.date_range(end - pd.Timedelta(days=int(back.max())), end, freq="D")
    for i, uid in enumerate(uids):
        lo, hi = bounds[i], bounds[i + 1]
        n = int(back[lo:hi].max()) + 1
        days = calendar[len(calendar) - n:]
        v = np.zeros((n, 3))
        np.add.at(v, n - 1 - back[lo:hi], values[lo:hi])
        y, c, r = v[:, 0].copy(), v[:, 1].copy(), v[:, 2].copy()
        out[str(uid)] = (days, y, c if has_counts else y, r if has_revenue else None)
    return out


def _closed(days: pd.DatetimeIndex, closed_days: tuple[str, ...]) -> np.ndarray:
    """Days the shop is closed: ``closed_days`` holds ``MM-DD`` (every year) or ``YYYY-MM-DD``."""
    if not closed_days:
        return np.zeros(len(days), dtype=bool)
    texts = [str(item).strip() for item in closed_days]
    every_year = [int(t[:2]) * 100 + int(t[3:]) for t in texts if len(t) == 5]
    once = pd.DatetimeIndex([pd.Timestamp(t) for t in texts if len(t) > 5]).normalize()
    return np.isin(days.month * 100 + days.day, every_year) | np.asarray(days.normalize().isin(once))


def _promotion(units: np.ndarray, revenue: np.ndarray | None, cut: float, days: int) -> np.ndarray:
    """Days sold at a unit price at least ``cut`` below the median price of the previous
    ``days`` selling days (a promotion explains a spike)."""
    n = len(units)
    if revenue is None or n == 0:
        return np.zeros(n, dtype=bool)
    sold = units > 0
    unit_price = np.where(sold, revenue / np.where(sold, units, 1.0), np.nan)
    if not sold.any() or np.nanmin(unit_price) > (1.0 - cut) * np.nanmax(unit_price):
        return np.zeros(n, dtype=bool)  # no price that far below any other
    price = pd.Series(unit_price)
    ref = price.shift(1).rolling(days, min_periods=3).median().ffill()
    return (price <= (1.0 - cut) * ref).fillna(False).to_numpy(bool)


def _band(x_expected: np.ndarray, sc: _Scored, cfg: SalesAnomalyConfig, counts: bool,
          min_abs: np.ndarray | float, grain: np.ndarray | float = 1.0
          ) -> tuple[np.ndarray, np.ndarray]:
    """Counts outside ``[lower, upper]`` are significant *and* large (ratio, and ``min_abs``
    away from the expected value). Significant: for counts, ``spike_evidence`` (``drop_evidence``)
    in favour of a day at ``spike_ratio`` (``drop_ratio``) x the expected value, drops weighed
    in counts of ``grain`` (a sku's units over their size dispersion); else ``z`` spreads."""
    if counts:
        hi_z = _evidence_bound(x_expected, sc.alpha, cfg.spike_test_ratio, cfg.spike_evidence)
        lo_z = grain * _evidence_bound(x_expected / grain, sc.alpha, cfg.drop_test_ratio,
                                       cfg.drop_evidence)
    else:
        root = np.sqrt(x_expected)
        lo_z = np.maximum(root - cfg.z * sc.spread, 0.0) ** 2
        hi_z = (root + cfg.z * sc.spread) ** 2
    upper = np.maximum.reduce([hi_z, x_expected * cfg.spike_ratio, x_expected + min_abs])
    lower = np.minimum.reduce([lo_z, x_expected * cfg.drop_ratio, x_expected - min_abs])
    return np.maximum(lower, 0.0), upper


def _per_count(y: np.ndarray, c: np.ndarray, seen: np.ndarray, days: int) -> np.ndarray:
    """Trailing units (or revenue) per counted order; 1 where nothing was counted yet."""
    sy, _ = _trailing_sum(np.where(seen, y, 0.0), days)
    sc, _ = _trailing_sum(np.where(seen, c, 0.0), days)
    return np.divide(sy, sc, out=np.ones(len(y)), where=sc > 0)


def _size_spread(y: np.ndarray, c: np.ndarray, k: np.ndarray, seen: np.ndarray,
                 days: int) -> np.ndarray:
    """Trailing ``E[q²] / E[q]`` of the units ``q`` bought per order (``k``: their mean): units
    divided by it vary like a count. The variance of ``q`` comes from the days' units around
    ``k`` x orders (``Var(units | orders) = orders x Var(q)``)."""
    ok = seen & (c > 0)
    s_r, _ = _trailing_sum(np.where(ok, (y - k * c) ** 2, 0.0), days)
    s_c, _ = _trailing_sum(np.where(ok, c, 0.0), days)
    var_q = np.divide(s_r, s_c, out=np.zeros(len(y)), where=s_c > 0)
    return np.maximum(k, 1e-9) + var_q / np.maximum(k, 1e-9)


def _uninformative(v: np.ndarray, selling: np.ndarray, share: float) -> bool:
    """The selling days' values are (nearly) all one value: they carry no signal."""
    vals = v[selling]
    if len(vals) == 0:
        return False
    _, counts = np.unique(vals, return_counts=True)
    return counts.max() >= share * len(vals)


def _scored_quantity(is_total: bool, y: np.ndarray, c: np.ndarray, revenue: np.ndarray | None,
                     has_counts: bool, cfg: SalesAnomalyConfig) -> tuple[np.ndarray, bool, str]:
    """What a series is scored on, decided from its history: ``(x, counts, name)``. Orders
    when the frame has them and they vary; else units (a sku) or revenue (``TOTAL``); a sku
    whose units are constant too is scored on its revenue when it varies. (``TOTAL``'s orders
    of a shop whose lines are products' day totals count products, not purchases: the caller
    passes ``has_counts=False`` then.)"""
    selling = y > 0
    if has_counts and not _uninformative(c, selling, cfg.one_share):
        return c, True, "orders"
    if is_total:
        return y, False, "revenue"
    if (revenue is not None and _uninformative(y, selling, cfg.one_share)
            and not _uninformative(np.round(revenue, 2), selling, cfg.one_share)):
        return revenue, False, "revenue"
    return y, bool(np.all(y == np.round(y))), "units"


def _cusum(llr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Page's CUSUM of the day log-likelihood ratios: ``(S, start)``, ``S_t = max(0, S_{t-1} +
    llr_t)`` and the index of the first day of the run that ``S_t`` sums (``t + 1`` when
    ``S_t`` is 0)."""
    n = len(llr)
    c = np.concatenate([[0.0], np.cumsum(llr)])
    low = np.minimum.accumulate(c)
    idx = np.arange(n + 1)
    last = np.maximum.accumulate(np.where(c <= low + 1e-12, idx, 0))
    s = (c - low)[1:]
    start = np.where(s > 1e-12, last[1:], idx[1:])
    return s, start


def _first_alarms(alarm: np.ndarray, start: np.ndarray, alive: np.ndarray
                  ) -> list[tuple[int, int, int]]:
    """``(start, detected, last)`` of every run of days sharing ``start`` that alarms: the first
    alarming day, and the last day of the run (``alive`` and the same start)."""
    out = []
    hits = np.flatnonzero(alarm)
    if not len(hits):
        return out
    starts, first = np.unique(start[hits], return_index=True)
    for st, t in zip(starts, hits[first]):
        same = np.flatnonzero((start == st) & alive)
        out.append((int(st), int(t), int(same.max()) if len(same) else int(t)))
    return out


def _empty_runs(x: np.ndarray, e: np.ndarray, counted: np.ndarray, open_: np.ndarray,
                zero: np.ndarray, usable: np.ndarray, cfg: SalesAnomalyConfig) -> dict:
    """Runs of open days without a sale, each day from the days before it: the chance of an
    empty day is the share of ``counted`` open days without a sale in the ``spread_days`` before
    the run began, weekday-aware (as for a Poisson count, log P(0) in proportion to the day's
    weekday factor ``e`` over its trailing mean, at most twice the usual day's); a run's
    evidence is minus the log of its chance. ``alarm``: a day of a run of at least 2 open days
    with ``stockout_evidence``, of a product selling on ``stockout_share`` of the open days
    before it; ``out``: every day of a run that alarms."""
    n = len(x)
    idx = np.arange(n)
    n_open, _ = _trailing_sum(counted.astype(float), cfg.spread_days)
    n_sold, _ = _trailing_sum((counted & (x > 0)).astype(float), cfg.spread_days)
    share = np.divide(n_sold, n_open, out=np.zeros(n), where=n_open > 0)
    p_emp = (n_open - n_sold + 0.5) / (n_open + 1.0)
    s_e, _ = _trailing_sum(np.where(counted, e, 0.0), cfg.spread_days)
    e_mean = np.divide(s_e, n_open, out=np.zeros(n), where=n_open > 0)
    rel = np.clip(np.divide(e, e_mean, out=np.ones(n), where=e_mean > 0), 0.0, 2.0)
    usual = usable & (share >= cfg.stockout_share) & (n_open >= cfg.min_history)
    brk = open_ & (x > 0)
    last_brk = np.maximum.accumulate(np.where(brk, idx, -1))
    zeros_at = np.flatnonzero(zero)
    pos = np.searchsorted(zeros_at, last_brk + 1)
    run_start = np.where(pos < len(zeros_at), zeros_at[np.minimum(pos, len(zeros_at) - 1)], n)
    # every day of a run at the selling share from before the run began
    p_run = np.where(zero, p_emp[np.minimum(run_start, n - 1)], p_emp)
    p0 = np.clip(np.exp(np.log(p_run) * rel), 1e-12, 1.0)
    ev = np.cumsum(np.where(zero, -np.log(p0), 0.0))
    cnt = np.cumsum(zero.astype(float))
    base_ev = np.where(last_brk >= 0, ev[np.maximum(last_brk, 0)], 0.0)
    base_cnt = np.where(last_brk >= 0, cnt[np.maximum(last_brk, 0)], 0.0)
    alarm = (zero & (cnt - base_cnt >= 2) & (ev - base_ev >= cfg.stockout_evidence)
             & usual[np.minimum(run_start, n - 1)] & (run_start < n))
    hit = np.unique(run_start[alarm])
    out = np.isin(run_start, hit) & ~brk & (run_start < n)
    return {"alarm": alarm, "start": run_start, "evidence": ev - base_ev, "out": out, "p0": p0}


def _merge_runs(runs: list[dict], x: np.ndarray, zero: np.ndarray, open_: np.ndarray,
                min_days: int) -> list[dict]:
    """Stock-out runs (in order) separated by fewer than ``min_days`` open selling days are one
    event: a few sales (a returned unit, a last one found) do not end a stock-out, and its
    next empty days are not a new alert."""
    merged: list[dict] = []
    for ev in runs:
        prev = merged[-1] if merged else None
        if prev is not None:
            between = slice(prev["last"] + 1, ev["start"])
            if int((open_[between] & (x[between] > 0)).sum()) < min_days:
                span = slice(prev["start"], ev["last"] + 1)
                prev.update(last=ev["last"], days=int(zero[span].sum()),
                            observed=float(x[span].sum()),
                            expected=prev["expected"] + ev["expected"],
                            evidence=max(prev["evidence"], ev["evidence"]))
                continue
        merged.append(ev)
    return merged


def _events(uid: str, x: np.ndarray, e: np.ndarray, alpha: np.ndarray, spread: np.ndarray,
            counts: bool, is_total: bool, open_: np.ndarray, valid: np.ndarray,
            promo: np.ndarray, weekday: np.ndarray, cfg: SalesAnomalyConfig,
            lumpy: bool = False) -> list[dict]:
    """Multi-day events of one series, each from the days up to it: stock-outs (a run of open
    days without a sale, for a product that usually sells) and level shifts (a CUSUM of the
    likelihood ratio of a day at ``shift_up`` / ``shift_down`` x the expected value)."""
    n = len(x)
    out: list[dict] = []
    idx = np.arange(n)
    e = np.maximum(np.nan_to_num(e, nan=0.0), 0.0)
    a = np.maximum(alpha, ALPHA_MIN)
    usable = valid & ~promo
    zero = open_ & (x <= 0)
    if zero.any():
        # Twice: the second time, the runs the first found do not lower the selling share.
        out_runs = np.zeros(n, dtype=bool)
        for _ in range(2):
            runs = _empty_runs(x, weekday, open_ & valid & ~out_runs, open_, zero, usable, cfg)
            out_runs = runs["out"]
        alarm, run_start, ev_run = runs["alarm"], runs["start"], runs["evidence"]
        for st, t, last in _first_alarms(alarm, np.where(alarm | zero | ~open_, run_start, -1),
                                         ~(open_ & (x > 0))):
            span = slice(st, last + 1)
            days = int(zero[span].sum())
            out.append({"series_id": uid, "start": st, "detected": t, "last": last, "days": days,
                        "observed": float(x[span].sum()),
                        "expected": float(e[span][zero[span]].sum()),
                        "evidence": float(ev_run[last]), "up": False,
                        "kind": "outage" if is_total else "stockout"})
        out = _merge_runs(out, x, zero, open_, cfg.shift_min_days)
    p0 = runs["p0"] if zero.any() else np.ones(n)
    # -- level shifts
    stuck = open_ & (x <= 0) & (p0 < 0.5)  # a usual seller's empty days are a stock-out's
    incl = open_ & usable
    for up, ratio in ((True, cfg.shift_up), (False, cfg.shift_down)):
        if counts:
            m = 1.0 / a
            shrink = np.log((m + e) / (m + ratio * e))
            llr = x * (math.log(ratio) + shrink) + m * shrink
        else:
            sd = np.maximum(spread, 1e-9)
            d = np.sqrt(ratio * e) - np.sqrt(e)
            llr = d / sd ** 2 * (np.sqrt(x) - np.sqrt(e) - d / 2)
        # heavy-tailed day totals: a few customers' cases are no shift, it takes
        # ``shift_min_days`` days of evidence
        cap = cfg.shift_evidence / (cfg.shift_min_days if lumpy else 3.0)
        keep = incl & ~stuck if not up else incl
        llr = np.where(keep & (e > 0) & (idx >= 7 * cfg.weekday_weeks),  # weekday factors settled
                       np.clip(llr, -3 * cap, cap), 0.0)
        s, start = _cusum(llr)
        cx = np.concatenate([[0.0], np.cumsum(np.where(keep, x, 0.0))])
        ce = np.concatenate([[0.0], np.cumsum(np.where(keep, e, 0.0))])
        co = np.concatenate([[0], np.cumsum(keep.astype(int))])
        st = np.minimum(start, n - 1)
        sx, se = cx[idx + 1] - cx[st], ce[idx + 1] - ce[st]
        so = co[idx + 1] - co[st]
        eff = np.divide(sx, se, out=np.ones(n), where=se > 0)
        big = eff >= 1 + cfg.shift_effect if up else eff <= 1 - cfg.shift_effect
        alarm = (s >= cfg.shift_evidence) & (so >= cfg.shift_min_days) & big & usable
        for st0, t, last in _first_alarms(alarm, start, s > 1e-12):
            # the shift lasts up to where its evidence peaks: after it the days speak against
            # it (the level is back), though the sum takes a while to fall to 0
            last = t + int(np.argmax(s[t:last + 1]))
            span = slice(st0, last + 1)
            k = keep[span]
            out.append({"series_id": uid, "start": st0, "detected": t, "last": last,
                        "days": int(k.sum()), "observed": float(x[span][k].sum()),
                        "expected": float(e[span][k].sum()),
                        "evidence": float(s[t:last + 1].max()), "up": up,
                        "kind": "level_shift"})
    # The level coming back after a shift (within the level window) is not a shift of its own.
    shifts = sorted((ev for ev in out if ev["kind"] == "level_shift"), key=lambda ev: ev["start"])
    recovered = set()
    for i, ev in enumerate(shifts):
        if any(o["up"] != ev["up"] and o["start"] < ev["start"] <= o["last"] + cfg.level_days
               and id(o) not in recovered for o in shifts[:i]):
            recovered.add(id(ev))
    return [ev for ev in out if id(ev) not in recovered]


def _series_days(uid: str, days: pd.DatetimeIndex, y: np.ndarray, c: np.ndarray,
                 revenue: np.ndarray | None, has_counts: bool, cfg: SalesAnomalyConfig,
                 prior: np.ndarray, shop_ratio: np.ndarray | None,
                 closed: np.ndarray, since: pd.Timestamp | None = None,
                 flagged_only: bool = False) -> tuple[pd.DataFrame, list[dict], dict]:
    """Every day of one series: expected value and band (in the units of ``y``), score (of the
    quantity ``_scored_quantity`` picks) and verdict; band, score and verdict only from
    ``since`` on (the expected values of earlier days feed the calendar comparison). Also the
    series' multi-day events (``_events``), and what the shop's series lends its products
    (``x``, the scored quantity, and ``base_z, count_expected, eps, seen`` of every day).
    ``closed``: the series' days the shop is closed (configured, and for a product the shop's
    days without a sale). ``flagged_only``: the frame holds the flagged days only."""
    is_total = uid == TOTAL
    dow = days.dayofweek.to_numpy()
    x, counts, scale = _scored_quantity(is_total, y, c, revenue, has_counts, cfg)
    lumpy = scale == "units" and has_counts and not is_total
    if is_total:
        sc = _score(x, dow, np.full(7, 1 / 7), 7.0, cfg, counts, runs=False, exclude=closed)
        promo = np.zeros(len(x), dtype=bool)
        closed = closed | sc.idle
    else:
        promo = _promotion(y, revenue, cfg.promotion_cut, cfg.level_days)
        sc = _score(x, dow, prior, cfg.weekday_prior_days, cfg, counts, runs=True,
                    exclude=promo | closed, lumpy=lumpy)
    pos = x[x > 0]
    eps = (0.01 * float(np.mean(pos)) if len(pos) else 1.0) if is_total else 0.5
    k = _per_count(y, x, ~sc.unavailable, 4 * cfg.level_days) if x is not y else np.ones(len(y))
    # A sku's drop is weighed in units (fewer orders, and smaller ones, both count), scaled by
    # the spread of the units per order: the count scale's grain is that spread over ``k``.
    grain = np.ones(len(y))
    by_units = scale == "orders" and not is_total
    if by_units:
        grain = _size_spread(y, x, k, ~sc.unavailable, 4 * cfg.level_days) / np.maximum(k, 1e-9)
    min_abs = np.full(len(x), 0.0) if is_total else cfg.min_units / np.maximum(k, 1e-9)
    base = np.nan_to_num(sc.expected, nan=0.0)
    # On a day the whole shop moved, a sku may follow the shop or not: both are expected.
    variants = [base] if shop_ratio is None else [base, base * shop_ratio]
    first = 0 if since is None else int(np.searchsorted(days.values, np.datetime64(since)))
    part = slice(first, len(x))
    tail = _Scored(*(getattr(sc, f)[part] for f in ("expected", "z", "unavailable", "alpha",
                                                    "spread")))
    bands = []
    for exp in variants:
        exp = (exp * _calendar_factor(x, exp, sc, cfg, eps))[part]
        lo, hi = _band(exp, tail, cfg, counts, min_abs[part], grain[part])
        bands.append((exp, lo, hi, _z(x[part], exp, tail.alpha, tail.spread, counts)))
    # A day the shop is closed has no lower limit: no drop, even without last year to learn from.
    lower = np.where(closed[part], 0.0, np.minimum.reduce([b[1] for b in bands]))
    upper = np.maximum.reduce([b[2] for b in bands])
    zs = np.vstack([b[3] for b in bands])
    z = zs[np.argmin(np.abs(zs), axis=0), np.arange(zs.shape[1])]
    expected = bands[-1][0]
    # Spikes count for busy enough skus only, and not on promotion days.
    spikes = ~promo[part]
    if not is_total:
        spikes &= np.maximum.reduce([b[0] for b in bands]) * k[part] >= cfg.min_expected
    valid_all = (np.arange(len(x)) >= cfg.min_history) & np.isfinite(sc.expected)
    valid = (valid_all & ~sc.unavailable)[part]
    kp, xp, yp = k[part], x[part], y[part]
    e_y, lo_y, hi_y = expected * kp, lower * kp, upper * kp
    drops = yp < lo_y if by_units else (xp < lower) & (yp < lo_y)
    drops &= lower >= eps  # a band that (nearly) admits nothing sold has no drop below it
    ups = valid & (xp > upper) & (yp > hi_y) & spikes
    if lumpy:
        # day totals with heavy tails (a customer's case is one day's units): a spike beats the
        # last 13 weeks' highest day, a drop their lowest open day
        # (trailing windows: the days scored and the ``spread_days`` before them suffice)
        ctx = slice(max(first - cfg.spread_days - 1, 0), len(x))
        cut = first - ctx.start
        hi_seen, lo_seen = _trailing_extremes(x[ctx], (~sc.unavailable & ~closed & ~promo)[ctx],
                                              cfg.spread_days)
        ups &= xp > hi_seen[cut:]
        drops &= xp < lo_seen[cut:]
        # and a spike is that many robust spreads of the selling days' log ratios out
        e_all = np.nan_to_num(sc.expected[ctx], nan=0.0)
        lr = np.log((x[ctx] + 0.5) / (e_all + 0.5))
        spread = _spread(np.where((~sc.unavailable & ~closed & (x > 0))[ctx], lr, np.nan),
                         cfg.spread_days, 0.05)
        ups &= (lr >= cfg.lumpy_spreads * spread)[cut:]
    downs = valid & drops
    # Multi-day events: the shop's closed days neither break nor extend them.
    events = _events(uid, x, sc.expected, sc.alpha_all, sc.spread, counts, is_total, ~closed,
                     valid_all, promo, sc.weekday, cfg, lumpy=lumpy)
    # A day inside an event already found (and the event's first day) is the event's, not a
    # row of its own.
    taken_up = np.zeros(len(x), dtype=bool)
    taken_down = np.zeros(len(x), dtype=bool)
    sold = np.cumsum(~closed & (x > 0))
    for ev in events:
        taken = taken_up if ev["up"] else taken_down
        taken[ev["start"]] = True
        taken[ev["detected"]:ev["last"] + 1] = True
        if ev["kind"] == "stockout":
            # until it has sold on ``shift_min_days`` open days again, a product back from a
            # stock-out is still the stock-out's: its slow or empty days are not drops of their
            # own (and empty days again continue the same event, ``_merge_runs``)
            back = np.searchsorted(sold, sold[ev["last"]] + cfg.shift_min_days, side="left")
            taken_down[ev["last"] + 1:back] = True
        ev["k"] = float(k[ev["start"]:ev["last"] + 1].mean())
        ev["ds"] = days[ev["start"]]
        ev["last_ds"] = days[ev["last"]]
    flag = (ups & ~taken_up[part]) | (downs & ~taken_down[part])

    if since is not None:
        events = [ev for ev in events if ev["last_ds"] >= since]
    extras = {"x": x, "base_z": sc.z, "count_expected": base, "eps": eps, "seen": sc.seen}
    if flagged_only:
        hit = np.flatnonzero(flag)
        frame = pd.DataFrame({
            "series_id": uid, "ds": days[first + hit], "observed": y[first + hit],
            "expected": e_y[hit], "lower": lo_y[hit], "upper": hi_y[hit], "score": z[hit],
            "valid": valid[hit], "flag": flag[hit],
        })
        return frame, events, extras

    def full(values, fill):
        out = np.full(len(x), fill, dtype=np.asarray(values).dtype if fill is not None else bool)
        out[part] = values
        return out

    frame = pd.DataFrame({
        "series_id": uid, "ds": days, "observed": y,
        "expected": full(e_y, np.nan), "lower": full(lo_y, np.nan), "upper": full(hi_y, np.nan),
        "score": full(z, np.nan), "valid": full(valid, False), "flag": full(flag, False),
    })
    return frame, events, extras


def _aligned(values: np.ndarray, shop_days: pd.DatetimeIndex, days: pd.DatetimeIndex,
             fill: object) -> np.ndarray:
    """The shop's ``values`` (one per day of ``shop_days``) on ``days``; ``fill`` where the shop
    has none. Both end on the same day, so a series starting within the shop's days is a tail
    slice."""
    off = (days[0] - shop_days[0]).days if len(days) and len(shop_days) else -1
    if off >= 0 and len(shop_days) - off == len(days):
        return values[off:]
    frame = pd.DataFrame(values, index=shop_days) if values.ndim > 1 else pd.Series(values,
                                                                                   index=shop_days)
    return frame.reindex(days, fill_value=fill).to_numpy()


def _score_all(series: pd.DataFrame, as_of: object, cfg: SalesAnomalyConfig,
               since: object | None, flagged_only: bool = False
               ) -> tuple[pd.DataFrame, list[dict]]:
    end = pd.Timestamp(as_of).normalize()
    start = None if since is None else pd.Timestamp(since).normalize()
    data = _prepare(series, end)
    counts = "orders" in series.columns
    if not data:
        return pd.DataFrame(columns=["series_id", "ds", "observed", "expected", "lower", "upper",
                                     "score", "valid", "flag"]), []
    sums = np.zeros(7)
    for uid, (days, _, c, _) in data.items():
        if uid != TOTAL:
            sums += np.bincount(days.dayofweek.to_numpy(), weights=c, minlength=7)
    prior = sums / sums.sum() if sums.sum() > 0 else np.full(7, 1 / 7)
    shop_shares = None
    frames = []
    events: list[dict] = []
    shop = None
    shop_open = None
    # Lines that are products' day totals (a product never has two orders in a day): the
    # shop's order count is a count of products sold, and its revenue carries the signal.
    sku_days = multi = 0
    for uid, (_, y, c, _) in data.items():
        if uid != TOTAL:
            sku_days += int((y > 0).sum())
            multi += int((c > 1).sum())
    day_totals = counts and sku_days > 0 and multi <= 0.01 * sku_days
    # the configured closed days, once on the longest series' days (every series ends on ``end``)
    calendar = max((v[0] for v in data.values()), key=len)
    closed_all = _closed(calendar, cfg.closed_days)
    if TOTAL in data:
        days, y, c, _ = data[TOTAL]
        shop_days = days
        t, ev, ex = _series_days(TOTAL, days, y, c, None, counts and not day_totals, cfg, prior,
                                 None, closed_all[len(calendar) - len(days):], since=start,
                                 flagged_only=flagged_only)
        events += ev
        # The skus' weekday prior: the shop's own trailing weekday shares, day by day.
        tx = ex["x"]
        shop_shares = _weekday_shares(tx, days.dayofweek.to_numpy(), cfg.weekday_weeks,
                                      ex["seen"].astype(bool))
        moved = np.abs(ex["base_z"]) >= cfg.calendar_z
        ratio = _ratio(tx, ex["count_expected"], float(ex["eps"]))
        shop = np.where(moved, ratio, 1.0)
        # A day without any sale in the shop is a day it did not trade: closed for its products.
        shop_open = y > 0
        frames.append(t)
    for uid in sorted(u for u in data if u != TOTAL):
        days, y, c, revenue = data[uid]
        ratio = _aligned(shop, shop_days, days, 1.0) if shop is not None else None
        sku_prior = prior
        if shop_shares is not None:
            sku_prior = _aligned(shop_shares, shop_days, days, 1 / 7)
        shut = closed_all[len(calendar) - len(days):]
        if shop_open is not None:
            shut = shut | ~_aligned(shop_open, shop_days, days, True).astype(bool)
        f, ev, _ = _series_days(uid, days, y, c, revenue, counts, cfg, sku_prior, ratio, shut,
                                since=start, flagged_only=flagged_only)
        frames.append(f)
        events += ev
    return pd.concat(frames, ignore_index=True), events


def score_sales(
    series: pd.DataFrame, as_of: object, *, config: SalesAnomalyConfig | None = None,
    since: object | None = None,
) -> pd.DataFrame:
    """Every day of every series up to ``as_of``: ``series_id, ds, observed, expected, lower,
    upper, score, valid, flag`` (``valid``: scored at all; what ``detect_sales_anomalies``
    reports are the flagged days, plus the multi-day events). With ``since``, the days before
    it have no band, score or verdict (they are computed only as the context of the later
    days)."""
    return _score_all(series, as_of, config or SalesAnomalyConfig(), since)[0]


def _event_row(ev: dict, as_of: date, cfg: SalesAnomalyConfig) -> tuple:
    uid, k = ev["series_id"], ev["k"]
    obs, exp = ev["observed"] * k, ev["expected"] * k
    up = ev["up"]
    if ev["kind"] in ("stockout", "outage"):
        lo, hi = exp * cfg.drop_ratio, exp * cfg.spike_ratio
        severity = "high" if ev["days"] >= 3 or ev["kind"] == "outage" else "medium"
    else:
        lo, hi = exp * (1 - cfg.shift_effect), exp * (1 + cfg.shift_effect)
        r = obs / exp if exp > 0 else math.inf
        severity = ("high" if (r >= 2 or r <= 0.5) else
                    "medium" if (r >= 1.5 or r <= 2 / 3) else "low")
    score = math.copysign(math.sqrt(2 * max(ev["evidence"], 0.0)), 1.0 if up else -1.0)
    day = ev["ds"].date()
    note = _event_note(uid, day, ev["last_ds"].date(), ev["days"], obs, exp, ev["kind"], up,
                       severity, cfg.currency)
    return (as_of, uid, day, float(obs), float(exp), float(lo), float(hi), float(score),
            "up" if up else "down", severity, ev["kind"], note)


def _event_note(uid: str, day: date, last: date, days: int, obs: float, exp: float, kind: str,
                up: bool, severity: str, currency: str) -> str:
    unit = "revenue" if uid == TOTAL else "units"
    what = "shop revenue" if uid == TOTAL else f"sales of {uid}"
    so_far = f"{days} open day{'' if days == 1 else 's'} so far (since {day:%a %d %b %Y}, " \
             f"last {last:%a %d %b %Y})"
    if kind == "outage":
        return (f"No sales at all in the shop for {so_far}, where "
                f"{_fmt(exp, unit, currency)} were expected: an outage, or a closure to "
                f"configure? {severity.capitalize()} severity.")
    if kind == "stockout":
        per_day = exp / max(days, 1)
        return (f"No {what} for {so_far}, where {_fmt(exp, unit, currency)} were expected "
                f"(about {_fmt(round(per_day, 1), unit, currency)} a day): out of stock or "
                f"delisted? {severity.capitalize()} severity.")
    r = obs / exp if exp > 0 else math.inf
    rel = f"{(r - 1) * 100:.0f}% above" if up else f"{(1 - r) * 100:.0f}% below"
    return (f"A level shift: {what} ran {rel} the expected level for {so_far}: "
            f"{_fmt(obs, unit, currency)} where {_fmt(exp, unit, currency)} were expected; "
            f"{severity} severity.")


def detect_sales_anomalies(
    series: pd.DataFrame,
    as_of: object,
    lookback_days: int | None = 7,
    *,
    config: SalesAnomalyConfig | None = None,
) -> pd.DataFrame:
    """Unusual days of every series in ``series`` (``unique_id, ds, y``: ``TOTAL`` revenue and
    sku units, as ``build_series`` makes them, zero days included), for the ``lookback_days``
    days ending on ``as_of`` (``None``: the whole history), and the multi-day events (stock-out
    runs, level shifts) found by then that reach into those days, one row each, dated by their
    first day. Returns ``ml.sales_anomalies`` rows, sorted by ``ds``, then ``TOTAL`` first,
    then series id; dates as ``datetime.date``.

    With a lookback only the last ``CONTEXT_DAYS`` before it are read: every trailing window and
    the year-before comparison fit in them."""
    cfg = config or SalesAnomalyConfig()
    end = pd.Timestamp(as_of).normalize()
    since = None
    if lookback_days is not None:
        since = end - pd.Timedelta(days=int(lookback_days) - 1)
        series = series[pd.to_datetime(series["ds"]) >= since - pd.Timedelta(days=CONTEXT_DAYS)]
    scored, events = _score_all(series, end, cfg, since, flagged_only=True)
    hits = scored[scored["flag"].astype(bool)]
    rows = []
    as_of_date = end.date()
    for r in hits.itertuples(index=False):
        up = r.observed > r.upper
        ratio = r.observed / r.expected if r.expected > 0 else math.inf
        if up:
            kind = "spike"
        elif r.series_id == TOTAL and ratio <= cfg.outage_ratio:
            kind = "outage"
        else:
            kind = "drop"
        severity = "high" if kind == "outage" else _severity(ratio, up)
        day = r.ds.date()
        rows.append((
            as_of_date, r.series_id, day, float(r.observed), float(r.expected), float(r.lower),
            float(r.upper), float(r.score), "up" if up else "down", severity, kind,
            _sales_note(r.series_id, day, float(r.observed), float(r.expected), float(r.lower),
                        float(r.upper), kind, severity, cfg.currency),
        ))
    rows += [_event_row(ev, as_of_date, cfg) for ev in events]
    out = _typed(pd.DataFrame(rows, columns=ANOMALY_COLUMNS))
    if len(out):
        out["_t"] = out["series_id"] != TOTAL
        out = out.sort_values(["ds", "_t", "series_id"], kind="stable").drop(columns="_t")
        # one row per alert key: an event and a day row of its first day are the same alert
        out = out.drop_duplicates(["series_id", "ds", "direction"], keep="last")
    return out.reset_index(drop=True)


# --------------------------------------------------------------------------- stock

def detect_stock_anomalies(
    snapshots: pd.DataFrame,
    units_sold: pd.DataFrame,
    as_of: object,
    lookback_days: int | None = 7,
    *,
    min_units: int = 2,
    tolerance: float = 0.05,
) -> pd.DataFrame:
    """Stock that fell by more than the units sold, between consecutive snapshots.

    ``snapshots``: ``snapshot_date, sku, stock_quantity`` (closing stock of the day);
    ``units_sold``: ``sale_date, sku, units`` (``marts.product_daily_sales``). A loss counts when
    it is at least ``min_units`` and ``tolerance`` of the previous stock. Reported for snapshots
    in the ``lookback_days`` days ending on ``as_of`` (``None``: all), as ``ml.sales_anomalies``
    rows of kind ``stock_drop``, sorted by ``ds`` then sku.
    """
    end = pd.Timestamp(as_of).normalize()
    if snapshots is None or not len(snapshots):
        return _typed(pd.DataFrame(columns=ANOMALY_COLUMNS))
    snap = pd.DataFrame({
        "ds": pd.to_datetime(snapshots["snapshot_date"]).dt.normalize().astype("datetime64[ns]"),
        "sku": snapshots["sku"].astype(str),
        "stock": pd.to_numeric(snapshots["stock_quantity"], errors="coerce").astype(float),
    })
    snap = snap[(snap["ds"] <= end) & snap["stock"].notna()]
    snap = snap.drop_duplicates(["sku", "ds"], keep="last").sort_values(["ds", "sku"])
    if units_sold is not None and len(units_sold):
        sold = pd.DataFrame({
            "ds": pd.to_datetime(units_sold["sale_date"]).dt.normalize().astype("datetime64[ns]"),
            "sku": units_sold["sku"].astype(str),
            "units": pd.to_numeric(units_sold["units"].astype(float), errors="coerce").fillna(0.0),
        })
        sold = sold[sold["ds"] <= end].groupby(["sku", "ds"], as_index=False)["units"].sum()
        sold["cum"] = sold.groupby("sku")["units"].cumsum()
        snap = pd.merge_asof(snap, sold[["ds", "sku", "cum"]].sort_values("ds"), on="ds",
                             by="sku", direction="backward")
        snap["cum"] = snap["cum"].fillna(0.0)
    else:
        snap["cum"] = 0.0
    snap = snap.sort_values(["sku", "ds"], kind="stable").reset_index(drop=True)
    g = snap.groupby("sku", sort=False)
    snap["prev_ds"] = g["ds"].shift(1)
    snap["prev_stock"] = g["stock"].shift(1)
    snap["sold"] = snap["cum"] - g["cum"].shift(1)
    pairs = snap.dropna(subset=["prev_stock"])
    if lookback_days is not None:
        pairs = pairs[pairs["ds"] > end - pd.Timedelta(days=int(lookback_days))]
    expected = pairs["prev_stock"] - pairs["sold"]
    loss = expected - pairs["stock"]
    tol = np.maximum(float(min_units), tolerance * pairs["prev_stock"])
    hit = pairs[(loss >= tol) & (pairs["prev_stock"] > 0)]
    rows = []
    as_of_date = end.date()
    for r in hit.itertuples(index=False):
        exp = r.prev_stock - r.sold
        lost = exp - r.stock
        limit = max(float(min_units), tolerance * r.prev_stock)
        share = lost / r.prev_stock
        severity = "high" if share >= 0.5 else "medium" if share >= 0.2 else "low"
        since = "the day before" if (r.ds - r.prev_ds).days == 1 else f"{r.prev_ds:%d %b}"
        note = (
            f"Stock of {r.sku} on {r.ds:%a %d %b %Y}: {int(r.stock)} units where "
            f"{int(round(exp))} were expected ({int(r.prev_stock)} on {since}, "
            f"{int(round(r.sold))} sold since); {int(round(lost))} units ({share * 100:.0f}% of "
            f"the stock) went missing without a sale (breakage, theft or a miscount?), "
            f"{severity} severity."
        )
        rows.append((
            as_of_date, r.sku, r.ds.date(), float(r.stock), float(max(exp, 0.0)),
            float(max(exp - limit, 0.0)), math.nan, float(-lost / math.sqrt(limit)), "down",
            severity, "stock_drop", note,
        ))
    out = _typed(pd.DataFrame(rows, columns=ANOMALY_COLUMNS))
    return out.sort_values(["ds", "series_id"], kind="stable").reset_index(drop=True)
