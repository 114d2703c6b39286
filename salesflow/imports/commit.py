"""Committing a validated file, in batches recorded in ``ops.import_batches``.

Only files without a single problem get here. Batches are numbered from the file's content
alone (same file → same batches), so an interrupted import resumes batch by batch, and no
write to the core is ever applied twice:

* Every write is journaled ``sent`` with its time just before it leaves. A write whose answer
  is lost (timeout, broken connection, 5xx, the process killed) is never sent again blindly:
  the core is checked for its effect, polling until it shows up or until the settle window
  (``CoreClient.write_settle_s`` after sending, longer than the write timeout) has passed;
  only then is it sent again. A batch journaled ``begun`` had nothing in flight and is sent at
  once. The residual assumption: the core applies or drops a request within the settle window.
* ``products`` and ``stock_counts`` write one product at a time (``POST /products``, ``PUT
  /products/by-sku``) and journal each row as it is done, so a commit the core stops half-way
  says exactly which rows are committed, and a rerun starts at the first row not done. A
  product is created or replaced from a fresh ``GET`` (the ``PUT`` carries the stock just
  read); a count is set only while the stock is still the figure read before, otherwise the
  row is reported for a manual check. Counts never go through ``/inventory`` (additive quirk).
* ``sales`` — ``POST /sales/bulk`` is all-or-nothing and the core stamps ids and dates, so the
  highest sale id is journaled with the batch and its effect is its sales, in order (same skus
  and quantities), among the newer ones in ``/sales/history``. A batch so small that an
  identical till sale in the same window is taken for it would not be re-sent.
* A refusal (4xx) writes nothing of that row or batch: the import stops naming the row, with
  the account of committed and uncommitted rows; a rerun continues from there.
* ``sales_history``, ``customers``, ``expenses``, ``lead_times`` — one DuckDB transaction holds
  the rows, the batch record and the file's ``committed`` status: an interruption leaves nothing,
  and a rerun writes everything exactly once. Historical sales get negative sale ids
  (the core's ids are positive), derived from the sale date and sale_ref (or, for lines
  without a sale_ref, from the file's sha256 and row number), so importing the same sale
  again replaces it instead of adding it.
"""

from __future__ import annotations

import hashlib
import logging
from time import sleep
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import quote

import duckdb
import pandas as pd

from salesflow.core_client import CoreClient, WriteOutcomeUnknown
from salesflow.errors import CoreApiError, CoreDataError, SalesflowError
from salesflow.imports import journal as J
from salesflow.imports.validation import Validated
from salesflow.warehouse import registered, transaction

_log = logging.getLogger("salesflow.imports")

WRITE_ATTEMPTS = 3  # sends of one write by one run, each after its effect failed to show up
FOUND = object()  # a write without an answer whose effect showed up
LOST = object()  # ... whose effect did not show up within the settle window


class CommitRefused(SalesflowError):
    """The core refused a row or batch (nothing of it was written); rerunning will not help
    until the cause is fixed. ``rows`` are the refused spreadsheet rows."""

    def __init__(self, message: str, rows: list[int] | tuple[int, ...] = ()):
        super().__init__(message)
        self.rows = list(rows)


@dataclass
class CommitReport:
    kind: str
    batches_total: int = 0
    batches_committed: int = 0  # sent and committed by this run
    batches_skipped: int = 0  # already committed by an earlier run
    batches_recovered: int = 0  # interrupted batches completed (a lost write found applied)
    rows_committed: int = 0  # by this run
    actions: Counter = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    # the sale days whose rows in raw.sales / raw.sale_items the commit wrote or replaced
    sale_days: list[date] = field(default_factory=list)

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
        "lead_times": commit_lead_times,
    }[kind]
    return fn(job)


# -- the account of an interrupted commit ----------------------------------------------------
def account(con: duckdb.DuckDBPyConnection, sha256: str, validated: Validated,
            refused: list[int] | tuple[int, ...] = ()) -> dict:
    """Which rows of the file are committed, refused, sent without an answer, not committed."""
    committed, in_doubt = J.row_account(con, sha256)
    out = {"committed": sorted(committed), "failed": sorted(refused),
           "not_committed": [r for r in validated.row_numbers
                             if r not in committed and r not in in_doubt]}
    if in_doubt:
        out["in_doubt"] = sorted(in_doubt)
    return out


def account_text(acc: dict, validated: Validated) -> str:
    labels = dict(zip(validated.row_numbers, validated.data.get("sku") or []))
    verb = lambda rows, one="is", more="are": one if len(rows) == 1 else more  # noqa: E731
    parts = [f"{_rows_text(acc['committed'], labels)} {verb(acc['committed'])} committed"
             if acc["committed"] else "no row is committed"]
    if acc.get("in_doubt"):
        parts.append(f"{_rows_text(acc['in_doubt'], labels)} {verb(acc['in_doubt'], 'was', 'were')}"
                     " sent without an answer (a rerun checks the core before sending again)")
    if acc["not_committed"]:
        parts.append(f"{_rows_text(acc['not_committed'], labels)} {verb(acc['not_committed'])} not")
    return "; ".join(parts)


def _rows_text(rows: list[int], labels: dict[int, Any], n: int = 10) -> str:
    spans: list[list[int]] = []
    for r in rows:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    where = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
    names = [str(labels[r]) for r in rows[:n] if labels.get(r) is not None]
    if names and len(rows) > n:
        names.append(f"and {len(rows) - n} more")
    return f"row{'s' if len(rows) > 1 else ''} {where}" + (f" ({', '.join(names)})" if names else "")


# -- the core --------------------------------------------------------------------------
def put_json(client: CoreClient, path: str, body: Any) -> Any:
    """PUT a JSON body once (a late duplicate could undo a later change); the decoded answer."""
    import orjson

    resp = client.put_json(path, body, retry=False)
    return orjson.loads(resp.content) if resp.content else None


def _product_path(sku: str) -> str:
    return f"/products/by-sku/{quote(sku, safe='')}"


def get_product(client: CoreClient, sku: str) -> dict | None:
    try:
        return client.get_json(_product_path(sku))
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


def _refusal(exc: CoreApiError) -> bool:
    """An answer that says the core will not do it (not a passing failure)."""
    return exc.status is not None and 400 <= exc.status < 500 and exc.status not in (401, 403, 408, 429)


def _settled(client: CoreClient, sent_at: datetime | None, seen: Callable[[], bool]) -> bool:
    """Whether a write sent at ``sent_at`` without an answer shows its effect: ``seen`` is
    polled until it holds or the settle window after sending has passed (one look when the
    sending time is unknown)."""
    window = float(getattr(client, "write_settle_s", 180.0))
    deadline = sent_at + timedelta(seconds=window) if sent_at else J.utcnow_exact()
    poll = max(0.05, min(2.0, window / 20))
    while True:
        if seen():
            return True
        left = (deadline - J.utcnow_exact()).total_seconds()
        if left <= 0:
            return False
        sleep(min(poll, left))


def _write(job: CommitJob, no: int, detail: dict, send: Callable[[], Any],
           seen: Callable[[], bool]) -> tuple[Any, dict]:
    """Send one write of batch ``no``, journaled as sent just before: ``(answer, detail)``, with
    FOUND or LOST as the answer when it was lost. A refusal or a write that never left is
    re-raised with nothing in flight in the journal."""
    detail = J.mark_sent(job.con, job.sha256, no, detail)
    try:
        return send(), detail
    except WriteOutcomeUnknown as exc:
        job.log.warning(f"batch {no}: {exc}; looking for its effect before sending it again")
        return (FOUND if _settled(job.client, J.sent_time(detail), seen) else LOST), detail
    except CoreApiError:
        J.mark_answered(job.con, job.sha256, no, detail)
        raise


def _no_answer(what: str) -> CoreApiError:
    return CoreApiError(f"{what}: the core answered none of {WRITE_ATTEMPTS} attempts and did "
                        "not apply them; a rerun resumes here")


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


def _rowwise(job: CommitJob, report: CommitReport, size: int, begin: Callable,
             apply_row: Callable) -> None:
    """Batches of single-product writes, each row journaled as done. ``begin(chunk)`` is the
    detail of a new batch; ``apply_row(no, batch, detail, rec)`` returns the row's action and
    the detail."""
    for no, chunk, batch in _open_batches(job, report, job.validated.records(), size):
        rows = [r["_row"] for r in chunk]
        detail = batch.detail if batch is not None else J.begin_batch(
            job.con, job.sha256, no, rows[0], rows[-1], {"rows": rows, "done": {}, **begin(chunk)})
        done = batch.done if batch is not None else {}
        actions: Counter = Counter()
        for rec in chunk:
            row = rec["_row"]
            if row in done:
                actions["committed_earlier"] += 1
                continue
            action, detail = apply_row(no, batch, detail, rec)
            done[row] = action
            actions[action] += 1
            detail = J.mark_answered(job.con, job.sha256, no, {**detail, "done": done})
        kept = {k: v for k, v in detail.items() if k not in ("state", "sending", "sent_at")}
        J.finish_batch(job.con, job.sha256, no, rows[0], rows[-1], {**kept, **actions})
        report.actions.update(actions)
        report.rows_committed += len(chunk) - actions["committed_earlier"]
        if batch is None:
            report.batches_committed += 1
        else:
            report.batches_recovered += 1


def _in_flight(batch: J.Batch | None, row: int) -> bool:
    """Whether the interrupted run sent ``row`` and got no answer."""
    if batch is None or batch.state != "sent":
        return False
    sending = batch.detail.get("sending")
    return sending is None or sending.get("row") == row  # no row: an older journal, all in doubt


def _read_product(client: CoreClient, row: int, sku: str) -> dict | None:
    try:
        return get_product(client, sku)
    except CoreApiError as exc:
        if _refusal(exc):
            raise CommitRefused(f"the core refused row {row} (sku {sku!r}): {exc}", [row]) from None
        raise


# -- products ----------------------------------------------------------------------------
def commit_products(job: CommitJob) -> CommitReport:
    report = CommitReport("products")

    def apply_row(no, batch, detail, rec):
        expect = (batch.detail.get("sending") or {}).get("expect") if batch else None
        if expect and _in_flight(batch, rec["_row"]) and _settled(
                job.client, batch.sent_at, lambda: _shows(get_product(job.client, rec["sku"]), expect)):
            return batch.detail["sending"]["action"], detail
        return _apply_product(job, no, detail, rec)

    _rowwise(job, report, job.batch_rows, lambda chunk: {"skus": [r["sku"] for r in chunk]},
             apply_row)
    return report


def _shows(current: dict | None, expect: dict) -> bool:
    """Whether the core's product carries the fields a write set."""
    return current is not None and all(
        (_money(current.get(k) or 0) == _money(v) if k == "price" else current.get(k) == v)
        for k, v in expect.items())


def _product_body(rec: dict, current: dict | None) -> dict:
    if current is None:
        return {"name": rec["name"], "sku": rec["sku"], "price": float(rec["price"]),
                "stockQuantity": rec.get("initial_stock") or 0,
                "description": rec.get("description"), "imageUrl": None,
                "lowStockThreshold": rec.get("low_stock_threshold") or 10}
    return {
        "name": rec["name"], "sku": rec["sku"], "price": float(rec["price"]),
        "stockQuantity": current.get("stockQuantity", 0),
        "description": rec["description"] if rec.get("description") is not None else current.get("description"),
        "imageUrl": current.get("imageUrl"),
        "lowStockThreshold": rec.get("low_stock_threshold") or current.get("lowStockThreshold") or 10,
    }


def _apply_product(job: CommitJob, no: int, detail: dict, rec: dict) -> tuple[str, dict]:
    client, row, sku = job.client, rec["_row"], rec["sku"]
    path = _product_path(sku)
    for _ in range(WRITE_ATTEMPTS):
        current = _read_product(client, row, sku)
        body = _product_body(rec, current)
        expect = {k: body[k] for k in ("name", "price", "description", "lowStockThreshold")}
        if current is not None and _shows(current, expect):
            return "unchanged", detail
        action = "created" if current is None else "updated"
        send = ((lambda: client.post_json("/products", body, retry=False)) if current is None
                else (lambda: put_json(client, path, body)))
        sending = {"row": row, "sku": sku, "action": action, "expect": expect}
        try:
            answer, detail = _write(job, no, {**detail, "sending": sending}, send,
                                    lambda: _shows(get_product(client, sku), expect))
        except CoreApiError as exc:
            if current is None and exc.status == 400 and get_product(client, sku) is not None:
                continue  # created meanwhile (by an earlier attempt): compare again
            if _refusal(exc):
                raise CommitRefused(f"the core refused row {row} (sku {sku!r}): {exc}", [row]) from None
            raise
        if answer is not LOST:
            return action, detail
    raise _no_answer(f"row {row} (sku {sku!r})")


# -- stock counts ------------------------------------------------------------------------
def commit_stock_counts(job: CommitJob) -> CommitReport:
    client = job.client
    report = CommitReport("stock_counts")
    read: dict[int, dict] = {}  # products read for a new batch's plan, by row

    def begin(chunk):
        plan = []
        for rec in chunk:
            current = _read_product(client, rec["_row"], rec["sku"])
            if current is None:
                raise CommitRefused(f"row {rec['_row']}: sku {rec['sku']!r} is no longer in the core",
                                    [rec["_row"]])
            read[rec["_row"]] = current
            plan.append((rec["_row"], rec["sku"], int(current.get("stockQuantity", 0)),
                         int(rec["counted_quantity"])))
        return {"plan": plan, "changes": [], "flagged": []}

    def apply_row(no, batch, detail, rec):
        row = rec["_row"]
        _, sku, before, counted = next(p for p in detail["plan"] if p[0] == row)
        doubt = _in_flight(batch, row)
        if doubt:
            _settled(client, batch.sent_at, lambda: _stock_of(client, row, sku) == counted)
        current = read.pop(row, None) or _read_product(client, row, sku)
        action, detail = _count_row(job, no, detail, row, sku, before, counted, current, doubt)
        if action == "needs_check":
            f = detail["flagged"][-1]
            report.warnings.append(
                f"row {row}: sku {sku!r} was not set to {counted}: its stock changed to "
                f"{f['now']} since the interrupted attempt read {before}; check it by hand")
        return action, detail

    _rowwise(job, report, job.batch_rows, begin, apply_row)
    report.rows_committed -= report.actions["needs_check"]
    return report


def _stock_of(client: CoreClient, row: int, sku: str) -> int | None:
    current = _read_product(client, row, sku)
    return None if current is None else int(current.get("stockQuantity", 0))


def _count_row(job: CommitJob, no: int, detail: dict, row: int, sku: str, before: int,
               counted: int, current: dict | None, doubt: bool) -> tuple[str, dict]:
    """Set one count: only while the stock is still ``before`` when an earlier write of it is
    in doubt; anything else is flagged for a manual check."""
    client = job.client
    path = _product_path(sku)
    for _ in range(WRITE_ATTEMPTS):
        if current is None:
            raise CommitRefused(f"row {row}: sku {sku!r} is no longer in the core", [row])
        stock = int(current.get("stockQuantity", 0))
        if stock == counted:
            return ("already_set" if doubt else "unchanged"), detail
        if doubt and stock != before:
            flag = {"row": row, "sku": sku, "before": before, "counted": counted, "now": stock}
            return "needs_check", {**detail, "flagged": [*detail.get("flagged", []), flag]}
        body = {k: current.get(k) for k in ("name", "sku", "price", "description", "imageUrl",
                                             "lowStockThreshold")}
        body["stockQuantity"] = counted
        try:
            answer, detail = _write(job, no, {**detail, "sending": {"row": row, "sku": sku}},
                                    lambda: put_json(client, path, body),
                                    lambda: _stock_of(client, row, sku) == counted)
        except CoreApiError as exc:
            if _refusal(exc):
                raise CommitRefused(f"the core refused row {row} (sku {sku!r}): {exc}", [row]) from None
            raise
        if answer is LOST:  # not applied within the window: set it only if nothing moved since
            doubt, before, current = True, stock, _read_product(client, row, sku)
            continue
        got = answer.get("stockQuantity") if isinstance(answer, dict) else counted
        if got != counted:
            raise CoreDataError(
                f"the core answered stock {got} for sku {sku!r} after it was set to "
                f"{counted} (it was {stock}): stock writes do not replace the figure, "
                "the import stops")
        return "set", {**detail, "changes": [*detail.get("changes", []), [sku, stock, counted]]}
    raise _no_answer(f"row {row} (sku {sku!r})")


# -- sales -------------------------------------------------------------------------------
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


def _bulk_payload(chunk: list[dict]) -> list[dict]:
    payload = []
    for s in chunk:
        sale: dict[str, Any] = {"items": [{"sku": sku, "quantity": qty} for sku, qty in s["items"]]}
        if s["customer_id"]:
            sale["customerId"] = s["customer_id"]
        payload.append(sale)
    return payload


def commit_sales(job: CommitJob) -> CommitReport:
    client = job.client
    report = CommitReport("sales")
    for no, chunk, batch in _open_batches(job, report, group_sales(job.validated), job.batch_sales):
        rows = sorted(r for s in chunk for r in s["rows"])
        fingerprints = [tuple(s["items"]) for s in chunk]
        detail = {"rows": rows, "sales": len(chunk), "lines": sum(len(s["items"]) for s in chunk)}
        recovered = False
        if batch is not None and batch.state == "sent":
            after = int(batch.detail.get("before_max_id", 0))
            sent = date.fromisoformat(batch.detail.get("core_day", job.today.isoformat()))
            recovered = _settled(client, batch.sent_at,
                                 lambda: _batch_found(client, fingerprints, after, sent, job.today))
            detail["before_max_id"] = after
        if not recovered:
            recovered, detail = _send_sales(job, report, no, detail, fingerprints, _bulk_payload(chunk))
        J.finish_batch(job.con, job.sha256, no, rows[0], rows[-1],
                       {**detail, **({"recovered": True} if recovered else {})})
        if recovered:
            report.batches_recovered += 1
        else:
            report.batches_committed += 1
        report.rows_committed += len(rows)
        report.actions["sales"] += len(chunk)
    return report


def _send_sales(job: CommitJob, report: CommitReport, no: int, detail: dict,
                fingerprints: list[tuple], payload: list[dict]) -> tuple[bool, dict]:
    """POST one batch; ``(found applied after a lost answer, detail)``."""
    client, rows = job.client, detail["rows"]
    for _ in range(WRITE_ATTEMPTS):
        before = _max_sale_id(client)
        sent = J.begin_batch(job.con, job.sha256, no, rows[0], rows[-1],
                             {**detail, "before_max_id": before, "core_day": job.today.isoformat()})
        try:
            answer, sent = _write(
                job, no, sent, lambda: client.post_json("/sales/bulk", payload, retry=False),
                lambda: _batch_found(client, fingerprints, before, job.today, job.today))
        except CoreApiError as exc:
            if _refusal(exc):
                job.con.execute("DELETE FROM ops.import_batches WHERE file_sha256 = ? AND batch_no = ?",
                                [job.sha256, no])
                raise CommitRefused(
                    f"the core refused sales batch {no} of {report.batches_total} (rows "
                    f"{rows[0]}-{rows[-1]}): {exc}; nothing of it was written", rows) from None
            raise
        if answer is not LOST:
            return answer is FOUND, {**detail, "before_max_id": before}
    raise _no_answer(f"sales batch {no} (rows {rows[0]}-{rows[-1]})")


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
    file_days = set(sales_frame["sale_date"].map(date.fromisoformat))
    con = job.con
    with transaction(con):
        if _already_committed(job, report):  # an earlier attempt wrote the file's days
            report.sale_days = sorted(file_days)
            return report
        with registered(con, _imp_sales=sales_frame, _imp_lines=lines_frame):
            replaced, before_days = con.execute(
                "SELECT count(*), list(DISTINCT sale_date) FROM raw.sales "
                "WHERE sale_id IN (SELECT sale_id FROM _imp_sales)"
            ).fetchone()
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
    # the days written (the file's) and the days its sales held before, if imported on others
    report.sale_days = sorted(set(before_days or ()) | file_days)
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
    return _replace_by_key(
        job, report, frame, "raw.customers", "customer_id",
        """CAST(customer_id AS VARCHAR), CAST(name AS VARCHAR), CAST(email AS VARCHAR),
           CAST(phone AS VARCHAR), CAST(city AS VARCHAR), CAST(customer_since AS DATE)""")


def _replace_by_key(job: CommitJob, report: CommitReport, frame: pd.DataFrame, table: str,
                    key: str, columns: str) -> CommitReport:
    """Writes the frame's rows to a warehouse table of one row per key: a key imported again
    replaces its earlier row. ``columns`` selects the table's columns before ``source_file``
    and ``imported_at`` from the frame."""
    v = job.validated
    con = job.con
    with transaction(con):
        if _already_committed(job, report):
            return report
        with registered(con, _imp_rows=frame):
            replaced = con.execute(
                f"SELECT count(*) FROM {table} WHERE {key} IN (SELECT {key} FROM _imp_rows)"
            ).fetchone()[0]
            con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT {key} FROM _imp_rows)")
            con.execute(f"INSERT INTO {table} SELECT {columns}, ?, ? FROM _imp_rows",
                        [job.filename, job.imported_at])
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


def commit_lead_times(job: CommitJob) -> CommitReport:
    report = CommitReport("lead_times")
    v = job.validated
    d = v.data
    frame = pd.DataFrame({"sku": d["sku"], "lead_time_days": d["lead_time_days"]}).astype("object")
    return _replace_by_key(job, report, frame, "raw.lead_times", "sku",
                           "CAST(sku AS VARCHAR), CAST(lead_time_days AS INTEGER)")
