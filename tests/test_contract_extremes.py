"""The whole daily job on tiny shops whose values sit at the core contract's extremes.

Stock, thresholds and quantities up to 2^31-1, prices and sale totals up to NUMERIC(12,2),
100-character names in many scripts with RTL marks, quotes and ``<b>``, skus and customer ids
with quotes: the run succeeds, the KPIs equal a computation from the seeded data, and the
reports and e-mails are written with the data's markup escaped.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from datetime import date, datetime, timedelta
from decimal import Decimal
from email import message_from_bytes, policy
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st

from emulator.clock import FixedClock
from emulator.testing import running_emulator, seed_from_frames
from pipelines.runner import run_daily
from resources import MailerResource
from tests.conftest import pipeline_resources

INT_MAX = 2**31 - 1
MONEY_MAX = Decimal("9999999999.99")  # NUMERIC(12,2)
CENT = Decimal("0.01")
FIRST_DAY = date(2025, 1, 1)  # the first partition (tests/conftest.py)
AS_OF = date(2025, 2, 2)  # a Sunday: the week and the month before are complete
CORE_NOW = datetime(2025, 2, 3, 0, 30)
MARKUP = "<b>"

# letters of many scripts, RTL and bidi marks, quotes and markup characters
SCRIPTS = (
    "abcXYZ" "éßøł" "Жжщ" "αβΩ" "אבג" "عربي" "हिन्दी" "ไทย" "한국어" "中文字" "日本語カナ"
    "\u200f\u202e\u200e" "'\"&<>;" "😀𝄞"
)
ALPHABET = st.sampled_from(list(SCRIPTS))


def java_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def fit(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` UTF-16 units (the core's String.length)."""
    while java_len(text) > limit:
        text = text[:-1]
    return text


def label(draw, i: int, limit: int, exact: bool) -> str:
    """A unique label of up to ``limit`` UTF-16 units (exactly ``limit`` when ``exact``) holding
    quotes, an RTL override and a ``<b>`` that must never be live markup."""
    head = f"{MARKUP}{i}'\"\u202e"
    body = draw(st.text(ALPHABET, min_size=limit if exact else 0, max_size=limit))
    text = fit(head + body + "x" * (limit if exact else 0), limit)
    return text if not text[-1].isspace() else text[:-1] + "z"


COUNTS = st.one_of(st.sampled_from([0, 1, 10**9, INT_MAX - 1, INT_MAX]), st.integers(0, INT_MAX))
PRICES = st.one_of(st.sampled_from([Decimal(0), CENT, MONEY_MAX]),
                   st.integers(0, 999_999_999_999).map(lambda c: Decimal(c) / 100))


@st.composite
def shops(draw):
    n = draw(st.integers(2, 4))
    products = pd.DataFrame({
        "sku": [label(draw, i, 50, exact=False) for i in range(n)],
        "name": [label(draw, i, 100, exact=True) for i in range(n)],
        "price": [str(draw(PRICES)) for _ in range(n)],
        "cost": [draw(st.one_of(st.just(""), PRICES.map(str))) for _ in range(n)],
        "category": [draw(st.sampled_from(["", "Tools", "Épicerie \"fine\""])) for _ in range(n)],
        "stock_quantity": [draw(COUNTS) for _ in range(n)],
        "low_stock_threshold": [draw(st.one_of(st.sampled_from([1, INT_MAX]), st.integers(1, INT_MAX)))
                                for _ in range(n)],
    })
    customers = [None, "O'Brien \"<b>\"", f"{MARKUP}'; DROP TABLE x; --", "\u202eJosé"]
    lines = []
    for k in range(draw(st.integers(3, 10))):
        day = FIRST_DAY + timedelta(days=draw(st.integers(0, (AS_OF - FIRST_DAY).days)))
        ts = datetime.combine(day, datetime.min.time()) + timedelta(minutes=draw(st.integers(0, 1439)))
        budget = MONEY_MAX  # the sale's total stays within NUMERIC(12,2)
        customer = draw(st.sampled_from(customers))
        picked = draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True))
        for p in picked:
            qty = draw(st.one_of(st.sampled_from([1, INT_MAX]), st.integers(1, INT_MAX)))
            top = (budget / qty).quantize(CENT, rounding="ROUND_DOWN")
            price = draw(st.one_of(st.just(top), st.integers(0, int(top * 100)).map(lambda c: Decimal(c) / 100)))
            budget -= price * qty
            lines.append({"sale_id": f"S{k}", "sale_ts": ts.isoformat(), "sku": products.sku[p],
                          "quantity": qty, "unit_price": str(price), "customer_id": customer})
    return products, pd.DataFrame(lines)


def extreme_shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A shop at the limits: stock of 1e9 and 2^31-1, the largest threshold, quantity and price."""
    products = pd.DataFrame({
        "sku": ["<b>BIG'\u202e", "MAX\"</b>", "\u200fZERO"],
        "name": [fit("<b>Ω" + "中文字" * 40, 100), fit("\u202eعربي '\"" * 13, 100), fit("éß<b>" * 30, 100)],
        "price": ["4.65", str(MONEY_MAX), "0.00"], "cost": ["9999999999.99", "1.00", ""],
        "category": ["Bulk", "Bulk", ""], "stock_quantity": [10**9, INT_MAX, 0],
        "low_stock_threshold": [INT_MAX, 1, INT_MAX]})
    sku = products.sku.tolist()
    sales = pd.DataFrame([
        ("S1", "2025-01-05T10:00:00", sku[0], INT_MAX, "4.65", "O'Brien \"<b>\""),
        ("S2", "2025-01-29T11:00:00", sku[1], 1, str(MONEY_MAX), None),
        ("S3", "2025-02-02T12:00:00", sku[0], INT_MAX, "4.65", "O'Brien \"<b>\""),
        ("S3", "2025-02-02T12:00:00", sku[2], INT_MAX, "0.00", "O'Brien \"<b>\""),
    ], columns=["sale_id", "sale_ts", "sku", "quantity", "unit_price", "customer_id"])
    return products, sales


def expected_kpis(sales: pd.DataFrame) -> dict[str, tuple]:
    """Revenue, orders, units and average order value per window, from the seeded lines."""
    lines = sales.assign(day=pd.to_datetime(sales.sale_ts).dt.date,
                         amount=[Decimal(p) * q for p, q in zip(sales.unit_price, sales.quantity)])
    first = min(lines.day)
    windows = {"7d": AS_OF - timedelta(days=6), "28d": AS_OF - timedelta(days=27),
               "mtd": AS_OF.replace(day=1), "ytd": AS_OF.replace(month=1, day=1), "all": first}
    out = {}
    for name, start in windows.items():
        inside = lines[(lines.day >= start) & (lines.day <= AS_OF)]
        revenue = sum(inside.amount, Decimal(0))
        orders = inside.sale_id.nunique()
        aov = (revenue / orders).quantize(CENT, rounding="ROUND_HALF_UP") if orders else None
        out[name] = (revenue, orders, int(inside.quantity.sum()), aov)
    return out


def html_parts(folder: Path) -> list[str]:
    parts = []
    for path in folder.glob("*.eml"):
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        parts += [p.get_content() for p in msg.walk() if p.get_content_type() == "text/html"]
    return parts


def run_shop(root: Path, products: pd.DataFrame, sales: pd.DataFrame):
    state, warehouse = root / "core.sqlite3", root / "w.duckdb"
    seed_from_frames(state, products, sales, clock=FixedClock(CORE_NOW))
    mailer = MailerResource(report_recipients="owner@shop.example", alert_recipients="owner@shop.example")
    with running_emulator(state, clock=FixedClock(CORE_NOW)) as emu, dg.DagsterInstance.ephemeral() as instance:
        resources = {**pipeline_resources(emu, warehouse), "mailer": mailer}
        return run_daily(as_of=AS_OF, instance=instance, warehouse_path=warehouse, resources=resources)


@pytest.mark.slow
@settings(max_examples=2, deadline=None, derandomize=True, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(shop=shops())
@example(shop=extreme_shop())
def test_the_daily_job_carries_every_legal_value(shop, monkeypatch_env):
    products, sales = shop
    root = Path(tempfile.mkdtemp(prefix="extremes-"))
    try:
        result = run_shop(root, products, sales)
        assert result.success, result.summary()
        con = duckdb.connect(str(root / "w.duckdb"), read_only=True)
        got = {w: (r, o, u, a) for w, r, o, u, a in con.execute(
            "SELECT \"window\", revenue, orders, units, avg_order_value FROM marts.kpis WHERE as_of = ?",
            [AS_OF]).fetchall()}
        stock = dict(con.execute("SELECT sku, stock_quantity FROM marts.stock_status WHERE as_of = ?",
                                 [AS_OF]).fetchall())
        con.close()
        assert got == expected_kpis(sales)
        assert stock == dict(zip(products.sku, products.stock_quantity))
        reports = root / "exports" / "reports"
        for kind, day in (("daily", AS_OF), ("weekly", "2025-01-27"), ("monthly", "2025-01-01")):
            found = sorted(p.suffix for p in reports.glob(f"{kind}/*/salesflow-{kind}-*"))
            assert found == [".pdf", ".xlsx"], (kind, found)
        daily_pdf = reports / "daily" / str(AS_OF) / f"salesflow-daily-{AS_OF}.pdf"
        text = subprocess.run(["pdftotext", str(daily_pdf), "-"], capture_output=True, text=True,
                              check=True).stdout
        assert MARKUP in text, "a name's <b> is shown as text in the PDF, not taken as markup"
        parts = html_parts(root / "exports" / "outbox")
        assert parts, "no HTML e-mail written"
        data = [*products.sku, *products.name, *sales.customer_id.dropna()]
        # a data <b> with the character before it: a template's own <b> never has that
        live = {v[max(0, m.start() - 1):m.start() + 5] for v in data for m in re.finditer(MARKUP, v)}
        for part in parts:
            for value in (v for v in data if "<" in v or "&" in v):
                assert value not in part, f"{value!r} appears unescaped in an e-mail"
            for fragment in live:
                assert fragment not in part, f"live {fragment!r} from the data in an e-mail"
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def monkeypatch_env(monkeypatch):
    for name in ("SALESFLOW_REPORT_RECIPIENTS_DAILY", "SALESFLOW_ALERT_RECIPIENTS_STOCK",
                 "SALESFLOW_SMTP_HOST"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


MISFIT_AS_OF = date(2025, 3, 2)  # 61 days: enough history for forecasts per sku
MISFIT_NOW = datetime(2025, 3, 3, 0, 30)


def misfit_shop() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two ordinary products next to products that break the marts' assumptions."""
    products = pd.DataFrame(
        [("OK-1", "Everyday mug", "5.00", "2.00", "Kitchen", 500, 10),
         ("OK-2", "Tea towel", "3.00", "1.00", "Kitchen", 2, 5),  # LOW: a stock alert
         ("FREE-1", "Free sample", "0.00", "", "", 50, 5),
         ("Case-1", "Case lower", "2.00", "", "", 40, 5), ("CASE-1", "Case upper", "2.00", "", "", 40, 5),
         ("GONE-1", "Renamed", "4.00", "", "", 10, 5),  # its sku changes after selling
         ("HUGE-1", "Bulk screws", "0.01", "", "", 1, 1)],  # turnover beyond DECIMAL(12,3)
        columns=["sku", "name", "price", "cost", "category", "stock_quantity", "low_stock_threshold"])
    lines = []
    for k in range((MISFIT_AS_OF - FIRST_DAY).days + 1):
        ts = datetime.combine(FIRST_DAY + timedelta(days=k), datetime.min.time()) + timedelta(hours=10)
        for j, (sku, qty, price) in enumerate([("OK-1", 1 + k % 3, "5.00"), ("OK-2", 1 + k % 2, "3.00"),
                                               ("FREE-1", 2, "0.00"), ("Case-1", 1, "2.00"),
                                               ("CASE-1", 1, "2.00"), ("GONE-1", 1, "4.00")]):
            lines.append({"sale_id": f"S{k}-{j}", "sale_ts": (ts + timedelta(minutes=j)).isoformat(),
                          "sku": sku, "quantity": qty, "unit_price": price, "customer_id": f"c{k % 4}"})
    lines.append({"sale_id": "BULK", "sale_ts": f"{MISFIT_AS_OF}T15:00:00", "sku": "HUGE-1",
                  "quantity": INT_MAX, "unit_price": "0.01", "customer_id": None})
    return products, pd.DataFrame(lines)


def change_sku(emu, sku: str, new_sku: str) -> None:
    """The core keeps a product with sales (sale items keep the old sku): its sku changes."""
    import httpx

    with httpx.Client(base_url=emu.url) as http:
        token = http.post("/api/v1/auth/login", json={"phoneNumber": emu.admin[0],
                                                      "password": emu.admin[1]}).json()["accessToken"]
        http.put(f"/api/v1/products/by-sku/{sku}", headers={"Authorization": f"Bearer {token}"},
                 json={"name": "Renamed", "sku": new_sku, "price": 4.0, "stockQuantity": 10,
                       "lowStockThreshold": 5}).raise_for_status()


@pytest.mark.slow
def test_products_breaking_the_marts_are_named_and_the_others_flow_on(tmp_path, monkeypatch_env):
    products, sales = misfit_shop()
    state, warehouse = tmp_path / "core.sqlite3", tmp_path / "w.duckdb"
    seed_from_frames(state, products, sales, clock=FixedClock(MISFIT_NOW))
    mailer = MailerResource(report_recipients="owner@shop.example", alert_recipients="owner@shop.example")
    with running_emulator(state, clock=FixedClock(MISFIT_NOW)) as emu, dg.DagsterInstance.ephemeral() as instance:
        change_sku(emu, "GONE-1", "GONE-2")
        result = run_daily(as_of=MISFIT_AS_OF, instance=instance, warehouse_path=warehouse,
                           resources={**pipeline_resources(emu, warehouse), "mailer": mailer}, reports=False)
        assert result.success, result.summary()
        record = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey(["marts", "stock_status"]), "products_fit_the_marts"), limit=1)[0]
    evaluation = record.event.dagster_event.event_specific_data
    assert not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.WARN
    named = {p["sku"]: p["problem"] for p in evaluation.metadata["products"].value}
    assert set(named) == {"FREE-1", "Case-1", "CASE-1", "GONE-1", "HUGE-1"}, named
    assert "price 0" in named["FREE-1"] and "missing from the catalogue" in named["GONE-1"]
    assert "letter case" in named["Case-1"] and "turnover" in named["HUGE-1"]
    con = duckdb.connect(str(warehouse), read_only=True)
    status = dict(con.execute("SELECT sku, status FROM marts.stock_status WHERE as_of = ?",
                              [MISFIT_AS_OF]).fetchall())
    series = {s for (s,) in con.execute("SELECT DISTINCT series_id FROM ml.sales_forecast WHERE as_of = ?",
                                        [MISFIT_AS_OF]).fetchall()}
    top = [s for (s,) in con.execute("SELECT sku FROM marts.top_products WHERE as_of = ? AND \"window\" = '7d' "
                                     "ORDER BY rank", [MISFIT_AS_OF]).fetchall()]
    con.close()
    assert status["OK-2"] == "LOW" and status["OK-1"] in {"OK", "OVERSTOCK"} and "GONE-1" not in status
    assert {"TOTAL", "OK-1", "OK-2"} <= series
    assert {"OK-1", "OK-2"} <= set(top)
    day = tmp_path / "exports" / "reports" / "daily" / str(MISFIT_AS_OF)
    assert (day / f"salesflow-daily-{MISFIT_AS_OF}.pdf").exists()
    mails = [message_from_bytes(p.read_bytes(), policy=policy.default)
             for p in (tmp_path / "exports" / "outbox").glob("*.eml")]
    assert any("OK-2" in (m.get_body(("plain",)).get_content()) for m in mails), "no stock alert for OK-2"
