"""Committing a validated file, in batches recorded in ``ops.import_batches``.

Only files without a single problem get here. Batches are numbered from the file's content
alone (same file → same batches), so an interrupted import resumes batch by batch: a
batch marked committed is skipped; a batch left ``pending`` (begun, never marked committed:
the process died or the connection broke around the write) is checked against its target
before anything is sent again. What "checked" means per kind:

* ``products`` — every write is a full replace by sku (``PUT /products/by-sku``) or a create
  when the sku does not exist yet, each decided from a fresh ``GET`` just before, and a
  product that already matches the file is not written. Re-running a pending batch is
  therefore harmless: a product created before the crash is found and left alone (its
  initial stock is not added again), an updated one already matches. A product already in
  the core keeps its current stock (the ``PUT`` carries the stock just read).
* ``stock_counts`` — the core keeps stock on the product, and ``PUT /products/by-sku``
  replaces ``stockQuantity`` (JAVA_API.md: full replace); the additive quirk is on the
  inventory side (each product write adds the product's stock to the inventory item's
  ``quantity``, and any inventory write adds to the product's stock), so counts are never
  written through ``/inventory``, and an unchanged count is not written at all. Before a
  batch is sent, each product's stock *before* is journaled. On resume each row of a pending
  batch is: already at the counted figure → done; still at the journaled figure → applied
  now; anything else (a sale or another change happened since, so whether our write landed
  cannot be told) → not written, reported for a manual check. A count is thus never applied
  twice, and the journal keeps before/after for every row. Every ``PUT`` answer is checked:
  a core that did not set the stock to the counted figure stops the import.
* ``sales`` — ``POST /sales/bulk`` is all-or-nothing and the core stamps ids and dates
  itself, so before each batch the highest sale id in the core is journaled with the batch.
  A pending batch is looked for among the core's sales with a higher id (``/sales/history``
  back to the day it was sent): if the batch's sales appear there in order (same skus and
  quantities per sale), it was committed and is marked so; otherwise it is sent again. A
  refusal (4xx) means nothing of the batch was written: the import stops with the core's
  reason, earlier batches stay committed, and a rerun continues from that batch. The
  residual risk is a batch so small (one sale of one line) that an identical till sale in
  the same window is taken for it; it would then not be re-sent.
* ``sales_history``, ``customers``, ``expenses`` — one DuckDB transaction holds the rows,
  the batch record and the file's ``committed`` status: an interruption leaves nothing,
  and a rerun writes everything exactly once. Historical sales get negative sale ids
  (the core's ids are positive), derived from the sale date and sale_ref (or, for lines
  without a sale_ref, from the file's sha256 and row number), so importing the same sale
  again replaces it instead of adding it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import quote

import duckdb
import pandas as pd

from salesflow.core_client import CoreClient
from salesflow.errors import CoreApiError, CoreDataError, SalesflowError
from salesflow.imports import journal as J
from salesflow.imports.validation import Validated
from salesflow.warehouse import registered, transaction

_log = logging.getLogger("salesflow.imports")


class CommitRefused(SalesflowError):
    """The core refused a batch (nothing of that batch was written); rerunning will not help
    until the cause (e.g. stock) is fixed."""


@dataclass
class CommitReport:
    kind: str
    batches_total: int = 0
    batches_committed: int = 0  # sent and committed by this run
    batches_skipped: int = 0  # already committed by an earlier run
    batches_recovered: int = 0  # pending, found already applied in the target
    rows_committed: int = 0
    actions: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)

    def as_metadata(self) -> dict:
        return {
            "batches_total": self.batches_total,
            "batches_committed": self.batches_committed,
            "batches_skipped": self.batches_skipped,
            "batches_recovered": self.batches_recovered,
            "rows_committed": self.rows_committed,
            **{f"action_{k}": v for k, v in sorted(self.actions.items())},
        }


@dataclass
class CommitJob:
    sha256: str
    filename: str
    validated: Validated
    con: duckdb.DuckDBPyConnection
    client: CoreClient | None
    today: date
    imported_at: datetime
    batch_rows: int = 50
    batch_sales: int = 100
    catalogue: dict[str, dict] = field(default_factory=dict)
    log: Any = _log
    # counts for the file's row in ops.imports, written with the warehouse kinds' data
    status_fields: dict = field(default_factory=dict)


def commit(job: CommitJob) -> CommitReport:
    kind = job.validated.kind.name
    fn: Callable[[CommitJob], CommitReport] = {
        "products": commit_products,
        "stock_counts": commit_stock_counts,
        "sales": commit_sales,
        "sales_history": commit_sales_history,
        "customers": commit_customers,
        "expenses": commit_expenses,
    }[kind]
    return fn(job)


# -- the core --------------------------------------------------------------------------
def put_json(client: CoreClient, path: str, body: Any) -> Any:
    """PUT a JSON body (a full replace: idempotent, so retried like a read); the decoded answer."""
    import orjson

    resp = client.put_json(path, body)
    return orjson.loads(resp.content) if resp.content else None


def get_product(client: CoreClient, sku: str) -> dict | None:
    try:
        return client.get_json(f"/products/by-sku/{quote(sku, safe='')}")
    except CoreApiError as exc:
        if exc.status == 404:
            return None
        raise


def catalogue(client: CoreClient) -> dict[str, dict]:
    products = client.get_json("/products")
    if not isinstance(products, list):
        raise CoreDataError("GET /products did not answer a list")
    return {p["sku"]: p for p in products if isinstance(p, dict) and p.get("sku")}


def _money(value) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def _chunks(items: list, size: int) -> list[list]:
    return [items[i:i + size] for i in range(0, len(items), max(1, size))]


def _open_batches(job: CommitJob, report: CommitReport, items: list, size: int):
    """``(batch number, chunk, journal entry or None)`` of every batch not committed yet;
    batches an earlier run committed are counted as skipped."""
    done = J.batches(job.con, job.sha256)
    chunks = _chunks(items, size)
    report.batches_total = len(chunks)
    for no, chunk in enumerate(chunks, start=1):
        batch = done.get(no)
        if batch is not None and batch.committed:
            report.batches_skipped += 1
            continue
        yield no, chunk, batch


def commit_products(job: CommitJob) -> CommitReport:
    client = job.client
    report = CommitReport("products")
    for no, chunk, _ in _open_batches(job, report, job.validated.records(), job.batch_rows):
        rows = [r["_row"] for r in chunk]
        J.begin_batch(job.con, job.sha256, no, rows[0], rows[-1],
                      {"rows": rows, "skus": [r["sku"] for r in chunk]})
        actions = Counter()
        for rec in chunk:
            actions[_apply_product(client, rec)] += 1
        J.finish_batch(job.con, job.sha256, no, rows[0], rows[-1],
                       {"rows": rows, **actions})
        report.actions.update(actions)
        report.batches_committed += 1
        report.rows_committed += len(chunk)
    return report


def _apply_product(client: CoreClient, rec: dict) -> str:
    sku = rec["sku"]
    current = get_product(client, sku)
    if current is None:
        body = {
            "name": rec["name"], "sku": sku, "price": float(rec["price"]),
            "stockQuantity": rec.get("initial_stock") or 0,
            "description": rec.get("description"), "imageUrl": None,
            "lowStockThreshold": rec.get("low_stock_threshold") or 10,
        }
        try:
            client.post_json("/products", body, retry=False)
            return "created"
        except CoreApiError as exc:
            if exc.status != 400:
                raise
            current = get_product(client, sku)  # created meanwhile (e.g. by a crashed run)
            if current is None:
                raise CommitRefused(f"the core refused to create sku {sku!r}: {exc}") from None
    body = {
        "name": rec["name"], "sku": sku, "price": float(rec["price"]),
        "stockQuantity": current.get("stockQuantity", 0),
        "description": rec["description"] if rec.get("description") is not None else current.get("description"),
        "imageUrl": current.get("imageUrl"),
        "lowStockThreshold": rec.get("low_stock_threshold") or current.get("lowStockThreshold") or 10,
    }
    same = (
        current.get("name") == body["name"]
        and _money(current.get("price", 0)) == rec["price"]
        and current.get("description") == body["description"]
        and current.get("lowStockThreshold") == body["lowStockThreshold"]
    )
    if same:
        return "unchanged"
    try:
        put_json(client, f"/products/by-sku/{quote(sku, safe='')}", body)
    except CoreApiError as exc:
        if exc.status is not None and 400 <= exc.status < 500:
            raise CommitRefused(f"the core refused to update sku {sku!r}: {exc}") from None
        raise
    return "updated"


def commit_stock_counts(job: CommitJob) -> CommitReport:
    client = job.client
    report = CommitReport("stock_counts")
    for no, chunk, batch in _open_batches(job, report, job.validated.records(), job.batch_rows):
        rows = [r["_row"] for r in chunk]
        read: dict[int, dict] = {}  # products just read for the plan, by row
        if batch is not None:  # pending: classify each row against the journaled stock
            plan = [tuple(x) for x in batch.detail.get("plan", [])]
            resumed = True
        else:
            plan = []
            for rec in chunk:
                current = get_product(client, rec["sku"])
                if current is None:
                    raise CommitRefused(f"sku {rec['sku']!r} is no longer in the core")
                read[rec["_row"]] = current
                plan.append((rec["_row"], rec["sku"], int(current.get("stockQuantity", 0)),
                             int(rec["counted_quantity"])))
            J.begin_batch(job.con, job.sha256, no, rows[0], rows[-1],
                          {"rows": rows, "plan": plan})
            resumed = False
        actions: Counter = Counter()
        changes, flagged = [], []
        for row, sku, before, counted in plan:
            # a resumed batch reads the stock anew: the interrupted run may have set it
            current = read.pop(row, None) if not resumed else None
            current = current if current is not None else get_product(client, sku)
            if current is None:
                raise CommitRefused(f"sku {sku!r} is no longer in the core")
            stock = int(current.get("stockQuantity", 0))
            if stock == counted:
                actions["already_set" if resumed and before != counted else "unchanged"] += 1
                continue
            if resumed and stock != before:
                flagged.append({"row": row, "sku": sku, "before": before, "counted": counted,
                                "now": stock})
                actions["needs_check"] += 1
                continue
            body = {k: current.get(k) for k in ("name", "sku", "price", "description", "imageUrl",
                                                 "lowStockThreshold")}
            body["stockQuantity"] = counted
            answer = put_json(client, f"/products/by-sku/{quote(sku, safe='')}", body)
            got = answer.get("stockQuantity") if isinstance(answer, dict) else None
            if got != counted:
                raise CoreDataError(
                    f"the core answered stock {got} for sku {sku!r} after it was set to "
                    f"{counted} (it was {stock}): stock writes do not replace the figure, "
                    "the import stops")
            changes.append([sku, stock, counted])
            actions["set"] += 1
        J.finish_batch(job.con, job.sha256, no, rows[0], rows[-1],
                       {"rows": rows, "changes": changes, "flagged": flagged, **actions})
        for f in flagged:
            report.warnings.append(
                f"row {f['row']}: sku {f['sku']!r} was not set to {f['counted']}: its stock "
                f"changed to {f['now']} since the interrupted attempt read {f['before']}; "
                "check it by hand")
        report.actions.update(actions)
        if resumed:
            report.batches_recovered += 1
        else:
            report.batches_committed += 1
        report.rows_committed += len(plan) - len(flagged)
    return report


def group_sales(validated: Validated) -> list[dict]:
    """Lines into sales: lines sharing a sale_ref are one sale, others one sale each."""
    data = validated.data
    sales: dict[Any, dict] = {}
    for pos, row in enumerate(validated.row_numbers):
        ref = data["sale_ref"][pos]
        key = ("ref", ref) if ref is not None else ("row", row)
        sale = sales.get(key)
        if sale is None:
            sale = sales[key] = {"rows": [], "items": [], "customer_id": data["customer_id"][pos]}
        sale["rows"].append(row)
        sale["items"].append((data["sku"][pos], int(data["quantity"][pos])))
    return list(sales.values())


def _max_sale_id(client: CoreClient) -> int:
    recent = client.get_json("/sales/recent", params={"limit": 20})
    return max((int(s["id"]) for s in recent if isinstance(s, dict) and "id" in s), default=0)


def _batch_found(client: CoreClient, fingerprints: list[tuple], after_id: int,
                 sent_day: date, today: date) -> bool:
    days = max(0, (today - sent_day).days) + 1
    sales = client.get_json("/sales/history", params={"days": days})
    newer = sorted((s for s in sales if int(s.get("id", 0)) > after_id), key=lambda s: int(s["id"]))
    want = iter(fingerprints)
    target = next(want, None)
    for s in newer:
        if target is None:
            break
        items = tuple((i.get("sku"), int(i.get("quantity", 0))) for i in s.get("items") or [])
        if items == target:
            target = next(want, None)
    return target is None


def commit_sales(job: CommitJob) -> CommitReport:
    client = job.client
    report = CommitReport("sales")
    for no, chunk, batch in _open_batches(job, report, group_sales(job.validated), job.batch_sales):
        rows = sorted(r for s in chunk for r in s["rows"])
        fingerprints = [tuple(s["items"]) for s in chunk]
        detail = {"rows": rows, "sales": len(chunk), "lines": sum(len(s["items"]) for s in chunk)}
        if batch is not None:
            after = int(batch.detail.get("before_max_id", 0))
            sent = date.fromisoformat(batch.detail.get("core_day", job.today.isoformat()))
            if _batch_found(client, fingerprints, after, sent, job.today):
                J.finish_batch(job.con, job.sha256, no, rows[0], rows[-1],
                               {**detail, "before_max_id": after, "recovered": True})
                report.batches_recovered += 1
                report.rows_committed += len(rows)
                report.actions["sales"] += len(chunk)
                continue
        before = _max_sale_id(client)
        J.begin_batch(job.con, job.sha256, no, rows[0], rows[-1],
                      {**detail, "before_max_id": before, "core_day": job.today.isoformat()})
        payload = []
        for s in chunk:
            sale: dict[str, Any] = {"items": [{"sku": sku, "quantity": qty} for sku, qty in s["items"]]}
            if s["customer_id"]:
                sale["customerId"] = s["customer_id"]
            payload.append(sale)
        try:
            client.post_json("/sales/bulk", payload, retry=False)
        except CoreApiError as exc:
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403, 408):
                job.con.execute("DELETE FROM ops.import_batches WHERE file_sha256 = ? AND batch_no = ?",
                                [job.sha256, no])
                raise CommitRefused(
                    f"the core refused sales batch {no} of {report.batches_total} (rows {rows[0]}-{rows[-1]}): "
                    f"{exc}; batches before it are committed, a rerun continues from this batch"
                ) from None
            raise
        J.finish_batch(job.con, job.sha256, no, rows[0], rows[-1], {**detail, "before_max_id": before})
        report.batches_committed += 1
        report.rows_committed += len(rows)
        report.actions["sales"] += len(chunk)
    return report


# -- the warehouse -----------------------------------------------------------------------
def history_sale_id(key: str) -> int:
    """A negative BIGINT from ``key`` (the core's sale ids are positive)."""
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return -(1 + (int.from_bytes(digest, "big") >> 2))


def _finish_warehouse(job: CommitJob, report: CommitReport, rows: list[int], detail: dict) -> None:
    J.finish_batch(job.con, job.sha256, 1, rows[0], rows[-1], detail, at=job.imported_at)
    J.set_import(job.con, job.sha256, status="committed", committed_at=job.imported_at,
                 **job.status_fields)
    report.batches_total = 1
    report.batches_committed = 1
    report.rows_committed = len(rows)


def _already_committed(job: CommitJob, report: CommitReport) -> bool:
    batch = J.batches(job.con, job.sha256).get(1)
    if batch is not None and batch.committed:
        report.batches_total = 1
        report.batches_skipped = 1
        return True
    return False


def commit_sales_history(job: CommitJob) -> CommitReport:
    report = CommitReport("sales_history")
    v = job.validated
    data = v.data
    catalogue = job.catalogue
    sales: dict[int, dict] = {}
    lines = []
    for pos, row in enumerate(v.row_numbers):
        day: date = data["date"][pos]
        ref = data["sale_ref"][pos]
        key = f"{day.isoformat()}|{ref}" if ref is not None else f"{job.sha256}|row{row}"
        sale_id = history_sale_id(key)
        sale = sales.get(sale_id)
        if sale is None:
            clock = data["time"][pos] or time(0)
            sale = sales[sale_id] = {
                "key": key, "sale_id": sale_id, "sale_ts": datetime.combine(day, clock),
                "sale_date": day, "total": Decimal("0.00"), "customer_id": data["customer_id"][pos],
                "lines": 0,
            }
        elif sale["key"] != key:
            raise CoreDataError(f"sale id collision between {sale['key']!r} and {key!r}")
        sku = data["sku"][pos]
        qty = int(data["quantity"][pos])
        price: Decimal = data["unit_price"][pos]
        subtotal = (price * qty).quantize(Decimal("0.01"))
        sale["total"] += subtotal
        sale["lines"] += 1
        product = catalogue.get(sku) or {}
        lines.append({
            "sale_id": sale_id, "line_no": sale["lines"], "product_id": product.get("id"),
            "sku": sku, "product_name": data["product_name"][pos] or product.get("name") or sku,
            "quantity": qty, "unit_price": str(price), "subtotal": str(subtotal),
        })
    sales_frame = pd.DataFrame([
        {"sale_id": s["sale_id"], "sale_ts": s["sale_ts"].isoformat(sep=" "),
         "sale_date": s["sale_date"].isoformat(), "total_amount": str(s["total"]),
         "customer_id": s["customer_id"]}
        for s in sales.values()
    ], columns=["sale_id", "sale_ts", "sale_date", "total_amount", "customer_id"])
    lines_frame = pd.DataFrame(lines, columns=["sale_id", "line_no", "product_id", "sku",
                                               "product_name", "quantity", "unit_price",
                                               "subtotal"])
    sales_frame["customer_id"] = sales_frame["customer_id"].astype("object")
    lines_frame["product_id"] = lines_frame["product_id"].astype("Int64")
    con = job.con
    with transaction(con):
        if _already_committed(job, report):
            return report
        with registered(con, _imp_sales=sales_frame, _imp_lines=lines_frame):
            replaced = con.execute(
                "SELECT count(*) FROM raw.sales WHERE sale_id IN (SELECT sale_id FROM _imp_sales)"
            ).fetchone()[0]
            con.execute("DELETE FROM raw.sale_items WHERE sale_id IN (SELECT sale_id FROM _imp_sales)")
            con.execute("DELETE FROM raw.sales WHERE sale_id IN (SELECT sale_id FROM _imp_sales)")
            con.execute(
                """INSERT INTO raw.sales
                   SELECT CAST(sale_id AS BIGINT), CAST(sale_ts AS TIMESTAMP), CAST(sale_date AS DATE),
                          CAST(total_amount AS DECIMAL(18,2)), CAST(customer_id AS VARCHAR), ?
                   FROM _imp_sales ORDER BY sale_ts, sale_id""",
                [job.imported_at],
            )
            con.execute(
                """INSERT INTO raw.sale_items
                   SELECT CAST(sale_id AS BIGINT), CAST(line_no AS INTEGER), CAST(product_id AS BIGINT),
                          sku, product_name, CAST(quantity AS INTEGER),
                          CAST(unit_price AS DECIMAL(18,2)), CAST(subtotal AS DECIMAL(18,2))
                   FROM _imp_lines"""
            )
            first, last = sales_frame["sale_date"].min(), sales_frame["sale_date"].max()
            core_days = con.execute(
                "SELECT count(DISTINCT sale_date) FROM raw.sales WHERE sale_id > 0 "
                "AND sale_date BETWEEN CAST(? AS DATE) AND CAST(? AS DATE)",
                [first, last],
            ).fetchone()[0]
            _finish_warehouse(job, report, list(v.row_numbers), {
                "rows": len(v.row_numbers), "sales": len(sales_frame), "lines": len(lines_frame),
                "replaced_sales": replaced, "first_date": first, "last_date": last,
            })
    report.actions["sales"] = len(sales_frame)
    report.actions["lines"] = len(lines_frame)
    if replaced:
        report.actions["replaced_sales"] = replaced
        report.warnings.append(f"{replaced} sales imported before (same date and sale_ref) were replaced")
    if core_days:
        report.warnings.append(
            f"{core_days} of the days {first}..{last} also have sales from the core: make sure "
            "these historical sales are not in the core too")
    return report


def commit_customers(job: CommitJob) -> CommitReport:
    report = CommitReport("customers")
    v = job.validated
    d = v.data
    frame = pd.DataFrame({
        "customer_id": d["customer_id"], "name": d["name"], "email": d["email"],
        "phone": d["phone"], "city": d["city"],
        "customer_since": [x.isoformat() if x else None for x in d["customer_since"]],
    }).astype("object")
    con = job.con
    with transaction(con):
        if _already_committed(job, report):
            return report
        with registered(con, _imp_customers=frame):
            replaced = con.execute(
                "SELECT count(*) FROM raw.customers WHERE customer_id IN "
                "(SELECT customer_id FROM _imp_customers)").fetchone()[0]
            con.execute("DELETE FROM raw.customers WHERE customer_id IN "
                        "(SELECT customer_id FROM _imp_customers)")
            con.execute(
                """INSERT INTO raw.customers
                   SELECT CAST(customer_id AS VARCHAR), CAST(name AS VARCHAR), CAST(email AS VARCHAR),
                          CAST(phone AS VARCHAR), CAST(city AS VARCHAR),
                          CAST(customer_since AS DATE), ?, ?
                   FROM _imp_customers""",
                [job.filename, job.imported_at],
            )
            _finish_warehouse(job, report, list(v.row_numbers),
                              {"rows": len(frame), "replaced": replaced})
    report.actions["new"] = len(frame) - replaced
    report.actions["replaced"] = replaced
    return report


def commit_expenses(job: CommitJob) -> CommitReport:
    report = CommitReport("expenses")
    v = job.validated
    d = v.data
    frame = pd.DataFrame({
        "expense_id": d["expense_id"],
        "expense_date": [x.isoformat() for x in d["date"]],
        "category": d["category"],
        "amount": [str(x) for x in d["amount"]],
        "description": d["description"], "vendor": d["vendor"],
    }).astype("object")
    con = job.con
    with transaction(con):
        if _already_committed(job, report):
            return report
        with registered(con, _imp_expenses=frame):
            con.execute(
                """INSERT INTO raw.expenses
                   SELECT CAST(expense_id AS VARCHAR), CAST(expense_date AS DATE),
                          CAST(category AS VARCHAR), CAST(amount AS DECIMAL(18,2)),
                          CAST(description AS VARCHAR), CAST(vendor AS VARCHAR), ?, ?
                   FROM _imp_expenses""",
                [job.filename, job.imported_at],
            )
            total = sum(d["amount"], Decimal("0.00"))
            _finish_warehouse(job, report, list(v.row_numbers),
                              {"rows": len(frame), "total": str(total)})
    report.actions["expenses"] = len(frame)
    return report
