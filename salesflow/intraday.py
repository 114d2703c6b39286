"""Today's figures while the shop trades: refreshed from the core's ``/sales/today`` during the day.

``refresh_today`` reads the core's listing of today's sales, merges it into ``raw.sales`` /
``raw.sale_items`` by sale id (a refresh never duplicates a sale), reconciles it, rebuilds
today's rows of ``marts.daily_sales`` and ``marts.product_daily_sales`` marked provisional, and
writes the one row of ``marts.today``: the KPIs so far, compared with the same weekday last
week up to the same time of day. "Today" and "now" are the core's (its ``Date`` header, in the
shop's timezone), never the machine's. The daily run after midnight closes the day: it writes
the day's rows again with ``provisional = false``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb

from salesflow import extract, marts
from salesflow.warehouse import has_table, transaction

TODAY_DDL: dict[str, str] = {
    "marts.today": """
        CREATE TABLE IF NOT EXISTS marts.today (
            day DATE, as_of_ts TIMESTAMP, orders INTEGER, units BIGINT, revenue DECIMAL(38,2),
            avg_order_value DECIMAL(38,2), last_sale_ts TIMESTAMP, compare_day DATE,
            compare_orders INTEGER, compare_units BIGINT, compare_revenue DECIMAL(38,2),
            revenue_change_pct DECIMAL(18,2), orders_change_pct DECIMAL(18,2),
            provisional BOOLEAN, refreshed_at TIMESTAMP)""",
}
TODAY_PLAN = extract.SalesFetchPlan("today", None)
CENT = Decimal("0.01")
# a change beyond this (a comparison of a few cents) is left NULL rather than overflow the column
PCT_MAX = Decimal("9999999999999999.99")


@dataclass
class DayFigures:
    orders: int
    units: int
    revenue: Decimal
    last_sale_ts: datetime | None = None


@dataclass
class TodayRow:
    day: date
    as_of_ts: datetime
    today: DayFigures
    compare_day: date
    compare: DayFigures
    avg_order_value: Decimal | None
    revenue_change_pct: Decimal | None
    orders_change_pct: Decimal | None

    def record(self) -> dict:
        """The row as ``marts.today`` holds it (column: value), without ``refreshed_at``."""
        return {"day": self.day, "as_of_ts": self.as_of_ts, "orders": self.today.orders,
                "units": self.today.units, "revenue": self.today.revenue,
                "avg_order_value": self.avg_order_value, "last_sale_ts": self.today.last_sale_ts,
                "compare_day": self.compare_day, "compare_orders": self.compare.orders,
                "compare_units": self.compare.units, "compare_revenue": self.compare.revenue,
                "revenue_change_pct": self.revenue_change_pct,
                "orders_change_pct": self.orders_change_pct, "provisional": True}


@dataclass
class TodayRefresh:
    day: date
    as_of_ts: datetime
    fetched_sales: int
    download_bytes: int
    download_seconds: float
    written: extract.SalesWrite
    differences: list[dict]
    marts_rows: dict[str, int] = field(default_factory=dict)
    row: TodayRow | None = None

    @property
    def reconciled(self) -> bool:
        return not self.differences


def ensure_today(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in TODAY_DDL.values():
        con.execute(ddl)


def change_pct(current, previous) -> Decimal | None:
    """``(current - previous) / previous`` in percent, half-up to 2 places; NULL when the
    comparison is 0 (no change can be stated) or the change is too large to hold."""
    current, previous = Decimal(current), Decimal(previous)
    if previous == 0:
        return None
    pct = ((current - previous) * 100 / previous).quantize(CENT, rounding=ROUND_HALF_UP)
    return pct if abs(pct) <= PCT_MAX else None


def sales_until(con: duckdb.DuckDBPyConnection, day: date, until: datetime | None = None) -> DayFigures:
    """Orders, units and revenue (sum of line subtotals, as marts.daily_sales) of ``day`` in
    ``raw.sales``, counting only sales stamped at or before ``until`` when given."""
    row = con.execute(
        """SELECT count(*), coalesce(sum(i.units), 0), coalesce(sum(i.revenue), 0), max(s.sale_ts)
           FROM raw.sales s
           LEFT JOIN (SELECT sale_id, sum(quantity) AS units, sum(subtotal) AS revenue
                      FROM raw.sale_items WHERE sale_id IN
                          (SELECT sale_id FROM raw.sales WHERE sale_date = $day)
                      GROUP BY 1) i USING (sale_id)
           WHERE s.sale_date = $day AND ($until IS NULL OR s.sale_ts <= $until)""",
        {"day": day, "until": until},
    ).fetchone()
    return DayFigures(int(row[0]), int(row[1]), Decimal(row[2]).quantize(CENT), row[3])


def today_row(con: duckdb.DuckDBPyConnection, day: date, now: datetime) -> TodayRow:
    """Today's KPIs so far and the same weekday a week earlier up to the same time of day."""
    today = sales_until(con, day)
    compare_day = day - timedelta(days=7)
    compare = sales_until(con, compare_day, datetime.combine(compare_day, now.time()))
    aov = (today.revenue / today.orders).quantize(CENT, rounding=ROUND_HALF_UP) if today.orders else None
    return TodayRow(day, now, today, compare_day, compare, aov,
                    change_pct(today.revenue, compare.revenue), change_pct(today.orders, compare.orders))


def write_today(con: duckdb.DuckDBPyConnection, row: TodayRow, *, refreshed_at: datetime | None = None) -> None:
    """Replace ``marts.today`` with ``row``: one row, for the day still trading."""
    ensure_today(con)
    refreshed_at = refreshed_at or datetime.now(tz=timezone.utc).replace(tzinfo=None)
    record = {**row.record(), "refreshed_at": refreshed_at}
    with transaction(con):
        con.execute("DELETE FROM marts.today")
        con.execute(f"INSERT INTO marts.today ({', '.join(record)}) "
                    f"VALUES ({', '.join('?' for _ in record)})", list(record.values()))


def refresh_today(client, con: duckdb.DuckDBPyConnection, *, workdir: Path,
                  now: datetime | None = None, log=None) -> TodayRefresh:
    """Read ``GET /sales/today``, merge it into raw.* by sale id, reconcile, and (when it
    reconciles) rebuild today's provisional marts and the ``marts.today`` row.

    ``now`` (the core's wall time, shop-local and naive) defaults to the ``Date`` of the
    listing's answer. A listing that does not reconcile leaves the marts as they were: the
    result's ``differences`` say why."""
    download = client.download(TODAY_PLAN.path, Path(workdir) / "sales-today.json")
    now = now or client.server_now()
    day = now.date()
    if log is not None:
        log.info(f"core time {now:%Y-%m-%d %H:%M:%S}: {download.bytes:,d} bytes of today's sales")
    try:
        staged = extract.stage_sales(con, download.path)
    finally:
        download.path.unlink(missing_ok=True)
    written = extract.write_sales_range(con, day, day)
    differences = extract.reconcile_sales(con, day, day, written.held_ids)
    result = TodayRefresh(day, now, staged.sales, download.bytes, download.seconds, written, differences)
    if differences:
        return result
    result.marts_rows = marts.build_daily(con, day, day, provisional=True)
    result.row = today_row(con, day, now)
    write_today(con, result.row)
    return result


def read_today(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The ``marts.today`` row as a dict, or None (also before any refresh made the table); a
    read-only connection will do."""
    if not has_table(con, "marts", "today"):
        return None
    cur = con.execute("SELECT * FROM marts.today ORDER BY day DESC LIMIT 1")
    row = cur.fetchone()
    return None if row is None else dict(zip([d[0] for d in cur.description], row))


# -- the optional outage alert ----------------------------------------------------------------
@dataclass
class OutageVerdict:
    alert: bool
    last_sale_ts: datetime | None
    window_start: datetime
    window_end: datetime
    expected: Decimal
    weeks: int
    reason: str

    @property
    def hours(self) -> int:
        """Whole hours without a sale: since the last sale (a gap is looked at again while it
        lasts), or the window's when there never was one."""
        since = self.last_sale_ts or self.window_start
        return int((self.window_end - since) // timedelta(hours=1))

    def headline(self) -> str:
        hours = "1 hour" if self.hours == 1 else f"{self.hours} hours"
        verb = "was" if self.expected_text == "1" else "were"
        return (f"No sale for {hours} on a {self.window_end:%A}: {self.expected_text} {verb} "
                f"expected between {self.window_start:%H:%M} and {self.window_end:%H:%M}")

    @property
    def expected_text(self) -> str:
        return f"{self.expected.quantize(Decimal('1'), rounding=ROUND_HALF_UP)}"


def outage_verdict(con: duckdb.DuckDBPyConnection, now: datetime, *, hours: int,
                   min_expected: int, weeks: int = 4) -> OutageVerdict:
    """Whether the last ``hours`` without a sale are an outage: expected = the average number of
    sales in the same hours of the same weekday over the last ``weeks`` weeks (raw.sales); an
    alert when no sale came in the window and at least ``min_expected`` were expected."""
    start = now - timedelta(hours=hours)
    last = con.execute("SELECT max(sale_ts) FROM raw.sales WHERE sale_ts <= ?", [now]).fetchone()[0]
    windows = [(start - timedelta(days=7 * k), now - timedelta(days=7 * k)) for k in range(1, weeks + 1)]
    counts = [con.execute("SELECT count(*) FROM raw.sales WHERE sale_ts > ? AND sale_ts <= ?",
                          list(w)).fetchone()[0] for w in windows]
    expected = Decimal(sum(counts)) / weeks if weeks else Decimal(0)
    if last is not None and last > start:
        reason = f"a sale at {last:%H:%M}, within the last {hours} hours"
        alert = False
    elif expected < min_expected:
        reason = f"{expected:.1f} sales expected in those hours, fewer than {min_expected}"
        alert = False
    else:
        reason = "no sale while enough were expected"
        alert = True
    return OutageVerdict(alert, last, start, now, expected, weeks, reason)


def outage_key(verdict: OutageVerdict) -> str:
    """One alert per gap: the gap is named by the last sale before it."""
    since = verdict.last_sale_ts.isoformat() if verdict.last_sale_ts else "never"
    return f"outage:{since}"


def today_line(row: dict, currency: str = "") -> str:
    """A ``marts.today`` row (``read_today``) as one line for a person."""
    unit = f" {currency}" if currency else ""

    def change(pct) -> str:
        return "n/a" if pct is None else f"{Decimal(pct):+.1f}%"

    day, cmp_day = row["day"], row["compare_day"]
    return (f"today {day.isoformat()} up to {row['as_of_ts']:%H:%M}: {row['orders']} orders, "
            f"{row['units']} units, {row['revenue']:,.2f}{unit}; same time last {cmp_day:%A} "
            f"({cmp_day.isoformat()}): {row['compare_orders']} orders, "
            f"{row['compare_revenue']:,.2f}{unit} (revenue {change(row['revenue_change_pct'])}, "
            f"orders {change(row['orders_change_pct'])})")


OUTAGE_HOURS_ENV = "SALESFLOW_OUTAGE_ALERT_HOURS"
OUTAGE_MIN_ENV = "SALESFLOW_OUTAGE_MIN_EXPECTED"
DEFAULT_OUTAGE_MIN_EXPECTED = 20


@dataclass(frozen=True)
class OutageSettings:
    hours: int = 0  # 0: the alert is off
    min_expected: int = DEFAULT_OUTAGE_MIN_EXPECTED

    @property
    def enabled(self) -> bool:
        return self.hours > 0

    @classmethod
    def from_env(cls, environ=None) -> "OutageSettings":
        from salesflow.settings import whole_number_from_env

        return cls(whole_number_from_env(OUTAGE_HOURS_ENV, 0, minimum=0, unit="hours", environ=environ),
                   whole_number_from_env(OUTAGE_MIN_ENV, DEFAULT_OUTAGE_MIN_EXPECTED, minimum=1,
                                         unit="sales", environ=environ))


def outage_message(verdict: OutageVerdict, *, sender: str, recipients, shop_name: str,
                   unsubscribe: str | None = None):
    """The alert e-mail of one gap; its Message-ID derives from the gap, so a repeat is
    recognisably the same message."""
    from salesflow.email_render import render
    from salesflow.mailer import build_message, sender_domain

    headline = verdict.headline()
    ts = verdict.last_sale_ts
    last = f"{ts:%A} {ts.day} {ts:%B %Y}, {ts:%H:%M}" if ts else "none yet"
    body = render("outage", title="No sales coming in", subtitle=shop_name, preheader=headline,
                  shop_name=shop_name, headline=headline, last_sale=last, hours=verdict.hours,
                  expected=verdict.expected_text, weeks=verdict.weeks,
                  window=f"{verdict.window_start:%H:%M} to {verdict.window_end:%H:%M}",
                  weekday=f"{verdict.window_end:%A}", unsubscribe=unsubscribe)
    token = "".join(ch for ch in outage_key(verdict) if ch.isalnum()) or "gap"
    return build_message(sender=sender, to=recipients, subject=f"[SalesFlow] {headline}",
                         text=body.text, html=body.html,
                         message_id=f"<outage.{token}@{sender_domain(sender)}>",
                         headers={"X-SalesFlow-Alert": "outage"})


def alert_outage_once(con: duckdb.DuckDBPyConnection, mailer, verdict: OutageVerdict, recipients,
                      *, shop_name: str):
    """E-mail the outage of ``verdict`` unless the alerts ledger shows its gap was told; None
    when it was, when there is no outage, or when nobody is to receive it."""
    from salesflow import alerts

    if not verdict.alert or not recipients:
        return None
    return alerts.send_once(con, mailer, outage_key(verdict), lambda: outage_message(
        verdict, sender=mailer.sender, recipients=recipients, shop_name=shop_name,
        unsubscribe=mailer.unsubscribe_address))
