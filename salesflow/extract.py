"""Extraction from the core into raw.* — validation first, then one all-or-nothing write.

Sales listings can be large (the core has no paging), so they are streamed to a file and
decoded by DuckDB's JSON reader; structural problems are then located precisely with the
typed models in ``core_models`` so an error names the record at fault.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pandas as pd

from salesflow.core_models import InventoryItem, ProductDto, decode_list, explain_sales_file
from salesflow.errors import CoreDataError
from salesflow.warehouse import registered, transaction

SALES_JSON_COLUMNS = (
    "{id: 'BIGINT', saleDate: 'VARCHAR', totalAmount: 'DOUBLE', customerId: 'VARCHAR', "
    "items: 'STRUCT(productId BIGINT, productName VARCHAR, sku VARCHAR, quantity DOUBLE, "
    "unitPrice DOUBLE, subtotal DOUBLE)[]'}"
)
MAX_ERRORS_SHOWN = 10
# The core's ranges: ints and quantities are Java ints, ids Java longs, money NUMERIC(12,2).
INT_MAX = 2**31 - 1
LONG_MAX = 2**63 - 1
MONEY_MAX = Decimal("9999999999.99")
CENT = Decimal("0.01")


def utcnow() -> datetime:
    return datetime.now(tz=timezone.utc).replace(tzinfo=None)


# -- planning ------------------------------------------------------------------
@dataclass(frozen=True)
class SalesFetchPlan:
    mode: str  # "full", "history" or "today" (the day still trading, for intraday refreshes)
    days: int | None

    @property
    def path(self) -> str:
        return {"full": "/sales", "today": "/sales/today"}.get(self.mode, "/sales/history")

    @property
    def params(self) -> dict | None:
        return {"days": self.days} if self.mode == "history" else None


def plan_sales_fetch(
    start: date, core_today: date, *, overlap_days: int = 1, full_after_days: int = 120
) -> SalesFetchPlan:
    """Which listing covers sales from ``start`` to the core's today.

    ``/sales/history?days=N`` returns sales from the start of (today − N days); it is used
    with ``overlap_days`` of margin for clock skew. A window reaching further back than
    ``full_after_days`` reads the full listing once instead.
    """
    days = (core_today - start).days + overlap_days
    if days < 0:
        days = overlap_days
    if days > full_after_days:
        return SalesFetchPlan("full", None)
    return SalesFetchPlan("history", days)


# -- sales ---------------------------------------------------------------------
@dataclass
class StagedSales:
    sales: int
    lines: int
    first_date: date | None
    last_date: date | None


def stage_sales(con: duckdb.DuckDBPyConnection, json_path: Path) -> StagedSales:
    """Decode a sales listing into temp tables ``_staged_sales``/``_staged_items`` and validate it.

    Raises CoreDataError naming the records at fault; nothing is written to raw.* here.
    """
    json_path = Path(json_path)
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE _src AS
                SELECT * FROM read_json(?, format='array', columns={SALES_JSON_COLUMNS},
                                        maximum_object_size=67108864)""",
            [str(json_path)],
        )
    except duckdb.Error as exc:
        detail = explain_sales_file(json_path)
        if detail == "no structural problem found":
            detail = str(exc).splitlines()[0]
        raise CoreDataError(f"sales listing from the core is not valid: {detail}") from None

    problems = con.execute(
        """
        SELECT id FROM _src
        WHERE id IS NULL OR saleDate IS NULL OR totalAmount IS NULL OR items IS NULL
           OR list_count(list_filter(items, lambda x: x IS NULL OR x.sku IS NULL OR x.quantity IS NULL
                OR x.unitPrice IS NULL OR x.subtotal IS NULL OR x.productId IS NULL
                OR x.productName IS NULL)) > 0
        LIMIT 1"""
    ).fetchall()
    if problems:
        raise CoreDataError(
            f"sales listing from the core is not valid: {explain_sales_file(json_path)}"
        )

    con.execute(
        """CREATE OR REPLACE TEMP TABLE _staged_sales AS
           SELECT id AS sale_id, try_cast(saleDate AS TIMESTAMP) AS sale_ts,
                  CAST(try_cast(saleDate AS TIMESTAMP) AS DATE) AS sale_date,
                  totalAmount AS total_raw,
                  try_cast(round(totalAmount, 2) AS DECIMAL(18,2)) AS total_amount,
                  NULLIF(trim(customerId), '') AS customer_id, saleDate AS sale_date_text,
                  len(items) AS n_items
           FROM _src"""
    )
    # Projection unnest (with generate_subscripts for the line number) is far faster in
    # DuckDB than a lateral join with ORDINALITY.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _staged_items AS
           SELECT sale_id, CAST(line_no AS INTEGER) AS line_no,
                  item.productId AS product_id, item.sku AS sku,
                  item.productName AS product_name, item.quantity AS quantity_raw,
                  try_cast(item.quantity AS BIGINT) AS quantity,
                  item.unitPrice AS unit_price_raw, item.subtotal AS subtotal_raw,
                  try_cast(round(item.unitPrice, 2) AS DECIMAL(18,2)) AS unit_price,
                  try_cast(round(item.subtotal, 2) AS DECIMAL(18,2)) AS subtotal
           FROM (SELECT id AS sale_id, unnest(items) AS item,
                        generate_subscripts(items, 1) AS line_no FROM _src)"""
    )
    con.execute("DROP TABLE _src")

    errors = validate_staged_sales(con)
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise CoreDataError(
            f"sales listing from the core breaks its contract, nothing was written: {shown}{more}"
        )
    n_sales, first, last = con.execute(
        "SELECT count(*), min(sale_date), max(sale_date) FROM _staged_sales"
    ).fetchone()
    n_lines = con.execute("SELECT count(*) FROM _staged_items").fetchone()[0]
    return StagedSales(n_sales, n_lines, first, last)


_QUANTITY_OK = f"quantity_raw BETWEEN 1 AND {INT_MAX} AND quantity_raw = floor(quantity_raw)"


def _money_ok(column: str) -> str:
    return f"(abs({column}) <= {MONEY_MAX})"


def _number(value: float, places: int | None = None) -> str:
    """A JSON number as read (a double): whole numbers without '.0', huge ones as 1e+20."""
    if abs(value) >= 1e16 or value != value or abs(value) == float("inf"):
        return repr(value)
    if places is not None:
        return f"{value:.{places}f}"
    return str(int(value)) if value.is_integer() else repr(value)


def validate_staged_sales(con: duckdb.DuckDBPyConnection, limit: int = 50) -> list[str]:
    """Contract rules a sale must meet; each message names the sale id (and line number)."""
    checks = [
        (
            "SELECT sale_id, count(*) FROM _staged_sales GROUP BY 1 HAVING count(*) > 1",
            lambda r: f"sale {r[0]} appears {r[1]} times",
        ),
        (
            "SELECT sale_id, sale_date_text FROM _staged_sales WHERE sale_ts IS NULL",
            lambda r: f"sale {r[0]} has an unreadable saleDate {r[1]!r}",
        ),
        (
            "SELECT sale_id FROM _staged_sales WHERE n_items = 0",
            lambda r: f"sale {r[0]} has no items",
        ),
        (
            "SELECT sale_id FROM _staged_sales WHERE sale_id < 1",
            lambda r: f"sale {r[0]} has id {r[0]}: the core's ids are positive",
        ),
        (
            f"""SELECT sale_id, line_no, quantity_raw FROM _staged_items
               WHERE NOT ({_QUANTITY_OK})""",
            lambda r: f"sale {r[0]} line {r[1]} has quantity {_number(r[2])} "
            f"(a whole number from 1 to {INT_MAX})",
        ),
        (
            "SELECT sale_id, line_no, product_id FROM _staged_items WHERE product_id < 1",
            lambda r: f"sale {r[0]} line {r[1]} has productId {r[2]}: the core's ids are positive",
        ),
        (
            f"""SELECT sale_id, NULL, 'totalAmount', total_raw FROM _staged_sales
               WHERE NOT {_money_ok('total_raw')}
               UNION ALL SELECT sale_id, line_no, 'unitPrice', unit_price_raw FROM _staged_items
               WHERE NOT {_money_ok('unit_price_raw')}
               UNION ALL SELECT sale_id, line_no, 'subtotal', subtotal_raw FROM _staged_items
               WHERE NOT {_money_ok('subtotal_raw')}""",
            lambda r: f"sale {r[0]}{f' line {r[1]}' if r[1] else ''} has {r[2]} {_number(r[3], 2)} "
            f"beyond NUMERIC(12,2) (at most {MONEY_MAX})",
        ),
        (
            f"""SELECT sale_id, line_no, subtotal, quantity, unit_price, quantity * unit_price
               FROM _staged_items
               WHERE {_QUANTITY_OK} AND {_money_ok('unit_price_raw')} AND {_money_ok('subtotal_raw')}
                 AND subtotal <> quantity * unit_price""",
            lambda r: f"sale {r[0]} line {r[1]} has subtotal {r[2]} but {r[3]} x {r[4]} = {r[5]}",
        ),
        (
            """SELECT sale_id, total_raw FROM _staged_sales WHERE total_raw < 0
               UNION ALL SELECT sale_id, least(unit_price_raw, subtotal_raw) FROM _staged_items
               WHERE unit_price_raw < 0 OR subtotal_raw < 0""",
            lambda r: f"sale {r[0]} has negative money {r[1]}",
        ),
        (
            """SELECT sale_id, total_raw FROM _staged_sales
               WHERE abs(total_raw * 100 - round(total_raw * 100)) > greatest(1e-6, abs(total_raw) * 1e-12)
               UNION ALL SELECT sale_id, unit_price_raw FROM _staged_items
               WHERE abs(unit_price_raw * 100 - round(unit_price_raw * 100))
                     > greatest(1e-6, abs(unit_price_raw) * 1e-12)
               UNION ALL SELECT sale_id, subtotal_raw FROM _staged_items
               WHERE abs(subtotal_raw * 100 - round(subtotal_raw * 100))
                     > greatest(1e-6, abs(subtotal_raw) * 1e-12)""",
            lambda r: f"sale {r[0]} has an amount with more than 2 decimals ({r[1]})",
        ),
        (
            """SELECT s.sale_id, s.total_amount, i.items_total
               FROM _staged_sales s
               JOIN (SELECT sale_id, sum(subtotal) AS items_total FROM _staged_items GROUP BY 1) i
                 USING (sale_id)
               WHERE s.total_amount <> i.items_total""",
            lambda r: f"sale {r[0]} has totalAmount {r[1]} but its items add up to {r[2]}",
        ),
    ]
    errors: list[str] = []
    for sql, fmt in checks:
        for row in con.execute(f"SELECT * FROM ({sql}) ORDER BY 1 LIMIT {int(limit)}").fetchall():
            errors.append(fmt(row))
    return errors


@dataclass
class SalesWrite:
    sales: int
    lines: int
    deleted_sales: int
    outside_range: int
    # sales whose day changed in the core, or that left its listing (see ``find_moved_sales``)
    moves: list[dict] = field(default_factory=list)
    move_counts: dict[str, int] = field(default_factory=dict)
    held_ids: list[int] = field(default_factory=list)
    # days outside the range whose rows changed (the old or new day of a moved or gone sale)
    days_outside: list[date] = field(default_factory=list)


MOVES_SHOWN = 50


def find_moved_sales(con: duckdb.DuckDBPyConnection, start: date, end: date) -> None:
    """Temp table ``_moves``: core sales in raw.* whose day in the listing differs, or that the
    listing no longer has though their day is in [start, end]. Outcome of each:

    - ``moved``: its new day is on or before ``end``: it lives under its new day (merged by id);
    - ``held``: its new day is after ``end``: kept under its old day until that day is extracted;
    - ``gone``: not in the listing (deleted in the core, or moved before the listing's window).
    """
    con.execute(
        """CREATE OR REPLACE TEMP TABLE _moves AS
           SELECT w.sale_id, w.sale_date AS old_day, s.sale_date AS new_day,
                  CASE WHEN s.sale_id IS NULL THEN 'gone' WHEN s.sale_date > $2 THEN 'held'
                       ELSE 'moved' END AS outcome
           FROM raw.sales w LEFT JOIN _staged_sales s USING (sale_id)
           WHERE w.sale_id > 0
             AND (s.sale_date <> w.sale_date
                  OR (s.sale_id IS NULL AND w.sale_date BETWEEN $1 AND $2))""",
        [start, end],
    )


def write_sales_range(
    con: duckdb.DuckDBPyConnection, start: date, end: date, *, extracted_at: datetime | None = None
) -> SalesWrite:
    """Replace the sales of [start, end] with the staged ones, merged by sale id, in one transaction.

    A sale the warehouse has whose day changed in the core follows ``find_moved_sales``: never
    dropped because its new day lies outside the range."""
    extracted_at = extracted_at or utcnow()
    rng = [start, end]
    with transaction(con):
        find_moved_sales(con, start, end)
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _write_ids AS
               SELECT sale_id FROM _staged_sales WHERE sale_date BETWEEN ? AND ?
               UNION SELECT sale_id FROM _moves WHERE outcome = 'moved'""",
            rng,
        )
        con.execute(
            """CREATE OR REPLACE TEMP TABLE _range_ids AS
               (SELECT sale_id FROM raw.sales WHERE sale_date BETWEEN ? AND ? AND sale_id > 0
                EXCEPT SELECT sale_id FROM _moves WHERE outcome = 'held')
               UNION SELECT sale_id FROM _write_ids""",
            rng,
        )
        deleted = con.execute(
            "SELECT count(*) FROM raw.sales WHERE sale_id IN (SELECT sale_id FROM _range_ids)"
        ).fetchone()[0]
        con.execute("DELETE FROM raw.sale_items WHERE sale_id IN (SELECT sale_id FROM _range_ids)")
        con.execute("DELETE FROM raw.sales WHERE sale_id IN (SELECT sale_id FROM _range_ids)")
        # INSERT answers with the number of rows it wrote. The listing comes in sale-id
        # (= time) order, so no sort is needed for the table to stay clustered by date.
        n_sales = con.execute(
            """INSERT INTO raw.sales
               SELECT sale_id, sale_ts, sale_date, total_amount, customer_id, ?
               FROM _staged_sales WHERE sale_id IN (SELECT sale_id FROM _write_ids)""",
            [extracted_at],
        ).fetchone()[0]
        n_lines = con.execute(
            """INSERT INTO raw.sale_items
               SELECT i.sale_id, i.line_no, i.product_id, i.sku, i.product_name,
                      CAST(i.quantity AS INTEGER), i.unit_price, i.subtotal
               FROM _staged_items i WHERE i.sale_id IN (SELECT sale_id FROM _write_ids)"""
        ).fetchone()[0]
        con.execute("DROP TABLE _range_ids")
        con.execute("DROP TABLE _write_ids")
    outside = con.execute(
        "SELECT count(*) FROM _staged_sales WHERE sale_date NOT BETWEEN ? AND ?", rng
    ).fetchone()[0]
    return SalesWrite(n_sales, n_lines, deleted, outside, *_read_moves(con, start, end))


def _read_moves(con: duckdb.DuckDBPyConnection, start: date, end: date) -> tuple:
    days = [r[0] for r in con.execute(
        """SELECT DISTINCT day FROM (SELECT old_day AS day FROM _moves WHERE outcome <> 'held'
           UNION SELECT new_day FROM _moves WHERE outcome = 'moved')
           WHERE day NOT BETWEEN ? AND ? ORDER BY 1""", [start, end]).fetchall()]
    counts = dict(con.execute("SELECT outcome, count(*) FROM _moves GROUP BY 1").fetchall())
    rows = con.execute(
        f"SELECT sale_id, old_day, new_day, outcome FROM _moves ORDER BY sale_id LIMIT {MOVES_SHOWN}"
    ).fetchall()
    held = [r[0] for r in con.execute(
        "SELECT sale_id FROM _moves WHERE outcome = 'held' ORDER BY 1").fetchall()]
    con.execute("DROP TABLE _moves")
    moves = [{"sale_id": a, "old_day": b, "new_day": c, "outcome": d} for a, b, c, d in rows]
    return moves, counts, held, days


def reconcile_sales(
    con: duckdb.DuckDBPyConnection, start: date, end: date, held_ids: list[int] | None = None
) -> list[dict]:
    """Per-day differences between the source listing (staged) and raw.* for [start, end].
    Sales imported from another till's history (negative ids) are not the core's: left out, and
    so are ``held_ids``, sales kept under their old day until their new day is extracted (they
    are reported by the ``sales_keep_their_day`` check)."""
    def per_day(sales: str, items: str) -> str:
        return f"""
            SELECT s.sale_date, count(DISTINCT s.sale_id) AS orders,
                   sum(s.total_amount) AS revenue, sum(i.units) AS units
            FROM {sales} s
            LEFT JOIN (SELECT sale_id, sum(quantity) AS units FROM {items} GROUP BY 1) i
              USING (sale_id)
            WHERE s.sale_date BETWEEN $1 AND $2 GROUP BY 1"""

    rows = con.execute(
        f"""
        WITH src AS ({per_day("_staged_sales", "_staged_items")}),
             wh AS ({per_day("(SELECT * FROM raw.sales WHERE sale_id > 0 "
                             "AND NOT list_contains($3, sale_id))", "raw.sale_items")})
        SELECT coalesce(src.sale_date, wh.sale_date) AS day, src.orders, wh.orders,
               src.revenue, wh.revenue, src.units, wh.units
        FROM src FULL OUTER JOIN wh ON src.sale_date = wh.sale_date
        WHERE src.orders IS DISTINCT FROM wh.orders OR src.revenue IS DISTINCT FROM wh.revenue
           OR src.units IS DISTINCT FROM wh.units
        ORDER BY 1""",
        [start, end, list(held_ids or [])],
    ).fetchall()
    return [
        {
            "day": str(r[0]),
            "source_orders": r[1],
            "warehouse_orders": r[2],
            "source_revenue": str(r[3]),
            "warehouse_revenue": str(r[4]),
            "source_units": r[5],
            "warehouse_units": r[6],
        }
        for r in rows
    ]


@dataclass
class SalesExtraction:
    plan: SalesFetchPlan
    core_today: date
    download_bytes: int
    download_seconds: float
    staged: StagedSales
    written: SalesWrite
    differences: list[dict]
    checks: dict[str, dict]


def extract_sales(
    client,
    con: duckdb.DuckDBPyConnection,
    start: date,
    end: date,
    *,
    workdir: Path,
    overlap_days: int = 1,
    full_after_days: int = 120,
    log=None,
) -> SalesExtraction:
    """Fetch the listing covering [start, end], validate it, write it, reconcile and check it."""
    core_today = client.server_today()
    plan = plan_sales_fetch(start, core_today, overlap_days=overlap_days, full_after_days=full_after_days)
    if log is not None:
        log.info(f"sales {start}..{end}: core today is {core_today}; reading {plan.path} {plan.params or ''}")
    download = client.download(plan.path, Path(workdir) / "sales.json", params=plan.params)
    try:
        staged = stage_sales(con, download.path)
    finally:
        download.path.unlink(missing_ok=True)
    written = write_sales_range(con, start, end)
    differences = reconcile_sales(con, start, end, written.held_ids)
    checks = {**sales_check_results(con, start, end), "sales_keep_their_day": moved_sales_check(written, end)}
    return SalesExtraction(plan, core_today, download.bytes, download.seconds, staged, written,
                           differences, checks)


# -- sales checks (on the warehouse) ---------------------------------------------
def describe_move(move: dict, end: date) -> str:
    sale, old, new = move["sale_id"], move["old_day"], move["new_day"]
    if move["outcome"] == "gone":
        return f"sale {sale} of {old} is no longer in the core's listing: removed"
    if move["outcome"] == "held":
        return f"sale {sale} moved from {old} to {new}, after {end}: kept under {old} until {new} is extracted"
    return f"sale {sale} moved from {old} to {new}"


def moved_sales_check(written: SalesWrite, end: date) -> dict:
    """Warning: sales whose day changed in the core (or that left its listing), named with their
    old and new day, and the days outside the run's range whose marts they leave out of date."""
    return {
        "passed": not written.move_counts,
        "examples": [describe_move(m, end) for m in written.moves],
        "counts": written.move_counts,
        "days_to_rebuild": [str(d) for d in written.days_outside],
    }


def sales_check_results(con: duckdb.DuckDBPyConnection, start: date, end: date) -> dict[str, dict]:
    """Warehouse-side checks of raw.sales/raw.sale_items; each returns passed + details."""
    rng = [start, end]
    dup = con.execute(
        "SELECT sale_id, count(*) FROM raw.sales GROUP BY 1 HAVING count(*) > 1 ORDER BY 1 LIMIT 10"
    ).fetchall()
    mismatch = con.execute(
        """SELECT s.sale_id, s.total_amount, coalesce(sum(i.subtotal), 0) AS items_total
           FROM raw.sales s LEFT JOIN raw.sale_items i USING (sale_id)
           WHERE s.sale_date BETWEEN ? AND ?
           GROUP BY 1, 2 HAVING s.total_amount <> coalesce(sum(i.subtotal), 0)
           ORDER BY 1 LIMIT 10""",
        rng,
    ).fetchall()
    arithmetic = con.execute(
        """SELECT i.sale_id, i.line_no, i.subtotal, i.quantity, i.unit_price, i.quantity * i.unit_price
           FROM raw.sale_items i JOIN raw.sales s USING (sale_id)
           WHERE s.sale_date BETWEEN ? AND ? AND i.subtotal <> i.quantity * i.unit_price
           ORDER BY 1, 2 LIMIT 10""",
        rng,
    ).fetchall()
    negative = con.execute(
        """SELECT sale_id FROM raw.sales WHERE total_amount < 0
           UNION SELECT sale_id FROM raw.sale_items WHERE unit_price < 0 OR subtotal < 0
           ORDER BY 1 LIMIT 10"""
    ).fetchall()
    unknown = con.execute(
        """SELECT DISTINCT i.sku FROM raw.sale_items i JOIN raw.sales s USING (sale_id)
           WHERE s.sale_date BETWEEN ? AND ?
             AND i.sku NOT IN (SELECT sku FROM raw.products)
           ORDER BY 1 LIMIT 20""",
        rng,
    ).fetchall()
    return {
        "unique_sale_ids": {"passed": not dup, "examples": [f"{a} x{b}" for a, b in dup]},
        "items_add_up_to_total": {
            "passed": not mismatch,
            "examples": [f"sale {a}: total {b} vs items {c}" for a, b, c in mismatch],
        },
        "line_subtotals_match": {
            "passed": not arithmetic,
            "examples": [f"sale {a} line {b}: subtotal {c} but {d} x {e} = {f}"
                         for a, b, c, d, e, f in arithmetic],
        },
        "no_negative_money": {"passed": not negative, "examples": [str(r[0]) for r in negative]},
        "sold_skus_known": {"passed": not unknown, "examples": [r[0] for r in unknown]},
    }


# -- products and inventory -----------------------------------------------------
def products_frame(data: bytes, extracted_at: datetime | None = None) -> pd.DataFrame:
    items: list[ProductDto] = decode_list(data, ProductDto, "products listing", "sku")
    errors = []
    seen: set[str] = set()
    for i, p in enumerate(items):
        label = f"product #{i} (sku={p.sku!r})"
        if p.price < 0:
            errors.append(f"{label} has negative price {p.price}")
        errors += _id_errors(label, p.id) + _money_errors(label, price=p.price)
        if p.stockQuantity < 0:
            errors.append(f"{label} has negative stockQuantity {p.stockQuantity}")
        if p.lowStockThreshold < 1:
            errors.append(f"{label} has lowStockThreshold {p.lowStockThreshold} < 1")
        errors += _int_errors(label, stockQuantity=p.stockQuantity, lowStockThreshold=p.lowStockThreshold)
        if p.sku in seen:
            errors.append(f"{label} repeats a sku")
        seen.add(p.sku)
    _raise_if(errors, "products listing")
    ts = extracted_at or utcnow()
    return pd.DataFrame(
        {
            "id": pd.Series([p.id for p in items], dtype="int64"),
            "sku": pd.Series([p.sku for p in items], dtype="object"),
            "name": pd.Series([p.name for p in items], dtype="object"),
            "price": pd.Series([str(p.price) for p in items], dtype="object"),
            "stock_quantity": pd.Series([p.stockQuantity for p in items], dtype="int64"),
            "low_stock_threshold": pd.Series([p.lowStockThreshold for p in items], dtype="int64"),
            "description": pd.Series([p.description for p in items], dtype="object"),
            "extracted_at": pd.Series([ts] * len(items), dtype="datetime64[us]"),
        }
    )


def inventory_frame(data: bytes, extracted_at: datetime | None = None) -> pd.DataFrame:
    items: list[InventoryItem] = decode_list(data, InventoryItem, "inventory listing", "sku")
    errors = []
    seen: set[str] = set()
    for i, it in enumerate(items):
        label = f"inventory item #{i} (sku={it.sku!r})"
        if it.price < 0 or it.cost < 0:
            errors.append(f"{label} has negative money (price {it.price}, cost {it.cost})")
        if it.quantity < 0:
            errors.append(f"{label} has negative quantity {it.quantity}")
        errors += _id_errors(label, it.id) + _money_errors(label, price=it.price, cost=it.cost)
        errors += _int_errors(label, quantity=it.quantity)
        if it.sku in seen:
            errors.append(f"{label} repeats a sku")
        seen.add(it.sku)
    _raise_if(errors, "inventory listing")
    ts = extracted_at or utcnow()

    def naive_utc(d: datetime | None):
        if d is None:
            return None
        return d.astimezone(timezone.utc).replace(tzinfo=None) if d.tzinfo else d

    return pd.DataFrame(
        {
            "sku": pd.Series([it.sku for it in items], dtype="object"),
            "name": pd.Series([it.name for it in items], dtype="object"),
            "category": pd.Series([it.category for it in items], dtype="object"),
            "cost": pd.Series([str(it.cost) for it in items], dtype="object"),
            "price": pd.Series([str(it.price) for it in items], dtype="object"),
            "quantity": pd.Series([it.quantity for it in items], dtype="int64"),
            "updated_at": pd.Series([naive_utc(it.updatedAt) for it in items], dtype="datetime64[us]"),
            "extracted_at": pd.Series([ts] * len(items), dtype="datetime64[us]"),
        }
    )


def _id_errors(label: str, value: int) -> list[str]:
    return [] if 1 <= value <= LONG_MAX else [f"{label} has id {value} out of range (1 to {LONG_MAX})"]


def _int_errors(label: str, **values: int) -> list[str]:
    """Figures the core holds as Java ints; the negative ones are reported by their own rule."""
    return [f"{label} has {field} {value} beyond the core's int range (at most {INT_MAX})"
            for field, value in values.items() if value > INT_MAX]


def _money_errors(label: str, **values: Decimal) -> list[str]:
    """Amounts beyond NUMERIC(12,2) or with more than 2 decimals (negatives have their own rule)."""
    errors = []
    for field, value in values.items():
        if value > MONEY_MAX:
            errors.append(f"{label} has {field} {value} beyond NUMERIC(12,2) (at most {MONEY_MAX})")
        elif value != value.quantize(CENT):
            errors.append(f"{label} has {field} {value} with more than 2 decimals")
    return errors


def _raise_if(errors: list[str], what: str) -> None:
    if errors:
        shown = "; ".join(errors[:MAX_ERRORS_SHOWN])
        more = f" (and {len(errors) - MAX_ERRORS_SHOWN} more)" if len(errors) > MAX_ERRORS_SHOWN else ""
        raise CoreDataError(f"{what} breaks the core's contract, nothing was written: {shown}{more}")


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Full-snapshot replace of a raw table in one transaction (money cast exactly from text)."""
    if table not in ("raw.products", "raw.inventory"):
        raise ValueError(f"not a snapshot table: {table}")
    cols = list(frame.columns)
    select = ", ".join(
        f"CAST({c} AS DECIMAL(18,2))" if c in ("price", "cost") else c for c in cols
    )
    with registered(con, _frame=frame), transaction(con):
        con.execute(f"DELETE FROM {table}")
        con.execute(f"INSERT INTO {table} ({', '.join(cols)}) SELECT {select} FROM _frame")
    return len(frame)


def write_stock_snapshot(con: duckdb.DuckDBPyConnection, snapshot_date: date) -> int:
    """Record today's stock figures from raw.products as the snapshot of ``snapshot_date``."""
    with transaction(con):
        con.execute("DELETE FROM raw.stock_snapshots WHERE snapshot_date = ?", [snapshot_date])
        con.execute(
            """INSERT INTO raw.stock_snapshots
               SELECT ?, sku, stock_quantity, low_stock_threshold FROM raw.products ORDER BY sku""",
            [snapshot_date],
        )
    return con.execute(
        "SELECT count(*) FROM raw.stock_snapshots WHERE snapshot_date = ?", [snapshot_date]
    ).fetchone()[0]
