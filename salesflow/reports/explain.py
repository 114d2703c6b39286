"""Why revenue moved: a change between two periods explained in one or two sentences.

``revenue_change(con, current, base)`` reads the same figures the reports print:
``marts.daily_sales`` for revenue and orders, ``marts.product_daily_sales`` for the revenue of
each sku. Revenue is the sum of the sale lines' subtotals (as every mart defines it, not the
sales' ``total_amount``); ``marts.daily_sales.revenue`` is the sum of the day's product rows, so
the amounts per product or category add up to the report's change to the cent. Should the two
marts ever disagree (one rebuilt without the other), the difference is kept apart in
``unattributed`` and counted in ``rest``, never spread over the contributors.

Two parts of the change:

* Orders and average order value (AOV). Revenue = orders x AOV; the change is split with the
  midpoint (Shapley) rule, ``orders_effect = (o1 - o0) x (a1 + a0) / 2`` and
  ``aov_effect = (a1 - a0) x (o1 + o0) / 2``, whose sum is exactly ``r1 - r0``. The orders
  effect is rounded half-up to the cent and the AOV effect is the change minus it, so the two
  still add up to the change to the cent (the rounding remainder, at most half a cent, sits on
  the AOV side). A side without orders has no AOV: it takes the other side's, so the whole
  change is the orders effect (a day without sales lost its orders, not its average order).
* Contributors: per category when ``raw.inventory`` names more than one category (other than
  ``Uncategorized``), else per product (``by="auto"``). A sku missing from the inventory, or
  without a category, is ``Uncategorized``. Each contributor's amount is its current revenue
  minus its base revenue. The ``top`` contributors are the largest by absolute amount, listed
  with those moving the same way as the total first; ``rest`` is the change minus their sum.

``RevenueChange.sentences`` says it in one or two sentences: the revenue, its change in percent
and the two effects; then the contributors: "made most of the change" when they all moved with
it and make at least half of it, "drove the change, partly offset by ..." when some moved
against it, else "Largest moves: ...; the other N together". A base period without any day in
``marts.daily_sales`` (before the shop's history) has "no figures to compare with", which is
not the same as a base without sales.

``explain_total_anomaly`` attributes a ``TOTAL`` (whole-shop) anomaly of ``ml.sales_anomalies``
to categories (products when the shop has no categories). The expected revenue of a category is
the day's expected revenue times the category's share of the shop's revenue on the same weekday
of the previous 4 weeks (for an event of several days: the 28 days before its first day); its
gap is its observed revenue minus that. The categories with the largest gap in the anomaly's
direction are named with their share of the total gap. ``TOTAL`` rows report revenue (the
anomaly scoring may count orders, but its observed and expected figures are revenue); a figure
of another grain (``quantity="orders"`` or ``"units"``) gets the sentence without attribution.
``explain_anomaly(con, row)`` does the same for a row of ``ml.sales_anomalies``, over the days
of a multi-day event.

``comparison_periods(kind, start, end)``: the periods a report is compared with, each with the
label the sentences print after "vs".
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from math import floor

import duckdb

from salesflow.fmt import fmt_change, fmt_value, span_label
from salesflow.marts import CATEGORY_OF
from salesflow.warehouse import has_table

UNCATEGORIZED = "Uncategorized"
TOTAL = "TOTAL"  # the whole shop's series id in ml.*
BY = ("auto", "category", "product")
CENT = Decimal("0.01")
ZERO = Decimal("0.00")
#: same weekday over this many previous weeks gives the categories' shares of an expected day
SHARE_WEEKS = 4
#: an anomaly's observed figure and the warehouse's revenue of its days differ by at most this
#: share when they are the same figure (an event's revenue is its orders x a mean order value)
MATCH_TOLERANCE = Decimal("0.10")


@dataclass(frozen=True)
class Contribution:
    """One product's or category's part of a change: ``amount`` = current - base revenue."""

    label: str
    key: str
    amount: Decimal
    current: Decimal = ZERO
    base: Decimal = ZERO


@dataclass(frozen=True)
class RevenueChange:
    current: Decimal
    base: Decimal
    change: Decimal
    pct: Decimal | None  # percent of the base, 2 decimals; None when the base is not positive
    orders_current: int
    orders_base: int
    aov_current: Decimal | None
    aov_base: Decimal | None
    orders_effect: Decimal
    aov_effect: Decimal  # orders_effect + aov_effect == change
    by: str  # "product" or "category"
    contributors: list[Contribution]
    rest: Decimal  # change - sum(contributors)
    others: int = 0  # keys that moved but are not among the contributors
    unattributed: Decimal = ZERO  # change the product rows do not hold (marts out of step)
    current_period: tuple[date, date] | None = None
    base_period: tuple[date, date] | None = None
    aov_direction: int = 0  # sign of the exact AOV difference (both sides with orders)
    # days of each period that marts.daily_sales holds (None: not counted); a base period
    # without any is not compared ("no figures"), unlike one whose days sold nothing
    current_days: int | None = None
    base_days: int | None = None

    def sentences(self, currency: str, base_label: str) -> list[str]:
        """One or two plain sentences; ``base_label`` names the base period after "vs"."""
        out = [self._headline(currency, base_label)]
        second = self._contributors_sentence(currency)
        if second:
            out.append(second)
        return out

    # -- sentence parts ------------------------------------------------------------------
    def _headline(self, currency: str, base_label: str) -> str:
        money = lambda v: fmt_value(v, "money", currency)  # noqa: E731
        if self.base_days == 0:
            return f"Revenue {money(self.current)} (no figures for {base_label} to compare with)."
        if self.orders_current == 0 and self.current == 0:
            if self.orders_base == 0 and self.base == 0:
                return f"No sales, as for {base_label}."
            return (f"No sales (vs {money(self.base)} for {base_label} from "
                    f"{_count(self.orders_base, 'order')}).")
        if self.orders_base == 0 and self.base == 0:
            aov = f", averaging {money(self.aov_current)}" if self.aov_current is not None else ""
            return (f"Revenue {money(self.current)} (vs no sales for {base_label}): "
                    f"{_count(self.orders_current, 'order')}{aov}.")
        if self.change == 0:
            head = f"Revenue {money(self.current)} (unchanged vs {base_label})"
        elif self.pct is None or self.pct == 0:  # no base to divide by, or under 0.005 %
            amount = fmt_change(self.change, "money", currency)
            head = f"Revenue {money(self.current)} ({amount} vs {base_label})"
        else:
            head = f"Revenue {money(self.current)} ({_pct_text(self.pct)} vs {base_label})"
        if self.orders_current == self.orders_base and self.aov_direction == 0:
            return head + f": the same number of orders ({self.orders_current:,}) and average order."
        return head + ": " + self._effects(currency) + "."

    def _effects(self, currency: str) -> str:
        d = self.orders_current - self.orders_base
        if d == 0:
            orders = "the same number of orders"
        else:
            word = "more" if d > 0 else "fewer"
            orders = (f"{abs(d):,} {word} order{'' if abs(d) == 1 else 's'} "
                      f"({fmt_change(self.orders_effect, 'money', currency)})")
        both = self.orders_current > 0 and self.orders_base > 0
        if not both or self.aov_direction == 0:
            return orders + (" at the same average order" if both else "")
        word = "higher" if self.aov_direction > 0 else "lower"
        aov = f"a {word} average order ({fmt_change(self.aov_effect, 'money', currency)})"
        opposite = d != 0 and (d > 0) != (self.aov_direction > 0)
        return f"{orders} {'but' if opposite else 'and'} {aov}"

    def _contributors_sentence(self, currency: str) -> str | None:
        if self.base_days == 0:
            return None  # nothing to compare with: the contributors would be the top sellers
        moved = [c for c in self.contributors if c.amount != 0]
        if not moved:
            return None
        def text(cs: list[Contribution]) -> str:
            return _join([f"{c.label} {fmt_change(c.amount, 'money', currency)}" for c in cs])

        total = sum((c.amount for c in moved), ZERO)
        covered = 2 * abs(total) >= abs(self.change)  # the listed ones make half the change or more
        if self.change != 0 and (total > 0) == (self.change > 0) and covered:
            same = [c for c in moved if (c.amount > 0) == (self.change > 0)]
            against = [c for c in moved if (c.amount > 0) != (self.change > 0)]
            if against:
                return f"{text(same)} drove the change, partly offset by {text(against)}."
            if self.rest == 0 and self.others == 0:
                return f"{text(same)} made the change."
            return f"{text(same)} made most of the change."
        noun = "categories" if self.by == "category" else "products"
        tail = ""
        if self.others:
            one = "category" if self.by == "category" else "product"
            what = f"the other {self.others:,} {noun if self.others > 1 else one}"
            tail = f"; {what} {fmt_change(self.rest, 'money', currency)} together"
        return f"Largest moves: {text(moved)}{tail}."


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _join(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def _pct_text(pct: Decimal, signed: bool = True) -> str:
    """A percentage for a sentence: whole percent from 1 % on, else one decimal (two when even
    that rounds to zero)."""
    mag = abs(Decimal(pct))
    for places in (0, 1, 2):
        q = mag.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        if (places == 0 and q >= 1) or (places > 0 and q > 0) or places == 2:
            break
    sign = ("+" if pct > 0 else "-" if pct < 0 else "") if signed else ""
    return f"{sign}{q}%"


# -- exact arithmetic ------------------------------------------------------------------------
def _cents(value: Fraction) -> Decimal:
    """``value`` rounded half-up (ties away from zero) to the cent, exactly."""
    n = value * 100
    q = floor(abs(n) + Fraction(1, 2))
    return Decimal(q if n >= 0 else -q).scaleb(-2).quantize(CENT)


def _aov(revenue: Decimal, orders: int) -> Decimal | None:
    return _cents(Fraction(revenue) / orders) if orders > 0 else None


def decompose(r1: Decimal, o1: int, r0: Decimal, o0: int) -> tuple[Decimal, Decimal]:
    """``(orders_effect, aov_effect)`` of a revenue change from (r0, o0) to (r1, o1), midpoint
    split; they add up to ``r1 - r0`` exactly (remainder of rounding on the AOV side)."""
    change = Decimal(r1) - Decimal(r0)
    if o1 <= 0 and o0 <= 0:
        return ZERO, change.quantize(CENT)
    a1 = Fraction(r1) / o1 if o1 > 0 else None
    a0 = Fraction(r0) / o0 if o0 > 0 else None
    a1 = a0 if a1 is None else a1
    a0 = a1 if a0 is None else a0
    orders_effect = _cents((o1 - o0) * (a1 + a0) / 2)
    return orders_effect, (change - orders_effect).quantize(CENT)


# -- reading ---------------------------------------------------------------------------------
def shop_has_categories(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether ``raw.inventory`` names more than one category besides ``Uncategorized``."""
    if not has_table(con, "raw", "inventory"):
        return False
    n = con.execute(f"""WITH {CATEGORY_OF}
                        SELECT count(DISTINCT category) FROM category_of
                        WHERE category <> '{UNCATEGORIZED}'""").fetchone()[0]
    return n > 1


def _resolve_by(con, by: str) -> str:
    if by not in BY:
        raise ValueError(f"by must be one of {', '.join(BY)}, got {by!r}")
    if by == "auto":
        return "category" if shop_has_categories(con) else "product"
    if by == "category" and not has_table(con, "raw", "inventory"):
        return "product"
    return by


def _totals(con, start: date, end: date) -> tuple[Decimal, int, int]:
    """Revenue, orders and the number of days ``marts.daily_sales`` holds in [start, end]."""
    revenue, orders, days = con.execute(
        """SELECT coalesce(sum(revenue), 0), coalesce(sum(orders), 0), count(*)
           FROM marts.daily_sales WHERE sale_date BETWEEN ? AND ?""", [start, end]).fetchone()
    return Decimal(revenue).quantize(CENT), int(orders), int(days)


def _per_key(con, by: str, periods: list[tuple[date, date]]) -> dict[str, list[Decimal]]:
    """Revenue per key (category or sku) in each of ``periods``: ``{key: [revenue, ...]}``."""
    key = "coalesce(c.category, '" + UNCATEGORIZED + "')" if by == "category" else "p.sku"
    join = "LEFT JOIN category_of c ON c.sku = p.sku" if by == "category" else ""
    with_ = f"WITH {CATEGORY_OF}" if by == "category" else ""
    sums = ", ".join(
        f"coalesce(sum(p.revenue) FILTER (WHERE p.sale_date BETWEEN ${2 * i + 1} AND ${2 * i + 2}), 0)"
        for i in range(len(periods)))
    where = " OR ".join(
        f"p.sale_date BETWEEN ${2 * i + 1} AND ${2 * i + 2}" for i in range(len(periods)))
    params = [d for p in periods for d in p]
    rows = con.execute(f"""{with_}
        SELECT {key} AS k, {sums} FROM marts.product_daily_sales p {join}
        WHERE {where} GROUP BY k""", params).fetchall()
    return {str(r[0]): [Decimal(v).quantize(CENT) for v in r[1:]] for r in rows}


def product_labels(con, skus: list[str]) -> dict[str, str]:
    """A name per sku: the catalogue's, else the latest sale line's, else the sku itself."""
    if not skus:
        return {}
    names: dict[str, str] = {}
    if has_table(con, "raw", "products"):
        names.update({s: n for s, n in con.execute(
            "SELECT sku, any_value(name) FROM raw.products WHERE sku IN (SELECT unnest(?)) "
            "AND nullif(trim(name), '') IS NOT NULL GROUP BY sku", [skus]).fetchall()})
    missing = [s for s in skus if s not in names]
    if missing and has_table(con, "raw", "sale_items"):
        names.update({s: n for s, n in con.execute(
            "SELECT sku, arg_max(product_name, (sale_id, line_no)) FROM raw.sale_items "
            "WHERE sku IN (SELECT unnest(?)) AND nullif(trim(product_name), '') IS NOT NULL "
            "GROUP BY sku", [missing]).fetchall()})
    return {s: str(names.get(s) or s) for s in skus}


def _ranked(amounts: dict[str, Decimal], direction: int, top: int) -> list[str]:
    """The ``top`` keys of largest absolute amount (ties by key), those moving with
    ``direction`` listed first."""
    moved = sorted((k for k, v in amounts.items() if v != 0), key=lambda k: (-abs(amounts[k]), k))
    chosen = moved[:top]
    if direction == 0:
        return chosen
    return sorted(chosen, key=lambda k: ((amounts[k] > 0) != (direction > 0), -abs(amounts[k]), k))


def revenue_change(con: duckdb.DuckDBPyConnection, current: tuple[date, date],
                   base: tuple[date, date], *, by: str = "auto", top: int = 3) -> RevenueChange:
    """The revenue change from ``base`` to ``current`` (inclusive date ranges), split into
    orders and average order value, and its ``top`` largest contributors (see the module)."""
    if top < 0:
        raise ValueError(f"top must be >= 0, got {top}")
    for start, end in (current, base):
        if start > end:
            raise ValueError(f"period starts {start} after it ends {end}")
    by = _resolve_by(con, by)
    r1, o1, days1 = _totals(con, *current)
    r0, o0, days0 = _totals(con, *base)
    change = r1 - r0
    orders_effect, aov_effect = decompose(r1, o1, r0, o0)
    per_key = _per_key(con, by, [tuple(current), tuple(base)])
    amounts = {k: cur - bas for k, (cur, bas) in per_key.items()}
    unattributed = change - sum(amounts.values(), ZERO)
    direction = (change > 0) - (change < 0)
    keys = _ranked(amounts, direction, top)
    labels = product_labels(con, keys) if by == "product" else {k: k for k in keys}
    contributors = [Contribution(labels[k], k, amounts[k], per_key[k][0], per_key[k][1]) for k in keys]
    aov_dir = 0
    if o1 > 0 and o0 > 0:
        diff = Fraction(r1) / o1 - Fraction(r0) / o0
        aov_dir = (diff > 0) - (diff < 0)
    pct = None
    if r0 > 0:
        pct = (change * 100 / r0).quantize(CENT, rounding=ROUND_HALF_UP)
    return RevenueChange(
        current=r1, base=r0, change=change, pct=pct, orders_current=o1, orders_base=o0,
        aov_current=_aov(r1, o1), aov_base=_aov(r0, o0), orders_effect=orders_effect,
        aov_effect=aov_effect, by=by, contributors=contributors,
        rest=change - sum((c.amount for c in contributors), ZERO),
        others=sum(1 for k, v in amounts.items() if v != 0 and k not in keys),
        unattributed=unattributed, current_period=tuple(current), base_period=tuple(base),
        aov_direction=aov_dir, current_days=days1, base_days=days0,
    )


# -- TOTAL anomalies -------------------------------------------------------------------------
@dataclass(frozen=True)
class GapShare:
    label: str
    key: str
    gap: Decimal  # observed - expected revenue of the category (or product)
    share_pct: Decimal  # of the total gap, in percent


@dataclass(frozen=True)
class AnomalyExplanation:
    sentence: str
    pct: Decimal | None  # observed vs expected, in percent of the expected
    by: str | None  # "category", "product", or None without attribution
    shares: list[GapShare] = field(default_factory=list)
    spread: int = 0  # categories (products) that moved the anomaly's way


def _share_days(day: date, end: date) -> list[tuple[date, date]]:
    if end == day:
        return [(day - timedelta(weeks=w), day - timedelta(weeks=w)) for w in range(1, SHARE_WEEKS + 1)]
    return [(day - timedelta(days=7 * SHARE_WEEKS), day - timedelta(days=1))]


def total_anomaly_attribution(con: duckdb.DuckDBPyConnection, day: date, observed, expected, *,
                              top: int = 1, end: date | None = None, quantity: str = "revenue",
                              currency: str = "", by: str = "auto") -> AnomalyExplanation | None:
    """The explanation of a ``TOTAL`` anomaly with its figures (see ``explain_total_anomaly``)."""
    end = day if end is None else end
    if end < day:
        raise ValueError(f"end {end} is before day {day}")
    if observed is None or expected is None:
        return None
    obs, exp = Decimal(repr(float(observed))), Decimal(repr(float(expected)))
    if not (obs.is_finite() and exp.is_finite()) or exp <= 0 or obs == exp:
        return None
    pct = ((obs - exp) * 100 / exp).quantize(CENT, rounding=ROUND_HALF_UP)
    what = {"revenue": "Revenue", "orders": "Orders", "units": "Units"}.get(quantity, quantity.capitalize())
    if obs >= 2 * exp:
        head = f"{what} {(obs / exp).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP)} times expected"
    else:
        head = f"{what} {_pct_text(pct, signed=False)} {'above' if obs > exp else 'below'} expected"
    if obs <= 0:
        return AnomalyExplanation(head + ": no sales at all.", pct, None)
    plain = AnomalyExplanation(head + ".", pct, None)
    if quantity != "revenue" or top < 1:
        return plain
    if not (has_table(con, "marts", "product_daily_sales") and has_table(con, "marts", "daily_sales")):
        return plain
    by = _resolve_by(con, by)
    history = _share_days(day, end)
    per_key = _per_key(con, by, [(day, end), *history])
    seen = sum((v[0] for v in per_key.values()), ZERO)
    if abs(seen - obs) > MATCH_TOLERANCE * max(abs(seen), abs(obs)) + CENT:
        # not this span's revenue: another grain, an event's days not given, stale marts
        return plain
    hist_total = sum((sum(v[1:], ZERO) for v in per_key.values()), ZERO)
    if hist_total <= 0:
        return plain
    # expected per key = the anomaly's expected revenue x the key's share of the history
    gaps = {k: Fraction(v[0]) - Fraction(exp) * Fraction(sum(v[1:], ZERO)) / Fraction(hist_total)
            for k, v in per_key.items()}
    total_gap = sum(gaps.values(), Fraction(0))
    up = obs > exp
    if total_gap == 0 or (total_gap > 0) != up:
        return plain
    same_way = sorted((k for k, g in gaps.items() if g != 0 and (g > 0) == up),
                      key=lambda k: (-abs(gaps[k]), k))
    named = same_way[:top]
    labels = product_labels(con, named) if by == "product" else {k: k for k in named}
    shares = [GapShare(labels[k], k, _cents(gaps[k]),
                       Decimal(floor(gaps[k] / total_gap * 100 + Fraction(1, 2))))
              for k in named]
    parts = [f"{s.label} ({fmt_change(s.gap, 'money', currency)})" for s in shares]
    total_share = sum((s.share_pct for s in shares), Decimal(0))
    if len(shares) == 1 and total_share > 100:
        tail = f"{parts[0]} alone made more than the whole gap ({total_share}%)"
    else:
        tail = f"{_join(parts)} accounted for {total_share}% of the gap"
    if total_share < 50 and len(same_way) > len(named):
        noun = "categories" if by == "category" else "products"
        head += f", spread across {len(same_way):,} {noun}"
    return AnomalyExplanation(f"{head}; {tail}.", pct, by, shares, len(same_way))


def explain_total_anomaly(con: duckdb.DuckDBPyConnection, day: date, observed, expected, *,
                          top: int = 1, end: date | None = None, quantity: str = "revenue",
                          currency: str = "") -> str | None:
    """"Revenue 38% below expected; Bakery (-420.00 EUR) accounted for 60% of the gap." for the
    shop's anomaly of ``day`` (to ``end`` for an event of several days: pass its last day, as
    its observed and expected figures are the event's sums); None when nothing is expected
    (``expected`` <= 0), a figure is missing (NULL or NaN) or observed equals expected.
    Without categories the products are named; when the named ones make less than half of the
    gap, the sentence says how many it is spread across. A spike of twice the expected or more reads "N times expected"; a day
    without sales reads "no sales at all" and names nothing. No attribution either with a
    ``quantity`` other than revenue, without history to share the expected revenue by, or when
    ``observed`` is not (within ``MATCH_TOLERANCE``) the warehouse's revenue of those days."""
    found = total_anomaly_attribution(con, day, observed, expected, top=top, end=end,
                                      quantity=quantity, currency=currency)
    return None if found is None else found.sentence


_EVENT_LAST = re.compile(r"last \w+ (\d{1,2} \w+ \d{4})\)")
EVENT_KINDS = ("level_shift", "outage")


def event_last_day(note: str | None) -> date | None:
    """The last day of a multi-day event of ``ml.sales_anomalies``, read from its note
    ("... (since Fri 22 Apr 2011, last Mon 25 Apr 2011) ..."); None when the note has none."""
    found = _EVENT_LAST.search(note or "")
    if not found:
        return None
    try:
        return datetime.strptime(found.group(1), "%d %b %Y").date()
    except ValueError:
        return None


def explain_anomaly(con: duckdb.DuckDBPyConnection, row, *, top: int = 1,
                    currency: str = "") -> str | None:
    """``explain_total_anomaly`` for a row of ``ml.sales_anomalies`` (a mapping with its
    columns); None for a product's row. A ``TOTAL`` event (level shift, outage) reports the
    sums of its days: they are attributed over its days, up to the last day its note names."""
    if row["series_id"] != TOTAL:
        return None
    day = row["ds"]
    day = day.date() if isinstance(day, datetime) else day
    end = None
    if row.get("kind") in EVENT_KINDS:
        end = event_last_day(row.get("note"))
        end = end if end is not None and end >= day else None
    return explain_total_anomaly(con, day, row["observed"], row["expected"], top=top, end=end,
                                 currency=currency)


# -- comparison periods ----------------------------------------------------------------------
def _month_len(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _month_span(year: int, month: int, start: date, end: date) -> tuple[date, date]:
    """The span of (year, month) matching [start, end] in its own month: the whole month when
    the period is a whole month (or runs to its month's end), else the same days of month,
    clipped to the month's length (Feb 29 becomes Feb 28)."""
    n = _month_len(year, month)
    last = n if end.day == _month_len(end.year, end.month) else min(end.day, n)
    first = min(start.day, last)
    return date(year, month, first), date(year, month, last)


def comparison_periods(kind: str, start: date, end: date) -> list[tuple[str, date, date]]:
    """What a ``kind`` report's period [start, end] is compared with: ``(label, start, end)``.

    * ``daily``: the same weekday last week ("Tuesday 3 June 2025");
    * ``weekly``: the previous week, and the same ISO week (same weekdays) last year; ISO week
      53 of a year whose previous year has 52 weeks is compared with week 52;
    * ``monthly``: the previous month and the same month last year, each over the same days of
      month (the whole month when the period runs to its month's end; a day beyond a shorter
      month's end, such as Feb 29, clipped to it).
    The label is what a sentence prints after "vs".
    """
    if start > end:
        raise ValueError(f"period starts {start} after it ends {end}")
    week = timedelta(weeks=1)
    if kind == "daily":
        s, e = start - week, end - week
        return [(span_label(s, e), s, e)]
    if kind == "weekly":
        length = end - start
        year, wk, weekday = start.isocalendar()
        weeks_last_year = date(year - 1, 12, 28).isocalendar()[1]
        ly = date.fromisocalendar(year - 1, min(wk, weeks_last_year), weekday)
        return [("the previous week", start - week, end - week),
                ("the same week last year", ly, ly + length)]
    if kind == "monthly":
        prev_year, prev_month = (start.year, start.month - 1) if start.month > 1 else (start.year - 1, 12)
        p = _month_span(prev_year, prev_month, start, end)
        y = _month_span(start.year - 1, start.month, start, end)
        return [(span_label(*p), *p), (span_label(*y), *y)]
    raise ValueError(f"unknown report kind {kind!r}; expected daily, weekly or monthly")
