"""The alert digest on a hand-built shop whose money is computed by hand: what each alert is
worth, the severity that follows it, the ranking, the top-N cap with the full list attached,
the first-run summary, the new episodes after it, and the HTML as a phone shows it."""

from __future__ import annotations

import io
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import duckdb
import openpyxl
import pytest

import salesflow.alerts as alerts_mod
from salesflow.alerts import build_alerts, digest_top_n, money_severity, run_alerts
from salesflow.mailer import Mailer, Recipients, SmtpSettings
from salesflow.warehouse import ensure_schema
from tests.browser import assert_reads_on_phone
from tests.test_mailer import parsed_attachments, smtp_server  # noqa: F401

AS_OF = date(2025, 6, 30)
NOW = datetime(2025, 7, 1, 6, 0)
OWNER = "owner@shop.example"
TO = Recipients(alerts={"anomaly": (OWNER,), "stock": (OWNER,)})
SHOP = "Corner shop"
D = Decimal
RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: reverses the text after it


def day(n: int) -> date:
    return AS_OF - timedelta(days=n)


class Shop:
    """A warehouse written straight into the tables the alerts read. The shop sells 1,000.00 a
    day for the last 28 days (the yardstick of severity); twenty ``Z`` products share what the
    others do not sell, so each product's share is its day revenue / 1,000."""

    def __init__(self, path):
        self.con = duckdb.connect(str(path))
        ensure_schema(self.con)
        self.product_day: dict[str, tuple[int, Decimal]] = {}

    def product(self, sku, name, price, *, cost=None, category=None, sells=(0, "0"), stock=10,
                threshold=5, status="OK", severity="none", avg_units=None, last_sale="auto"):
        """A catalogue product selling ``sells`` = (units, revenue) a day over the last 28 days,
        with its stock status row on AS_OF."""
        self.con.execute("INSERT INTO raw.products VALUES (?, ?, ?, ?, ?, ?, NULL, ?)",
                         [len(self.product_day) + 1, sku, name, D(price), stock, threshold, NOW])
        self.con.execute("INSERT INTO raw.inventory VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         [sku, name, category or "Uncategorized", D(cost or 0), D(price), stock, NOW, NOW])
        units, revenue = sells[0], D(sells[1])
        self.product_day[sku] = (units, revenue)
        if units:
            self.con.executemany("INSERT INTO marts.product_daily_sales VALUES (?, ?, ?, ?, ?, false)",
                                 [(day(k), sku, units, units, revenue) for k in range(28)])
        last = day(0) if last_sale == "auto" and units else (None if last_sale == "auto" else last_sale)
        if last is not None and not units:
            self.con.execute("INSERT INTO marts.product_daily_sales VALUES (?, ?, 1, 1, ?, false)",
                             [last, sku, D(price)])
        self.status(sku, name, stock, threshold, status, severity, avg_units, last)

    def status(self, sku, name, stock, threshold, status, severity, avg_units=None, last=None,
               on=AS_OF):
        self.con.execute(
            "INSERT INTO marts.stock_status VALUES (?, ?, ?, ?, ?, ?, NULL, ?, ?, 0, ?)",
            [on, sku, name, stock, threshold,
             D(str(avg_units)) if avg_units is not None else D(self.product_day.get(sku, (0,))[0]),
             status, severity, last])

    def finish(self):
        """The shop's days (1,000.00 each) and the big seller that fills them."""
        others = sum((r for _, r in self.product_day.values()), D(0))
        self.con.executemany("INSERT INTO marts.product_daily_sales VALUES (?, ?, 10, 10, ?, false)",
                             [(day(k), f"Z{z:02d}", (D(1000) - others) / 20)
                              for k in range(28) for z in range(20)])
        self.con.executemany(
            "INSERT INTO marts.daily_sales VALUES (?, 100, 100, 1000.00, 0, 0, 0, 0, false)",
            [(day(k),) for k in range(28)])
        return self

    def reorder(self, sku, demand_units, lead_time_days, stock):
        from salesflow.reorder import ensure_reorder
        ensure_reorder(self.con)
        self.con.execute(
            "INSERT INTO marts.reorder_suggestions (as_of, sku, stock_quantity, lead_time_days, "
            "lead_time_source, basis, demand_units, safety_units, target_units, suggested_qty) "
            "VALUES (?, ?, ?, ?, 'default', 'forecast', ?, 0, ?, ?)",
            [AS_OF, sku, stock, lead_time_days, D(demand_units), D(demand_units), 1])

    def forecast(self, sku, per_day, days):
        self.con.executemany(
            "INSERT INTO ml.sales_forecast (as_of, series_id, ds, yhat, model) VALUES (?, ?, ?, ?, 'ets')",
            [(AS_OF, sku, AS_OF + timedelta(days=i), per_day, ) for i in range(1, days + 1)])

    def anomaly(self, series, ds, observed, expected, lower, upper, direction, kind="drop",
                note=None, severity="high", as_of=AS_OF):
        self.con.execute("INSERT INTO ml.sales_anomalies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         [as_of, series, ds, observed, expected, lower, upper, -4.0 if direction == "down" else 4.0,
                          direction, severity, kind, note])


@pytest.fixture
def shop(tmp_path):
    s = Shop(tmp_path / "warehouse.duckdb")
    try:
        yield s
    finally:
        s.con.close()


def outbox_mailer(tmp_path) -> Mailer:
    return Mailer(SmtpSettings(sender="alerts@shop.example"), tmp_path / "outbox")


def sent_messages(tmp_path):
    from email import policy
    from email.parser import BytesParser

    out = []
    for path in sorted((tmp_path / "outbox").glob("*.eml"), key=lambda p: p.stat().st_mtime_ns):
        with open(path, "rb") as fh:
            out.append(BytesParser(policy=policy.default).parse(fh))
    return out


def workbook_rows(msg, prefix="alerts-"):
    files = {k: v for k, v in parsed_attachments(msg).items() if k.startswith(prefix)}
    assert len(files) == 1, list(parsed_attachments(msg))
    ws = openpyxl.load_workbook(io.BytesIO(next(iter(files.values())))).active
    rows = list(ws.iter_rows(values_only=True))
    return rows[0], rows[1:]


def text_of(msg) -> str:
    return msg.get_body(("plain",)).get_content()


def html_of(msg) -> str:
    return msg.get_body(("html",)).get_content()


# -- what an alert is worth, and its severity -------------------------------------------------
def a_ranked_shop(shop: Shop) -> Shop:
    # A: out of stock; the reorder list expects 30 units over its 7-day lead time: all short,
    # 30 x 10.00 = 300.00 at risk, margin 30 x (10 - 6) = 120.00; 10% of the shop's revenue
    shop.product("A", "Widget", "10.00", cost="6.00", category="Tools", sells=(10, "100"),
                 stock=0, status="OUT_OF_STOCK", severity="critical")
    shop.reorder("A", "30", 7, 0)
    # B: low, 5 left; its forecast sells 2 a day over the 7-day default lead time: 14 - 5 = 9
    # short x 20.00 = 180.00; cost unknown (no margin); 2% of revenue
    shop.product("B", "Gadget", "20.00", sells=(1, "20"), stock=5, threshold=10, status="LOW",
                 severity="medium")
    shop.forecast("B", 2.0, 14)
    # D: low, 4 left, no forecast: 28-day average 1.5 a day x 7 = 10.5, 6.5 short x 4.00 = 26.00
    shop.product("D", "Doohickey", "4.00", sells=(1, "4"), stock=4, threshold=6, status="LOW",
                 severity="high", avg_units="1.5")
    # C: out of stock and not sold for 120 days: the old rule's critical, nothing at stake now
    shop.product("C", "Old thing", "50.00", sells=(0, "0"), stock=0, status="OUT_OF_STOCK",
                 severity="critical", last_sale=day(120))
    # E: a spike of 30 units where 6 were expected, at 5.00: +120.00 above expected
    shop.product("E", "Gizmo", "5.00", sells=(6, "30"), stock=500, threshold=5)
    shop.anomaly("E", day(3), 30.0, 6.0, 2.0, 10.0, "up", kind="spike", severity="medium")
    # the shop: 400.00 where 1,000.00 were expected two days ago: -600.00
    shop.anomaly("TOTAL", day(2), 400.0, 1000.0, 800.0, 1200.0, "down")
    # the twenty Z products then sell (1,000 - 154) / 20 = 42.30 a day each: A (100.00 a day)
    # is the best seller, the only product of the others among the first 50% of revenue
    return shop.finish()


def test_each_alert_is_worth_its_hand_computed_money_and_ranks_by_it(shop):
    a_ranked_shop(shop)
    found = build_alerts(shop.con, AS_OF, currency="EUR")
    by = {a.details.get("sku") or a.details.get("series_id"): a for a in found}
    assert [a.details.get("sku") or a.details["series_id"] for a in found] == ["TOTAL", "A", "B", "E", "D", "C"]
    assert {k: a.value for k, a in by.items()} == {
        "TOTAL": D("-600.00"), "A": D("300.00"), "B": D("180.00"), "E": D("120.00"),
        "D": D("26.00"), "C": D("0.00")}
    assert by["A"].details["margin_at_risk"] == "120.00"
    assert by["B"].details["margin_at_risk"] is None  # cost unknown
    assert "reorder list" in by["A"].details["basis"] and "7-day" in by["A"].details["basis"]
    assert "sales forecast" in by["B"].details["basis"]
    assert "28-day average" in by["D"].details["basis"]
    assert by["TOTAL"].value_note == "revenue below expected"
    assert by["E"].value_note.startswith("revenue above expected")
    # severity follows the money against a day's revenue (1,000.00) and the best sellers:
    # 600 = 60% critical; A 300 = 30% on a key product critical; B 18% medium;
    # E 12% medium; D 2.6% low; C nothing at stake
    assert by["A"].details["key_product"] and not by["B"].details["key_product"]
    assert {k: a.severity for k, a in by.items()} == {
        "TOTAL": "critical", "A": "critical", "B": "medium", "E": "medium", "D": "low", "C": "info"}


def test_an_out_of_stock_product_unsold_for_90_days_is_not_critical(shop):
    shop.product("C", "Old thing", "50.00", stock=0, status="OUT_OF_STOCK", severity="critical",
                 last_sale=day(95), avg_units="0")
    shop.product("N", "Never sold", "80.00", stock=0, status="OUT_OF_STOCK", severity="critical",
                 avg_units="0")
    shop.forecast("C", 3.0, 7)  # even a forecast that expects sales does not make it money
    shop.finish()
    found = {a.details["sku"]: a for a in build_alerts(shop.con, AS_OF, currency="EUR")}
    assert {k: (a.severity, a.value) for k, a in found.items()} == {
        "C": ("info", D("0.00")), "N": ("info", D("0.00"))}
    assert "no sale since" in found["C"].value_note and "not sold since" in found["C"].details["statement"]


def test_money_severity_thresholds():
    day_revenue = D(1000)
    assert money_severity(D("500"), day_revenue) == "critical"
    assert money_severity(D("-499.99"), day_revenue) == "high"
    assert money_severity(D("200"), day_revenue, key=True) == "critical"
    assert money_severity(D("199.99"), day_revenue) == "medium"
    assert money_severity(D("50"), day_revenue, key=True) == "high"
    assert money_severity(D("1"), day_revenue, key=True) == "medium"
    assert money_severity(D("50"), day_revenue) == "medium"
    assert money_severity(D("49.99"), day_revenue) == "low"
    assert money_severity(D("0"), day_revenue) == "info"
    assert money_severity(None, day_revenue) == "low"


def test_digest_top_n_from_the_environment():
    assert digest_top_n({}) == 10
    assert digest_top_n({"SALESFLOW_DIGEST_TOP_N": " 3 "}) == 3
    for bad in ("0", "ten"):
        with pytest.raises(ValueError, match="SALESFLOW_DIGEST_TOP_N"):
            digest_top_n({"SALESFLOW_DIGEST_TOP_N": bad})


# -- the messages ----------------------------------------------------------------------------
def many_out_of_stock(shop: Shop, n: int, *, prefix="P", on=AS_OF, start=1) -> list[str]:
    """``n`` out-of-stock products, product i expecting i units over the lead time at 1.00."""
    skus = []
    for i in range(start, start + n):
        sku = f"{prefix}{i:02d}"
        shop.product(sku, f"Product {i}", "1.00", stock=0, status="OUT_OF_STOCK",
                     severity="critical", avg_units=f"{i / 7:.3f}", last_sale=day(1))
        skus.append(sku)
    return skus


def test_the_first_run_sends_one_current_state_summary_not_every_product(shop, tmp_path):
    many_out_of_stock(shop, 30)
    shop.finish()
    mailer = outbox_mailer(tmp_path)
    result = run_alerts(shop.con, AS_OF, mailer, TO, shop_name=SHOP, currency="EUR", top_n=5)
    msgs = sent_messages(tmp_path)
    assert len(msgs) == 1 and len(result.sent_keys) == 30 and result.summaries == 1
    msg = msgs[0]
    assert msg["X-SalesFlow-Digest"] == "summary" and "current state, 30 open alerts" in msg["Subject"]
    text = text_of(msg)
    # counts by kind and severity, the top 5 by money (product 30 expects the most), no more
    assert "- Stock: 30 (" in text
    listed = [line for line in text.splitlines() if "(P" in line and ": Out of stock" in line]
    assert [line.split("(")[1].split(")")[0] for line in listed] == ["P30", "P29", "P28", "P27", "P26"]
    assert "and 25 more" in text and "and 25 more" in html_of(msg).replace("<b>And", "<b>and")
    for body in (text, html_of(msg)):  # the other 25 products are in the workbook only
        assert "(P25)" not in body and "(P01)" not in body and "P01" not in body
    head, rows = workbook_rows(msg)
    assert head[:5] == ("rank", "kind", "severity", "what", "value (EUR)")
    assert len(rows) == 30 and [r[3] for r in rows[:2]] == ["Product 30 (P30)", "Product 29 (P29)"]
    assert [r[4] for r in rows] == sorted((r[4] for r in rows), reverse=True)

    # the next day: two new episodes, a digest of those only; a rerun sends nothing
    nxt = AS_OF + timedelta(days=1)
    for sku, name in (("P01", "Product 1"), ("P02", "Product 2")):
        shop.status(sku, name, 0, 5, "OUT_OF_STOCK", "critical", "0.5", day(0), on=nxt)
    shop.con.execute("INSERT INTO marts.stock_status SELECT * REPLACE (CAST(? AS DATE) AS as_of) "
                     "FROM marts.stock_status WHERE as_of = ? AND sku NOT IN ('P01', 'P02')", [nxt, AS_OF])
    # P01 and P02 were restocked on AS_OF + 1 in the history, so they begin again
    shop.con.execute("UPDATE marts.stock_status SET status = 'OK', severity = 'none', stock_quantity = 9 "
                     "WHERE as_of = ? AND sku IN ('P01', 'P02')", [AS_OF])
    second = run_alerts(shop.con, nxt, mailer, TO, shop_name=SHOP, currency="EUR", top_n=5)
    msgs = sent_messages(tmp_path)
    assert len(msgs) == 2 and second.summaries == 0
    assert sorted(second.recorded) == [f"stock:P01:OUT_OF_STOCK:{nxt}", f"stock:P02:OUT_OF_STOCK:{nxt}"]
    assert msgs[1]["X-SalesFlow-Digest"] == "new" and "2 new alerts" in msgs[1]["Subject"]
    assert not [k for k in parsed_attachments(msgs[1]) if k.startswith("alerts-")]  # 2 <= top 5
    again = run_alerts(shop.con, nxt, mailer, TO, shop_name=SHOP, currency="EUR", top_n=5)
    assert again.recorded == [] and again.deliveries == [] and len(sent_messages(tmp_path)) == 2


def first_run_sent(shop: Shop, tmp_path) -> Mailer:
    """The shop's first digest is out (one product), so later ones are digests of new alerts."""
    shop.product("F", "First", "1.00", stock=0, status="OUT_OF_STOCK", severity="critical",
                 avg_units="1", last_sale=day(1))
    shop.con.execute("UPDATE marts.stock_status SET as_of = ? WHERE sku = 'F'", [day(1)])
    mailer = outbox_mailer(tmp_path)
    first = run_alerts(shop.con, day(1), mailer, TO, shop_name=SHOP, currency="EUR", top_n=5)
    assert first.summaries == 1 and len(first.sent_keys) == 1
    return mailer


def test_a_digest_shows_the_top_n_and_attaches_every_alert(shop, tmp_path):
    shop.finish()
    mailer = first_run_sent(shop, tmp_path)
    many_out_of_stock(shop, 8)
    result = run_alerts(shop.con, AS_OF, mailer, TO, shop_name=SHOP, currency="EUR", top_n=5)
    msg = sent_messages(tmp_path)[-1]
    assert result.summaries == 0 and msg["X-SalesFlow-Digest"] == "new"
    assert msg["Subject"].strip() == ("[SalesFlow] Corner shop: 8 new alerts, 36.00 EUR at stake (8 low) - stock")
    html = html_of(msg)
    assert html.count('class="amount"') == 5
    assert "And 3 more" in html and "and 3 more" in text_of(msg)
    _, rows = workbook_rows(msg)
    assert [r[3] for r in rows] == [f"Product {i} (P{i:02d})" for i in range(8, 0, -1)]
    assert [r[4] for r in rows] == [float(i) for i in range(8, 0, -1)]


def test_many_new_alerts_at_once_are_a_summary_again(shop, tmp_path):
    shop.finish()
    mailer = first_run_sent(shop, tmp_path)
    many_out_of_stock(shop, 11)  # more than 2 x 5
    result = run_alerts(shop.con, AS_OF, mailer, TO, shop_name=SHOP, currency="EUR", top_n=5)
    assert result.summaries == 1 and sent_messages(tmp_path)[-1]["X-SalesFlow-Digest"] == "summary"


def test_each_fact_once_money_first_names_isolated_and_it_reads_on_a_phone(shop, tmp_path):
    a_ranked_shop(shop)
    hostile = f"Tapis {RLO}exe.txt Ωmega-långt-namn-utan-mellanslag-som-inte-får-spränga-skärmen"
    shop.product("H", hostile, "30.00", sells=(2, "60"), stock=1, threshold=5, status="LOW",
                 severity="high", avg_units="2")
    mailer = outbox_mailer(tmp_path)
    run_alerts(shop.con, AS_OF, mailer, TO, shop_name=SHOP, currency="EUR", top_n=10)
    msg = sent_messages(tmp_path)[-1]
    html, text = html_of(msg), text_of(msg)
    assert f"<bdi>{hostile}</bdi>" in html
    assert f"\u2068{hostile}\u2069" in text
    # one statement per alert: the spike's observed units appear once in each part
    assert text.count("30 units where 6 units were expected") == 1
    assert html.count("30 units where 6 units were expected") == 1
    # money first in each card, the severity a small label, not a coloured row
    first_card = html.split('class="item')[1]
    assert first_card.index("-600.00 EUR") < first_card.index("Shop revenue")
    red = re.findall(r'<(\w+) class="([^"]*)" style="[^"]*background:\s*#b91c1c', html)
    assert red and set(red) == {("span", "tag critical")}, red
    views = assert_reads_on_phone(msg, tmp_path, "digest")
    assert [v.width for v in views] == [375, 1024]


def test_an_ended_stock_out_is_not_said_to_go_on(shop):
    shop.product("S", "Scarf", "12.00", sells=(3, "36"), stock=50, threshold=5)
    ended = "No sales of S for 4 open days so far (since Mon 16 Jun 2025, last Thu 19 Jun 2025), where 12 units were expected"
    going = "No sales of T for 3 open days so far (since Fri 27 Jun 2025, last Sun 29 Jun 2025), where 9 units were expected"
    shop.product("T", "Tie", "8.00", stock=50, threshold=5, last_sale=day(4))
    shop.anomaly("S", date(2025, 6, 16), 0.0, 12.0, 1.0, 24.0, "down", kind="stockout", note=ended)
    shop.anomaly("T", date(2025, 6, 27), 0.0, 9.0, 1.0, 18.0, "down", kind="stockout", note=going)
    shop.finish()
    found = {a.details["series_id"]: a for a in build_alerts(shop.con, AS_OF, currency="EUR")
             if a.kind == "anomaly"}
    s, t = found["S"].details["statement"], found["T"].details["statement"]
    assert "so far" not in s and "4 open days, Mon 16 Jun 2025 to Thu 19 Jun 2025" in s
    assert "selling again since" in s  # S sells every day of the last 28
    assert "still no sale up to Mon 30 Jun 2025" in t
    assert found["S"].value == D("-144.00") and found["T"].value == D("-72.00")


def test_the_shop_anomaly_carries_what_explains_it(shop):
    shop.product("A", "Bread", "2.00", category="Bakery", cost="1.00", sells=(100, "200"))
    shop.anomaly("TOTAL", day(2), 400.0, 1000.0, 800.0, 1200.0, "down")
    shop.finish()
    total = next(a for a in build_alerts(shop.con, AS_OF, currency="EUR") if a.kind == "anomaly")
    explanation = total.details["explanation"]
    assert explanation and "60% below expected" in explanation, explanation


def test_the_reorder_list_is_attached_when_it_has_rows(shop, tmp_path):
    a_ranked_shop(shop)
    from salesflow.reports.reorder_xlsx import reorder_attachment

    if reorder_attachment(shop.con, AS_OF, "EUR") is None:
        pytest.fail("the hand-built reorder row should give a reorder list")
    run_alerts(shop.con, AS_OF, outbox_mailer(tmp_path), TO, shop_name=SHOP, currency="EUR")
    names = list(parsed_attachments(sent_messages(tmp_path)[-1]))
    assert any(n.startswith("reorder") for n in names), names


def test_alerts_with_nothing_at_stake_wait_for_the_next_digest(shop, tmp_path):
    shop.finish()
    mailer = first_run_sent(shop, tmp_path)
    shop.product("C", "Old thing", "50.00", stock=0, status="OUT_OF_STOCK", severity="critical",
                 last_sale=day(120), avg_units="0")
    held = run_alerts(shop.con, AS_OF, mailer, TO, shop_name=SHOP, currency="EUR", top_n=5)
    assert held.recorded == [f"stock:C:OUT_OF_STOCK:{AS_OF}"] and held.held == 1
    assert held.deliveries == [] and held.pending_left == 1 and len(sent_messages(tmp_path)) == 1
    # a product with money at stake runs out: one digest carries both, the money first
    many_out_of_stock(shop, 1, start=5)
    result = run_alerts(shop.con, AS_OF, mailer, TO, shop_name=SHOP, currency="EUR", top_n=5)
    assert sorted(result.sent_keys) == [f"stock:C:OUT_OF_STOCK:{AS_OF}", f"stock:P05:OUT_OF_STOCK:{AS_OF}"]
    text = text_of(sent_messages(tmp_path)[-1])
    assert text.index("Product 5") < text.index("Old thing") and result.pending_left == 0


def test_a_stock_drop_and_a_shop_outage_are_worth_their_money(shop):
    shop.product("K", "Kettle", "25.00", sells=(1, "25"), stock=10, threshold=2)
    # 10 units counted where 14 were expected: 4 units lost at 25.00
    shop.anomaly("K", day(1), 10.0, 14.0, 12.0, None, "down", kind="stock_drop")
    # the shop sold nothing for two open days (Mon 23 and Tue 24 June), then sold again
    note = "No sales at all in the shop for 2 open days so far (since Mon 23 Jun 2025, last Tue 24 Jun 2025)"
    shop.anomaly("TOTAL", date(2025, 6, 23), 0.0, 2000.0, 200.0, 4000.0, "down", kind="outage", note=note)
    shop.finish()
    found = {a.details["series_id"]: a for a in build_alerts(shop.con, AS_OF, currency="EUR")}
    drop, outage = found["K"], found["TOTAL"]
    assert drop.value == D("-100.00") and drop.value_note.startswith("stock lost")
    assert "4 units went missing without a sale" in drop.details["statement"]
    assert outage.value == D("-2000.00") and outage.severity == "critical"
    assert outage.details["statement"] == (
        "No sales at all in the shop for 2 open days, Mon 23 Jun 2025 to Tue 24 Jun 2025, where "
        "2,000.00 EUR was expected; selling again since Wed 25 Jun 2025.")
    assert [a.details["series_id"] for a in build_alerts(shop.con, AS_OF)] == ["TOTAL", "K"]


def test_an_unconfirmed_digest_with_a_folded_subject_goes_out_again_byte_for_byte(
        shop, smtp_server, tmp_path, monkeypatch):
    # a subject of 70-77 characters is folded right after "Subject:", which a parser reads
    # back with a leading space; the resend must still be the very same message
    shop.finish()
    first_run_sent(shop, tmp_path)
    many_out_of_stock(shop, 1, start=7)  # 7.00 EUR at stake
    rest = ": 1 new alert, 7.00 EUR at stake (1 low) - stock"
    name = "Shop " + "x" * (76 - len("[SalesFlow] Shop ") - len(rest))
    real_finish = alerts_mod._finish
    calls = []

    def crash_once(*args, **kwargs):
        if not calls:
            calls.append(1)
            raise SystemExit("killed between the SMTP answer and the ledger commit")
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(alerts_mod, "_finish", crash_once)
    mailer = smtp_server.mailer()
    with pytest.raises(SystemExit):
        run_alerts(shop.con, AS_OF, mailer, TO, shop_name=name, currency="EUR", top_n=5)
    first = smtp_server.messages[0]
    assert len(first["message"]["Subject"].strip()) == 76
    assert re.search(rb"Subject:\r?\n \[SalesFlow\]", first["raw"])
    run_alerts(shop.con, AS_OF, mailer, TO, shop_name=name, currency="EUR", top_n=5)
    assert len(smtp_server.messages) == 2 and smtp_server.messages[1]["raw"] == first["raw"]


def test_a_stock_out_seen_by_sales_and_by_stock_is_one_card(shop, tmp_path):
    # O stopped selling 5 open days ago (15 units, 150.00 expected) and its stock is 0: the
    # stock alert's 7-day lead time at 3 a day puts 21 x 10.00 = 210.00 at risk
    note = "No sales of O for 5 open days so far (since Wed 25 Jun 2025, last Sun 29 Jun 2025)"
    shop.product("O", "Olive oil", "10.00", stock=0, status="OUT_OF_STOCK", severity="critical",
                 avg_units="3", last_sale=day(6))
    shop.anomaly("O", date(2025, 6, 25), 0.0, 15.0, 1.0, 30.0, "down", kind="stockout", note=note)
    many_out_of_stock(shop, 3)
    shop.finish()
    run_alerts(shop.con, AS_OF, outbox_mailer(tmp_path), TO, shop_name=SHOP, currency="EUR", top_n=2)
    msg = sent_messages(tmp_path)[-1]
    text, html = text_of(msg), html_of(msg)
    card = text.split("\n1. ")[1].split("\n2. ")[0]
    assert card.startswith("210.00 EUR revenue at risk") and "and -150.00 EUR revenue below expected" in card
    assert "Out of stock: none left" in card and "No sales for 5 open days" in card
    assert html.count('class="amount"') == 2 and "Olive oil" in html.split('class="item')[1]
    # two cards hold three of the five alerts: two more are in the workbook only
    assert "and 2 more" in text
    _, rows = workbook_rows(msg)
    assert len(rows) == 5


def test_a_shop_gap_and_its_products_gaps_on_one_day_are_not_counted_twice():
    """The shop's revenue below expected already holds its products' shortfall that day: the
    money at stake counts the larger of the two, plus the stock at risk, not their sum."""
    def pending(key, kind, value, **payload):
        return alerts_mod.PendingAlert(key, kind, NOW, (OWNER,), key,
                                       {"severity": "high", "value": value, **payload})

    ds = AS_OF.isoformat()
    alerts = [
        pending("anomaly:TOTAL", "anomaly", "-600.00", series_id="TOTAL", ds=ds, anomaly_kind="spike"),
        pending("anomaly:A", "anomaly", "-500.00", series_id="A", ds=ds, anomaly_kind="spike"),
        pending("anomaly:B", "anomaly", "-300.00", series_id="B", ds=day(3).isoformat(),
                anomaly_kind="spike"),
        pending("anomaly:C", "anomaly", "40.00", series_id="C", ds=ds, anomaly_kind="spike"),
        pending("anomaly:TOTAL:up", "anomaly", "25.00", series_id="TOTAL", ds=day(3).isoformat(),
                anomaly_kind="spike"),
        pending("stock:A", "stock", "100.00", sku="A", status="LOW"),
    ]
    stakes = alerts_mod.Stakes.of(alerts)
    # 600 (the shop's day, which holds A's 500) + B's 300 on another day + 100 of stock
    assert stakes.at_risk == D("1000.00")
    assert stakes.above == D("65.00")
    msg = alerts_mod.digest_message(alerts, sender="salesflow@shop.example", recipients=[OWNER],
                                    shop_name=SHOP, currency="EUR", as_of=AS_OF)
    assert "1,000.00 EUR at stake" in msg["Subject"]


def test_a_forecast_day_that_is_not_a_number_falls_back_on_the_28_day_average(shop):
    # L: low, 4 left, 1.5 a day over 28 days; its forecast has a NaN day: 7 x 1.5 = 10.5
    # expected, 6.5 short x 4.00 = 26.00 at risk
    shop.product("L", "Lamp", "4.00", sells=(1, "4"), stock=4, threshold=6, status="LOW",
                 severity="high", avg_units="1.5")
    shop.forecast("L", 2.0, 14)
    shop.con.execute("UPDATE ml.sales_forecast SET yhat = 'NaN'::DOUBLE WHERE series_id = 'L' "
                     "AND ds = ?", [AS_OF + timedelta(days=3)])
    found = {a.details.get("sku"): a for a in build_alerts(shop.finish().con, AS_OF, currency="EUR")}
    assert found["L"].value == D("26.00")
    assert found["L"].details["basis"].startswith("28-day average")


def test_an_anomaly_without_an_expected_figure_says_so_not_that_no_price_is_known(shop):
    shop.product("E", "Gizmo", "5.00", sells=(6, "30"), stock=500, threshold=5)
    shop.anomaly("E", day(1), 30.0, None, None, None, "up", kind="spike")
    shop.anomaly("TOTAL", day(1), 400.0, None, None, None, "down")
    found = {a.details["series_id"]: a for a in build_alerts(shop.finish().con, AS_OF, currency="EUR")}
    for series in ("E", "TOTAL"):
        assert found[series].value is None
        assert found[series].value_note == "no expected figure"
