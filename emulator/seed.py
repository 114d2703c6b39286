"""Seeding the emulator's state from the canonical CSVs (or the same data as DataFrames).

``products.csv``: ``sku,name,price,cost,category,stock_quantity,low_stock_threshold``
- one product and its inventory item per row, ids in file order;
- ``stock_quantity`` is today's stock: seeded history does not deduct it;
- an empty ``cost`` is unknown: recorded as the core records it for a product created
  without inventory data, cost ``0`` and category ``Uncategorized``; an empty ``category`` is
  ``Uncategorized``; an empty ``low_stock_threshold`` is 10.

``sales.csv``: ``sale_id,sale_ts,sku,quantity,unit_price,customer_id``
- one row per line item; rows sharing ``sale_id`` form one sale, stamped with the earliest
  ``sale_ts`` of its lines (a till stamps the lines of one receipt a minute apart); the emulator
  assigns integer ids in time order (ties by first appearance in the file); an empty
  ``customer_id`` is none;
- a line repeating an earlier line exactly (every column) is kept once;
- sales keep their own timestamps and unit prices: ``subtotal = quantity * unit_price``
  rounded half-up to cents, ``totalAmount`` = sum of subtotals; items carry the product's id,
  its name at seeding and its sku;
- timestamps are the shop's local time; zoned timestamps are converted to the shop timezone.

Every problem is a :class:`SeedError` naming the file and line (or frame row). The summary
counts the duplicate lines dropped and the sales whose lines carried different times, with a
note naming the first of each.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emulator.clock import Clock, java_instant
from emulator.dto import INT_MAX, cents, java_length
from emulator.state import State, discard_state

PRODUCT_COLUMNS = ("sku", "name", "price", "cost", "category", "stock_quantity", "low_stock_threshold")
SALES_COLUMNS = ("sale_id", "sale_ts", "sku", "quantity", "unit_price", "customer_id")
UNCATEGORIZED = "Uncategorized"


class SeedError(ValueError):
    """The seed data or the target state cannot be used; the message says where and why."""


@dataclass(frozen=True)
class SeedSummary:
    products: int
    sales: int
    sale_lines: int
    first_sale: str | None
    last_sale: str | None
    seconds: float
    duplicate_lines: int = 0  #: exact repeats of an earlier line, kept once
    retimed_sales: int = 0  #: sales whose lines carried different times (the earliest is kept)
    notes: tuple[str, ...] = ()


class _Where:
    """Names a row: ``products.csv line 7`` for files, ``products row 5`` for frames."""

    def __init__(self, label: str, csv: bool):
        self.label = label
        self.csv = csv

    def __call__(self, pos: int) -> str:
        return f"{self.label} line {pos + 2}" if self.csv else f"{self.label} row {pos}"

    def subset(self, positions: np.ndarray) -> "_Where":
        """Names rows of a frame holding only ``positions`` of the original, by their original place."""
        return _Subset(self, positions)


class _Subset(_Where):
    def __init__(self, outer: _Where, positions: np.ndarray):
        super().__init__(outer.label, outer.csv)
        self.outer, self.positions = outer, positions

    def __call__(self, pos: int) -> str:
        return self.outer(int(self.positions[pos]))


# -- cell helpers ------------------------------------------------------------------------------


def _blank(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return v.strip() == ""
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _text(v: Any) -> str:
    if isinstance(v, str):
        return v
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    if isinstance(v, np.generic):
        v = v.item()
    return str(v)


def _decimal(v: Any) -> Decimal:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, Decimal):
        d = v
    elif isinstance(v, bool):
        raise InvalidOperation
    elif isinstance(v, int):
        d = Decimal(v)
    elif isinstance(v, float):
        d = Decimal(repr(v))
    else:
        d = Decimal(str(v).strip())
    if not d.is_finite():
        raise InvalidOperation
    return d


def _integer(v: Any) -> int:
    d = _decimal(v)
    if d != d.to_integral_value():
        raise InvalidOperation
    return int(d)


def _require_columns(df: pd.DataFrame, columns: tuple[str, ...], label: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise SeedError(
            f"{label}: missing column(s) {', '.join(missing)}; expected {','.join(columns)}"
        )


# -- reading -----------------------------------------------------------------------------------


def read_canonical_csv(path: str | os.PathLike, columns: tuple[str, ...]) -> pd.DataFrame:
    """A canonical CSV with every cell as text (empty cells stay ``""``)."""
    path = Path(path)
    if not path.is_file():
        raise SeedError(f"{path}: no such file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_filter=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise SeedError(f"{path.name}: cannot read CSV ({exc})") from None
    df.columns = [str(c).strip() for c in df.columns]
    _require_columns(df, columns, path.name)
    return df


# -- products ----------------------------------------------------------------------------------


@dataclass
class _Products:
    rows: list[tuple]  # (name, sku, price_cents, stock, threshold, cost_cents, category)
    sku_index: pd.Index
    names: np.ndarray
    skus: np.ndarray


def _normalise_products(df: pd.DataFrame, where: _Where) -> _Products:
    _require_columns(df, PRODUCT_COLUMNS, where.label)
    cols = {c: df[c].tolist() for c in PRODUCT_COLUMNS}
    rows = []
    seen_sku: dict[str, int] = {}
    seen_name: dict[str, int] = {}
    for pos in range(len(df)):
        at = where(pos)
        sku_v, name_v = cols["sku"][pos], cols["name"][pos]
        if _blank(sku_v):
            raise SeedError(f"{at}: empty sku")
        if _blank(name_v):
            raise SeedError(f"{at}: empty name")
        sku, name = _text(sku_v).strip(), _text(name_v).strip()
        if java_length(sku) > 50:
            raise SeedError(f"{at}: sku {sku!r} is longer than 50 characters")
        if java_length(name) > 100:
            raise SeedError(f"{at}: name {name!r} is longer than 100 characters")
        if sku in seen_sku:
            raise SeedError(f"{at}: sku {sku!r} already used on {where(seen_sku[sku])}")
        if name in seen_name:
            raise SeedError(f"{at}: name {name!r} already used on {where(seen_name[name])}")
        seen_sku[sku], seen_name[name] = pos, pos
        try:
            price = _decimal(cols["price"][pos])
        except (InvalidOperation, ValueError):
            raise SeedError(f"{at} (sku {sku}): price {cols['price'][pos]!r} is not a number") from None
        if price < 0:
            raise SeedError(f"{at} (sku {sku}): negative price {price}")
        cost_v = cols["cost"][pos]
        category_v = cols["category"][pos]
        if _blank(cost_v):
            cost_cents, category = 0, UNCATEGORIZED
        else:
            try:
                cost = _decimal(cost_v)
            except (InvalidOperation, ValueError):
                raise SeedError(f"{at} (sku {sku}): cost {cost_v!r} is not a number") from None
            if cost < 0:
                raise SeedError(f"{at} (sku {sku}): negative cost {cost}")
            cost_cents = cents(cost)
            category = UNCATEGORIZED if _blank(category_v) else _text(category_v).strip()
        try:
            stock = _integer(cols["stock_quantity"][pos])
        except (InvalidOperation, ValueError):
            raise SeedError(
                f"{at} (sku {sku}): stock_quantity {cols['stock_quantity'][pos]!r} is not an integer"
            ) from None
        if not 0 <= stock <= INT_MAX:
            raise SeedError(f"{at} (sku {sku}): stock_quantity {stock} out of range")
        thr_v = cols["low_stock_threshold"][pos]
        try:
            threshold = 10 if _blank(thr_v) else _integer(thr_v)
        except (InvalidOperation, ValueError):
            raise SeedError(f"{at} (sku {sku}): low_stock_threshold {thr_v!r} is not an integer") from None
        if not 1 <= threshold <= INT_MAX:
            raise SeedError(f"{at} (sku {sku}): low_stock_threshold {threshold} must be at least 1")
        rows.append((name, sku, cents(price), stock, threshold, cost_cents, category))
    skus = np.array([r[1] for r in rows], dtype=object)
    names = np.array([r[0] for r in rows], dtype=object)
    return _Products(rows, pd.Index(skus), names, skus)


# -- sales -------------------------------------------------------------------------------------


@dataclass
class _Sales:
    sales: list[tuple]  # (id, sale_date, total_cents, customer_id), id order
    items: list[tuple]  # (sale_id, line_no, product_id, name, sku, qty, unit_cents, subtotal_cents)
    duplicate_lines: int = 0
    retimed_sales: int = 0
    notes: tuple[str, ...] = ()


def _first_bad(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0])


def _java_local_strings(local: np.ndarray) -> list[str]:
    text = np.datetime_as_string(local.astype("datetime64[us]"), unit="us").tolist()
    return [s[:19] if s.endswith(".000000") else s.rstrip("0") for s in text]


def _drop_exact_duplicates(df: pd.DataFrame, where: _Where) -> tuple[pd.DataFrame, _Where, int, list[str]]:
    """``df`` without lines that repeat an earlier line in every column, and a note naming them."""
    group = df.groupby(list(SALES_COLUMNS), sort=False, dropna=False).ngroup().to_numpy()
    _, first = np.unique(group, return_index=True)
    dup = np.arange(len(df)) != first[group]
    if not dup.any():
        return df, where, 0, []
    pos = _first_bad(dup)
    note = (f"{int(dup.sum())} exact duplicate line(s) kept once "
            f"(first: {where(pos)} repeats {' '.join(where(int(first[group[pos]])).split()[-2:])})")
    keep = np.flatnonzero(~dup)
    return df.iloc[keep].reset_index(drop=True), where.subset(keep), int(dup.sum()), [note]


def _parse_timestamps(ts_raw: pd.Series, tz) -> pd.Series:
    """Every line's time in the shop's local time (NaT where unreadable); distinct texts parsed once."""
    if pd.api.types.is_datetime64_any_dtype(ts_raw.dtype):
        parsed = ts_raw.reset_index(drop=True)
    else:
        codes, uniques = pd.factorize(ts_raw, sort=False)
        try:
            parsed_u = pd.to_datetime(pd.Series(uniques, dtype=object), errors="coerce", format="ISO8601")
        except (ValueError, TypeError) as exc:
            raise SeedError(f"cannot read sale_ts ({exc})") from None
        parsed = parsed_u.iloc[codes].reset_index(drop=True)
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert(tz).dt.tz_localize(None)
    return parsed


def _earliest_per_sale(df, codes, n_sales, where: _Where, tz) -> tuple[np.ndarray, int, list[str]]:
    """Each sale's earliest line time, how many sales had lines at different times, a note."""
    ts_raw = df["sale_ts"]
    sale_raw = df["sale_id"]
    try:
        parsed = _parse_timestamps(ts_raw, tz)
    except SeedError as exc:
        raise SeedError(f"{where.label}: {exc}") from None
    bad_ts = parsed.isna().to_numpy().copy()
    years = parsed.dt.year.to_numpy(dtype="float64", na_value=np.nan)
    bad_ts |= ~((years >= 1000) & (years <= 9999))
    if bad_ts.any():
        pos = _first_bad(bad_ts)
        raise SeedError(
            f"{where(pos)} (sale_id {sale_raw.iloc[pos]}): sale_ts {ts_raw.iloc[pos]!r} is not a timestamp"
        )
    stamps = parsed.to_numpy(dtype="datetime64[us]").astype(np.int64)
    earliest = np.full(n_sales, np.iinfo(np.int64).max, dtype=np.int64)
    latest = np.full(n_sales, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(earliest, codes, stamps)
    np.maximum.at(latest, codes, stamps)
    spread = earliest != latest
    notes = []
    if spread.any():
        k = _first_bad(spread)
        rows = np.flatnonzero(codes == k)
        lo, hi = rows[np.argmin(stamps[rows])], rows[np.argmax(stamps[rows])]
        notes.append(
            f"{int(spread.sum())} sale(s) with lines stamped at different times take their earliest "
            f"(first: sale_id {sale_raw.iloc[int(lo)]}, {ts_raw.iloc[int(lo)]} on {where(int(lo))} "
            f"to {ts_raw.iloc[int(hi)]} on {where(int(hi))})"
        )
    return earliest.astype("datetime64[us]"), int(spread.sum()), notes


def _normalise_sales(df: pd.DataFrame, products: _Products, where: _Where, tz) -> _Sales:
    _require_columns(df, SALES_COLUMNS, where.label)
    if len(df) == 0:
        return _Sales([], [])
    df, where, duplicates, notes = _drop_exact_duplicates(df.reset_index(drop=True), where)
    n = len(df)

    # sale ids and their first appearance
    sale_raw = df["sale_id"]
    blank_id = sale_raw.isna().to_numpy() | (sale_raw.astype(str).str.strip() == "").to_numpy()
    if blank_id.any():
        raise SeedError(f"{where(_first_bad(blank_id))}: empty sale_id")
    codes, _uniques = pd.factorize(sale_raw, sort=False)
    n_sales = int(codes.max()) + 1

    # products
    sku_raw = df["sku"]
    sku_text = sku_raw.map(lambda v: "" if _blank(v) else _text(v).strip()) if sku_raw.dtype.kind in "iuf" \
        else sku_raw.astype(object).where(sku_raw.notna(), "").astype(str).str.strip()
    blank_sku = (sku_text == "").to_numpy()
    if blank_sku.any():
        pos = _first_bad(blank_sku)
        raise SeedError(f"{where(pos)} (sale_id {sale_raw.iloc[pos]}): empty sku")
    pidx = products.sku_index.get_indexer(sku_text.to_numpy(dtype=object))
    if (pidx < 0).any():
        pos = _first_bad(pidx < 0)
        raise SeedError(
            f"{where(pos)} (sale_id {sale_raw.iloc[pos]}): sku {sku_text.iloc[pos]!r} "
            f"is not in the products file"
        )

    # quantities
    qty_num = pd.to_numeric(df["quantity"], errors="coerce").to_numpy(dtype="float64")
    bad_qty = ~np.isfinite(qty_num) | (qty_num != np.floor(qty_num)) | (qty_num < 1) | (qty_num > INT_MAX)
    if bad_qty.any():
        pos = _first_bad(bad_qty)
        raise SeedError(
            f"{where(pos)} (sale_id {sale_raw.iloc[pos]}): quantity {df['quantity'].iloc[pos]!r} "
            "is not a positive integer"
        )
    qty = qty_num.astype(np.int64)

    # unit prices: exact decimals, converted once per distinct value
    price_codes, price_uniques = pd.factorize(df["unit_price"], sort=False, use_na_sentinel=True)
    if (price_codes < 0).any():
        pos = _first_bad(price_codes < 0)
        raise SeedError(f"{where(pos)} (sale_id {sale_raw.iloc[pos]}): empty unit_price")
    price_dec: list[Decimal] = []
    for k, v in enumerate(price_uniques):
        try:
            d = _decimal(v)
        except (InvalidOperation, ValueError):
            pos = _first_bad(price_codes == k)
            raise SeedError(
                f"{where(pos)} (sale_id {sale_raw.iloc[pos]}): unit_price {v!r} is not a number"
            ) from None
        if d < 0:
            pos = _first_bad(price_codes == k)
            raise SeedError(f"{where(pos)} (sale_id {sale_raw.iloc[pos]}): negative unit_price {d}")
        price_dec.append(d)
    unit_cents_u = np.array([cents(d) for d in price_dec], dtype=np.int64)
    exact_u = np.array([(d * 100) == (d * 100).to_integral_value() for d in price_dec], dtype=bool)
    unit_cents = unit_cents_u[price_codes]
    subtotal = qty * unit_cents
    inexact = ~exact_u[price_codes]
    if inexact.any():
        idx = np.flatnonzero(inexact)
        pairs: dict[tuple[int, int], int] = {}
        for i in idx.tolist():
            key = (int(price_codes[i]), int(qty[i]))
            if key not in pairs:
                exact = price_dec[key[0]] * key[1]
                pairs[key] = cents(exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))
            subtotal[i] = pairs[key]

    # timestamps: a sale is stamped with its earliest line
    ts_raw = df["sale_ts"]
    blank_ts = ts_raw.isna().to_numpy() | (ts_raw.astype(str).str.strip() == "").to_numpy()
    if blank_ts.any():
        pos = _first_bad(blank_ts)
        raise SeedError(f"{where(pos)} (sale_id {sale_raw.iloc[pos]}): empty sale_ts")
    local, retimed, ts_notes = _earliest_per_sale(df, codes, n_sales, where, tz)

    # ids in time order, ties by first appearance
    order = np.lexsort((np.arange(n_sales), local.astype(np.int64)))
    new_id = np.empty(n_sales, dtype=np.int64)
    new_id[order] = np.arange(1, n_sales + 1)
    sale_dates = _java_local_strings(local)

    # customers: first non-empty value of the sale
    cust = df["customer_id"]
    cust_vals = cust.to_numpy(dtype=object)
    cust_blank = cust.isna().to_numpy() | (cust.astype(str).str.strip() == "").to_numpy()
    cust_first = pd.Series(np.where(cust_blank, None, cust_vals)).groupby(codes, sort=True).first()
    customers: list[str | None] = [None] * n_sales
    for k, v in zip(cust_first.index.tolist(), cust_first.tolist()):
        customers[k] = None if _blank(v) else _text(v).strip()

    totals = np.zeros(n_sales, dtype=np.int64)
    np.add.at(totals, codes, subtotal)

    sales_rows = [
        (int(new_id[k]), sale_dates[k], int(totals[k]), customers[k]) for k in order.tolist()
    ]

    line_sale = new_id[codes]
    row_order = np.argsort(line_sale, kind="stable")
    sorted_sale = line_sale[row_order]
    starts = np.flatnonzero(np.r_[True, sorted_sale[1:] != sorted_sale[:-1]])
    counts = np.diff(np.r_[starts, n])
    line_no = np.arange(n) - np.repeat(starts, counts) + 1
    p_sorted = pidx[row_order]
    items = list(
        zip(
            sorted_sale.tolist(),
            line_no.tolist(),
            (p_sorted + 1).tolist(),
            products.names[p_sorted].tolist(),
            products.skus[p_sorted].tolist(),
            qty[row_order].tolist(),
            unit_cents[row_order].tolist(),
            subtotal[row_order].tolist(),
        )
    )
    return _Sales(sales_rows, items, duplicates, retimed, tuple(notes + ts_notes))


# -- writing -----------------------------------------------------------------------------------


def _open_empty_state(state_path, reset: bool) -> State:
    if reset:
        discard_state(state_path)
    state = State(state_path)
    if state.is_seeded():
        state.close()
        raise SeedError(
            f"{state_path} already holds a catalogue or sales; "
            "discard it first (--reset) to seed again"
        )
    return state


def _write(state: State, products: _Products, sales: _Sales, clock: Clock, source: str) -> None:
    now_ms = clock.epoch_ms()
    now_instant = java_instant(clock.aware())
    conn = state.connect()
    try:
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("DROP INDEX IF EXISTS idx_sales_date")
            conn.execute("DROP INDEX IF EXISTS idx_sale_items_product")
            conn.executemany(
                "INSERT INTO products(id, name, sku, price_cents, stock_quantity, description, "
                "image_url, low_stock_threshold, last_updated_ms) VALUES (?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
                [(i + 1, r[0], r[1], r[2], r[3], r[4], now_ms) for i, r in enumerate(products.rows)],
            )
            conn.executemany(
                "INSERT INTO inventory_items(id, sku, name, description, quantity, price_cents, "
                "cost_cents, category, created_at, updated_at) VALUES (?, ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
                [
                    (i + 1, r[1], r[0], r[3], r[2], r[5], r[6], now_instant, now_instant)
                    for i, r in enumerate(products.rows)
                ],
            )
            conn.executemany(
                "INSERT INTO sales(id, sale_date, total_cents, customer_id) VALUES (?, ?, ?, ?)",
                sales.sales,
            )
            conn.executemany(
                "INSERT INTO sale_items(sale_id, line_no, product_id, product_name, sku, quantity, "
                "unit_price_cents, subtotal_cents) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                sales.items,
            )
            conn.execute("CREATE INDEX IF NOT EXISTS idx_sales_date ON sales(sale_date)")
            conn.execute("CREATE INDEX IF NOT EXISTS idx_sale_items_product ON sale_items(product_id)")
            conn.executemany(
                "INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                [
                    ("seeded_at", now_instant),
                    ("seed_source", source),
                    ("seed_products", str(len(products.rows))),
                    ("seed_sales", str(len(sales.sales))),
                    ("seed_sale_lines", str(len(sales.items))),
                    ("seed_duplicate_lines", str(sales.duplicate_lines)),
                    ("seed_retimed_sales", str(sales.retimed_sales)),
                ],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("ANALYZE")
    finally:
        conn.close()


def seed_frames(
    state_path,
    products: pd.DataFrame,
    sales: pd.DataFrame | None = None,
    *,
    clock: Clock | None = None,
    reset: bool = False,
    products_label: str = "products",
    sales_label: str = "sales",
    _csv: bool = False,
) -> SeedSummary:
    """Seed an empty state from canonical frames (columns as in the CSVs).

    Raises :class:`SeedError` when the data is invalid or the state already holds data
    (unless ``reset``, which discards the state file first).
    """
    started = time.perf_counter()
    clock = clock or Clock()
    norm_products = _normalise_products(products, _Where(products_label, _csv))
    if sales is None:
        sales = pd.DataFrame({c: pd.Series([], dtype=object) for c in SALES_COLUMNS})
    norm_sales = _normalise_sales(sales, norm_products, _Where(sales_label, _csv), clock.tz)
    state = _open_empty_state(state_path, reset)
    try:
        _write(state, norm_products, norm_sales, clock, f"{products_label}, {sales_label}")
    finally:
        state.close()
    dates = [s[1] for s in norm_sales.sales]
    return SeedSummary(
        products=len(norm_products.rows),
        sales=len(norm_sales.sales),
        sale_lines=len(norm_sales.items),
        first_sale=min(dates) if dates else None,
        last_sale=max(dates) if dates else None,
        seconds=round(time.perf_counter() - started, 3),
        duplicate_lines=norm_sales.duplicate_lines,
        retimed_sales=norm_sales.retimed_sales,
        notes=norm_sales.notes,
    )


def seed_csvs(
    state_path,
    products_csv,
    sales_csv=None,
    *,
    clock: Clock | None = None,
    reset: bool = False,
) -> SeedSummary:
    """Seed an empty state from ``products.csv`` and (optionally) ``sales.csv``."""
    products = read_canonical_csv(products_csv, PRODUCT_COLUMNS)
    sales = read_canonical_csv(sales_csv, SALES_COLUMNS) if sales_csv is not None else None
    return seed_frames(
        state_path,
        products,
        sales,
        clock=clock,
        reset=reset,
        products_label=Path(products_csv).name,
        sales_label=Path(sales_csv).name if sales_csv is not None else "sales",
        _csv=True,
    )

