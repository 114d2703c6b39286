"""Commits against the emulated core and the warehouse, and resuming interrupted commits
without committing any row twice."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
from openpyxl import load_workbook

from salesflow.core_client import CoreClient
from salesflow.errors import CoreApiError
from salesflow.imports import commit as C
from salesflow.imports import journal as J
from salesflow.imports.pipeline import ImportSettings
from tests.imports.builders import write_xlsx
from tests.imports.fixtures import ImportEnv, env  # noqa: F401


class SimulatedCrash(RuntimeError):
    pass


def crash_on(monkeypatch, module, name: str, *, after: int = 0, when=None):
    """Make ``module.name`` raise SimulatedCrash on its call number ``after + 1`` (or when
    ``when(*args)`` is true); later calls go through."""
    real = getattr(module, name)
    calls = {"n": 0, "crashed": False}

    def wrapper(*args, **kwargs):
        calls["n"] += 1
        hit = when(*args) if when else calls["n"] == after + 1
        if hit and not calls["crashed"]:
            calls["crashed"] = True
            if name == "finish_batch":
                raise SimulatedCrash(f"crash before journaling batch {args[2]}")
            raise SimulatedCrash(f"crash in {name}")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def skus(env: ImportEnv, n: int) -> list[dict]:
    products = sorted(env.products().values(), key=lambda p: p["sku"])
    return products[:n]


# -- products ----------------------------------------------------------------------------
def test_products_are_created_or_replaced_by_sku_keeping_stock(env):
    a, b = skus(env, 2)
    env.drop("products.csv",
             "SKU,Product Name,Price,Stock,Reorder Level,Description\r\n"
             "NEW-1,Brand new thing,\"1,234.50\",7,3,Fresh\r\n"
             f"{a['sku']},{a['name']} (new label),9.99,500,,\r\n"
             f"{b['sku']},{b['name']},{b['price']},,{b['lowStockThreshold']},\r\n")
    outcome = env.run("products.csv")
    assert outcome.status == "committed", outcome.summary()
    assert dict(outcome.commit.actions) == {"created": 1, "updated": 1, "unchanged": 1}
    after = env.products()
    new = after["NEW-1"]
    assert (new["name"], new["price"], new["stockQuantity"], new["lowStockThreshold"], new["description"]) \
        == ("Brand new thing", 1234.5, 7, 3, "Fresh")
    assert after[a["sku"]]["name"] == f"{a['name']} (new label)" and after[a["sku"]]["price"] == 9.99
    assert after[a["sku"]]["stockQuantity"] == a["stockQuantity"]  # the file's stock is for new skus only
    assert after[a["sku"]]["lowStockThreshold"] == a["lowStockThreshold"]
    assert after[b["sku"]] == b
    assert outcome.moved_to.parent == env.layout.processed and env.inbox_files() == []
    row = env.query("SELECT kind, status, rows_total, rows_valid, rows_rejected, committed_at IS NOT NULL "
                    "FROM ops.imports")
    assert row == [("products", "committed", 3, 3, 0, True)]
    assert env.query("SELECT batch_no, first_row, last_row, committed_at IS NOT NULL "
                     "FROM ops.import_batches") == [(1, 2, 4, True)]


def test_an_interrupted_products_import_resumes_without_creating_twice(env, monkeypatch):
    lines = "".join(f"NEW-{i},Thing {i},{i}.25,{i}\r\n" for i in range(1, 8))
    env.drop("products.csv", "sku,name,price,initial_stock\r\n" + lines)
    crash_on(monkeypatch, C, "_apply_product", after=4)
    with pytest.raises(SimulatedCrash):
        env.run("products.csv", settings_kw={"batch_rows": 3})
    assert env.inbox_files() == ["products.csv"]
    assert env.query("SELECT status FROM ops.imports") == [("failed",)]
    assert env.query("SELECT batch_no, committed_at IS NOT NULL FROM ops.import_batches ORDER BY 1") \
        == [(1, True), (2, False)]
    monkeypatch.undo()
    outcome = env.run("products.csv", settings_kw={"batch_rows": 3})
    assert outcome.status == "committed", outcome.summary()
    # row 5 was done before the crash: neither read nor written again
    assert outcome.commit.batches_skipped == 1 and outcome.commit.actions["committed_earlier"] == 1
    after = env.products()
    assert [after[f"NEW-{i}"]["stockQuantity"] for i in range(1, 8)] == list(range(1, 8))
    assert sum(1 for s in after if s.startswith("NEW-")) == 7


# -- stock counts --------------------------------------------------------------------------
def test_stock_counts_set_the_figure_and_skip_unchanged_products(env):
    a, b, c = skus(env, 3)
    with env.client() as client:
        inventory_before = {i["sku"]: i["quantity"] for i in client.get_json("/inventory")}
    env.drop("stock_counts_june.csv",
             f"sku,counted,date\r\n{a['sku']},0,2025-06-30\r\n{b['sku']},{b['stockQuantity'] + 5},30.06.2025\r\n"
             f"{c['sku']},{c['stockQuantity']},\r\n")
    outcome = env.run("stock_counts_june.csv")
    assert outcome.status == "committed", outcome.summary()
    assert dict(outcome.commit.actions) == {"set": 2, "unchanged": 1}
    after = env.products()
    assert after[a["sku"]]["stockQuantity"] == 0
    assert after[b["sku"]]["stockQuantity"] == b["stockQuantity"] + 5
    assert after[c["sku"]] == c
    for p in (a, b):  # only the stock changed
        assert {k: v for k, v in after[p["sku"]].items() if k != "stockQuantity"} == \
            {k: v for k, v in p.items() if k != "stockQuantity"}
    with env.client() as client:
        inventory_after = {i["sku"]: i["quantity"] for i in client.get_json("/inventory")}
    assert inventory_after[c["sku"]] == inventory_before[c["sku"]]  # no write at all
    detail = env.query("SELECT detail FROM ops.import_batches")[0][0]
    assert f'["{a["sku"]}",{a["stockQuantity"]},0]' in detail


def test_a_resumed_stock_count_never_applies_a_row_twice(env, monkeypatch):
    a, b, c = skus(env, 3)
    counted = {a["sku"]: a["stockQuantity"] + 10, b["sku"]: b["stockQuantity"] + 20,
               c["sku"]: c["stockQuantity"] + 30}
    env.drop("stock_counts.csv", "sku,counted\r\n" + "".join(f"{s},{q}\r\n" for s, q in counted.items()))
    crash_on(monkeypatch, C, "put_json", after=2)  # a and b are written, c is in doubt
    with pytest.raises(SimulatedCrash):
        env.run("stock_counts.csv")
    monkeypatch.undo()
    for p in (a, c):  # sales on a and c after the crash, before the rerun
        with env.client() as client:
            client.post_json("/sales", {"items": [{"sku": p["sku"], "quantity": 1}]})
    short = lambda self: CoreClient(self.emu.url, *self.emu.admin, write_timeout_s=0.5,  # noqa: E731
                                    write_settle_s=1.0, backoff_s=0.01, max_attempts=3)
    monkeypatch.setattr(ImportEnv, "client", short)
    outcome = env.run("stock_counts.csv")
    assert outcome.status == "committed", outcome.summary()
    assert dict(outcome.commit.actions) == {"committed_earlier": 2, "needs_check": 1}
    assert outcome.commit.batches_recovered == 1
    after = env.products()
    assert after[a["sku"]]["stockQuantity"] == counted[a["sku"]] - 1  # the sale is not undone
    assert after[b["sku"]]["stockQuantity"] == counted[b["sku"]]
    # c's count may or may not have landed before the sale: it is not set blindly, but flagged
    assert after[c["sku"]]["stockQuantity"] == c["stockQuantity"] - 1
    assert [w for w in outcome.commit.warnings if "check it by hand" in w][0].startswith("row 4:")


# -- sales -------------------------------------------------------------------------------
def _sales_file(products: list[dict], n_sales: int) -> tuple[str, dict[str, int]]:
    lines, sold = [], {}
    for i in range(n_sales):
        p = products[i % len(products)]
        lines.append(f"R{i},{p['sku']},1,C{i % 3}\r\n")
        sold[p["sku"]] = sold.get(p["sku"], 0) + 1
    return "Receipt,SKU,Qty,Customer\r\n" + "".join(lines), sold


def _new_sales(env: ImportEnv, before: int) -> list[dict]:
    return [s for s in env.sales() if s["id"] > before]


def test_todays_sales_go_to_the_core_in_bulk_batches(env):
    products = [p for p in skus(env, 6) if p["stockQuantity"] >= 3][:3]
    before_id = max(s["id"] for s in env.sales())
    text, sold = _sales_file(products, 7)
    text += f"R0,{products[1]['sku']},2,C0\r\n"  # a second line on receipt R0
    sold[products[1]["sku"]] += 2
    env.drop("sales_offline.csv", text)
    outcome = env.run("sales_offline.csv", settings_kw={"batch_sales": 3})
    assert outcome.status == "committed", outcome.summary()
    assert outcome.commit.batches_total == 3 and outcome.commit.actions["sales"] == 7
    new = _new_sales(env, before_id)
    assert len(new) == 7
    first = min(new, key=lambda s: s["id"])
    assert [(i["sku"], i["quantity"]) for i in first["items"]] == [(products[0]["sku"], 1), (products[1]["sku"], 2)]
    assert first.get("customerId") == "C0" and first["saleDate"].startswith("2025-07-01")
    after = env.products()
    for p in products:
        assert after[p["sku"]]["stockQuantity"] == p["stockQuantity"] - sold[p["sku"]]


def test_a_crash_after_the_post_is_recognised_and_the_batch_not_sent_again(env, monkeypatch):
    products = [p for p in skus(env, 6) if p["stockQuantity"] >= 3][:3]
    before_id = max(s["id"] for s in env.sales())
    text, sold = _sales_file(products, 7)
    env.drop("sales.csv", text)
    crash_on(monkeypatch, J, "finish_batch", when=lambda con, sha, no, *rest: no == 2)
    with pytest.raises(SimulatedCrash, match="batch 2"):
        env.run("sales.csv", settings_kw={"batch_sales": 3})
    assert len(_new_sales(env, before_id)) == 6  # batch 2 reached the core
    assert env.query("SELECT batch_no, committed_at IS NOT NULL FROM ops.import_batches ORDER BY 1") \
        == [(1, True), (2, False)]
    monkeypatch.undo()
    with env.client() as client:  # the till keeps selling meanwhile
        client.post_json("/sales", {"items": [{"sku": products[2]["sku"], "quantity": 1}]})
    outcome = env.run("sales.csv", settings_kw={"batch_sales": 3})
    assert outcome.status == "committed", outcome.summary()
    c = outcome.commit
    assert (c.batches_skipped, c.batches_recovered, c.batches_committed) == (1, 1, 1)
    assert len(_new_sales(env, before_id)) == 7 + 1
    after = env.products()
    sold[products[2]["sku"]] += 1
    for p in products:
        assert after[p["sku"]]["stockQuantity"] == p["stockQuantity"] - sold[p["sku"]]
    detail = env.query("SELECT detail FROM ops.import_batches WHERE batch_no = 2")[0][0]
    assert '"recovered":true' in detail


def test_a_crash_before_the_post_sends_the_batch_once_on_resume(env, monkeypatch):
    products = [p for p in skus(env, 6) if p["stockQuantity"] >= 3][:3]
    before_id = max(s["id"] for s in env.sales())
    text, sold = _sales_file(products, 5)
    env.drop("sales.csv", text)
    import salesflow.core_client as core_client

    real_post = core_client.CoreClient.post_json
    calls = {"n": 0}

    def post(self, path, body, retry=False):
        if path == "/sales/bulk":
            calls["n"] += 1
            if calls["n"] == 2:  # as CoreClient says when the connection could not be opened
                raise CoreApiError("POST /sales/bulk: core unreachable after 1 attempt(s) (ConnectError)")
        return real_post(self, path, body, retry=retry)

    monkeypatch.setattr(core_client.CoreClient, "post_json", post)
    with pytest.raises(CoreApiError):
        env.run("sales.csv", settings_kw={"batch_sales": 2})
    detail = env.query("SELECT detail FROM ops.import_batches WHERE batch_no = 2")[0][0]
    assert '"state":"begun"' in detail  # nothing in flight: the rerun sends it at once
    assert len(_new_sales(env, before_id)) == 2
    monkeypatch.undo()
    outcome = env.run("sales.csv", settings_kw={"batch_sales": 2})
    assert outcome.status == "committed"
    assert (outcome.commit.batches_skipped, outcome.commit.batches_recovered,
            outcome.commit.batches_committed) == (1, 0, 2)
    assert len(_new_sales(env, before_id)) == 5


def test_a_batch_the_core_refuses_stops_the_import_and_a_redrop_continues(env, monkeypatch):
    p = next(p for p in skus(env, 25) if p["stockQuantity"] >= 4)
    before_id = max(s["id"] for s in env.sales())
    n = p["stockQuantity"] + 2
    env.drop("sales.csv", "sku,qty\r\n" + f"{p['sku']},1\r\n" * n)
    generous = lambda client: {k: {**v, "stockQuantity": 10_000} for k, v in C.catalogue(client).items()}  # noqa: E731
    import salesflow.imports.pipeline as pipeline
    monkeypatch.setattr(pipeline, "catalogue", generous)
    outcome = env.run("sales.csv", settings_kw={"batch_sales": 2})
    assert outcome.status == "failed" and "INSUFFICIENT_STOCK" in outcome.message
    assert outcome.moved_to.parent == env.layout.rejected
    assert "commit stopped" in outcome.report.read_text()
    committed = len(_new_sales(env, before_id))
    assert committed == p["stockQuantity"] // 2 * 2
    assert f"rows 2-{committed + 1} ({p['sku']}" in outcome.message and "are committed" in outcome.message
    assert f"rows {committed + 2}-{n + 1} ({p['sku']}" in outcome.message
    assert env.query("SELECT status FROM ops.imports") == [("failed",)]
    monkeypatch.undo()
    with env.client() as client:  # fix the stock, then drop the same file again
        current = client.get_json(f"/products/by-sku/{p['sku']}")
        C.put_json(client, f"/products/by-sku/{p['sku']}", {**current, "stockQuantity": current["stockQuantity"] + 10})
    env.drop("sales.csv", outcome.moved_to.read_bytes())
    again = env.run("sales.csv", settings_kw={"batch_sales": 2})
    assert again.status == "committed", again.summary()
    assert again.commit.batches_skipped == committed // 2
    assert len(_new_sales(env, before_id)) == n


# -- warehouse kinds -----------------------------------------------------------------------
def test_sales_history_goes_to_the_warehouse_with_negative_ids(env):
    a, b = skus(env, 2)
    env.drop("history.csv",
             "Date,Time,Receipt,SKU,Qty,Unit Price,Customer,Product Name\r\n"
             f"2024-03-01,10:15,T1,{a['sku']},2,4.20,C1,Old name\r\n"
             f"01.03.2024,10:15,T1,{b['sku']},1,\"1,00\",C1,\r\n"
             f"2 Mar 2024,,,{b['sku']},3,0.99,,\r\n")
    outcome = env.run("history.csv")
    assert outcome.status == "committed", outcome.summary()
    sales = env.query("SELECT sale_id, sale_ts, sale_date, total_amount, customer_id FROM raw.sales ORDER BY sale_ts")
    assert [(s[1], s[2], s[3], s[4]) for s in sales] == [
        (datetime(2024, 3, 1, 10, 15), date(2024, 3, 1), Decimal("9.40"), "C1"),
        (datetime(2024, 3, 2), date(2024, 3, 2), Decimal("2.97"), None),
    ]
    assert all(s[0] < 0 for s in sales)
    assert sales[0][0] == C.history_sale_id("2024-03-01|T1")
    items = env.query("SELECT sale_id, line_no, product_id, sku, product_name, quantity, unit_price, subtotal "
                      "FROM raw.sale_items ORDER BY sale_id, line_no")
    t1 = [i for i in items if i[0] == sales[0][0]]
    assert t1 == [(sales[0][0], 1, a["id"], a["sku"], "Old name", 2, Decimal("4.20"), Decimal("8.40")),
                  (sales[0][0], 2, b["id"], b["sku"], b["name"], 1, Decimal("1.00"), Decimal("1.00"))]
    # the same sale in a corrected file replaces it instead of adding to it
    env.drop("history_fix.csv", f"date,receipt,sku,qty,unit_price\r\n2024-03-01,T1,{a['sku']},1,4.20\r\n")
    again = env.run("history_fix.csv")
    assert again.status == "committed" and again.commit.actions["replaced_sales"] == 1
    assert env.query("SELECT count(*), sum(total_amount) FROM raw.sales") == [(2, Decimal("7.17"))]
    assert env.query("SELECT count(*) FROM raw.sale_items WHERE sale_id = ?", [sales[0][0]]) == [(1,)]


def test_a_crash_inside_the_warehouse_transaction_leaves_nothing_and_the_rerun_commits_once(env, monkeypatch):
    env.drop("expenses.csv", "date,amount,category\r\n2025-06-01,\"1,200.00\",Rent\r\n2025-06-02,\"12,50\",\r\n")
    crash_on(monkeypatch, J, "finish_batch")
    with pytest.raises(SimulatedCrash):
        env.run("expenses.csv")
    assert env.query("SELECT count(*) FROM raw.expenses") == [(0,)]
    assert env.query("SELECT count(*) FROM ops.import_batches") == [(0,)]
    assert env.query("SELECT status FROM ops.imports") == [("failed",)]
    monkeypatch.undo()
    outcome = env.run("expenses.csv")
    assert outcome.status == "committed"
    assert env.query("SELECT expense_date, category, amount, source_file FROM raw.expenses ORDER BY 1") == [
        (date(2025, 6, 1), "Rent", Decimal("1200.00"), "expenses.csv"),
        (date(2025, 6, 2), None, Decimal("12.50"), "expenses.csv")]


def test_unambiguous_thousands_and_three_date_formats_are_accepted(env):
    path = env.layout.inbox / "expenses.xlsx"
    env.layout.ensure()
    write_xlsx(path, [
        ["Expense Date", "Amount (€)", "Category", "Vendor"],
        ["2025-06-01", "1,234.50", "Rent", "Acme"],
        ["02.06.2025", "1.234,50", "Rent", "Acme"],
        [datetime(2025, 6, 3), "1 234", "Power", "Volt"],
        [datetime(2025, 6, 4), 99.9, "Power", "Volt"],
    ])
    outcome = env.run("expenses.xlsx")
    assert outcome.status == "committed", outcome.summary()
    assert env.query("SELECT expense_date, amount, vendor FROM raw.expenses ORDER BY 1") == [
        (date(2025, 6, 1), Decimal("1234.50"), "Acme"), (date(2025, 6, 2), Decimal("1234.50"), "Acme"),
        (date(2025, 6, 3), Decimal("1234.00"), "Volt"), (date(2025, 6, 4), Decimal("99.90"), "Volt")]


def test_customers_are_upserted_by_id(env):
    env.drop("customers.csv", "Customer ID,Full Name,E-mail,Since\r\nC1,Ada,ada@example.com,2023-04-01\r\nC2,Bob,,\r\n")
    assert env.run("customers.csv").status == "committed"
    env.drop("customers_update.csv", "customer_id,name,city\r\nC2,Robert,Paris\r\n")
    assert env.run("customers_update.csv").status == "committed"
    assert env.query("SELECT customer_id, name, email, city, customer_since, source_file FROM raw.customers "
                     "ORDER BY 1") == [
        ("C1", "Ada", "ada@example.com", None, date(2023, 4, 1), "customers.csv"),
        ("C2", "Robert", None, "Paris", None, "customers_update.csv")]


def test_the_same_file_dropped_twice_is_imported_once(env):
    text = "date,amount\r\n2025-06-01,10\r\n"
    env.drop("expenses.csv", text)
    assert env.run("expenses.csv").status == "committed"
    env.drop("expenses copy.csv", text)
    second = env.run("expenses copy.csv")
    assert second.status == "duplicate" and "not imported again" in second.message
    assert second.moved_to.parent == env.layout.rejected and second.report.name.endswith(".duplicate.txt")
    assert env.query("SELECT count(*) FROM raw.expenses") == [(1,)]
    assert env.query("SELECT filename, status FROM ops.imports ORDER BY received_at, status") == [
        ("expenses.csv", "committed"), ("expenses copy.csv", "duplicate")]


def test_review_mode_previews_then_commits_once_approved(env):
    a = skus(env, 1)[0]
    env.drop("stock_counts.csv", f"sku,counted\r\n{a['sku']},{a['stockQuantity'] + 3}\r\n")
    review = ImportSettings(mode="review")
    outcome = env.run("stock_counts.csv", settings=review)
    assert outcome.status == "awaiting_approval"
    assert env.products()[a["sku"]]["stockQuantity"] == a["stockQuantity"]
    pending = env.layout.pending / "stock_counts.csv"
    assert outcome.moved_to == pending and outcome.report == pending.with_name("stock_counts.csv.preview.xlsx")
    wb = load_workbook(outcome.report)
    plan = list(wb["Plan"].iter_rows(values_only=True))
    assert plan == [("row", "sku", "current stock", "counted", "change"),
                    (2, a["sku"], a["stockQuantity"], a["stockQuantity"] + 3, 3)]
    summary = dict(r for r in wb["Summary"].iter_rows(values_only=True))
    assert "inbox/approved/" in summary["Next step"]
    assert env.query("SELECT status FROM ops.imports") == [("awaiting_approval",)]

    pending.rename(env.layout.approved / "stock_counts.csv")
    done = env.run("approved/stock_counts.csv", settings=review)
    assert done.status == "committed", done.summary()
    assert env.products()[a["sku"]]["stockQuantity"] == a["stockQuantity"] + 3
    assert done.report is not None and done.report.parent == env.layout.processed
    assert not any(env.layout.pending.iterdir()) and not any(env.layout.approved.iterdir())


def test_sale_ids_of_history_never_collide_with_the_cores():
    keys = [f"2024-01-{d:02d}|R{r}" for d in range(1, 29) for r in range(200)]
    ids = {C.history_sale_id(k) for k in keys}
    assert len(ids) == len(keys) and all(-(2**62) <= i < 0 for i in ids)
