"""From a grid of cells to a validated file: the header row, the kind, parsed columns and
every problem with its row number (as shown in the spreadsheet), column and reason.

Rules beyond types (the core's catalogue and today's date are passed in, so this module
needs no network):

* every kind: required cells present, lengths within the core's limits (counted in UTF-16
  units, as Java does, for the core's kinds), no control characters, no formulas and no text
  a spreadsheet would read as one (``= + - @``, a leading tab or line break; a phone number
  may start with ``+``), whole numbers within a Java int, amounts within NUMERIC(12,2),
  dates not in the future (``today`` is the core's day) and not before 2000, unique keys
  within the file (sku for products and stock counts, product name for products, customer
  id, expense id);
* products, stock counts: the sku goes into ``/products/by-sku/{sku}``, so nothing the
  core's firewall refuses there (``; % / \\``, line breaks, ``.`` and ``..``);
* products: price ≥ 0, initial stock ≥ 0, low-stock threshold ≥ 1; a product name already
  used by another sku in the core is refused;
* stock counts, sales, sales history, lead times: the sku must be in the core's catalogue;
* sales: quantity > 0, enough stock in the core for the whole file (rows already committed
  by an interrupted import are not counted twice); lines sharing a sale_ref must agree on the
  customer; each line (at the core's price) and each sale within the core's amounts;
* sales history: quantity > 0, unit price ≥ 0; lines of one sale (same date and sale_ref)
  must agree on time and customer; each line and each sale within the core's amounts;
* expenses: amount > 0;
* lead times: 0 to 365 days.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

from salesflow.imports import values as V
from salesflow.imports.kinds import (
    CORE, DATE, EMAIL, INT, KINDS, MAX_LEAD_TIME_DAYS, MONEY, POSITIVE_MONEY, REJECTED_FOREIGN,
    SKU_IN_PATH, TEXT, TIME, Kind,
    kind_from_filename, match_header, normalize_header, recognised_cells,
)
from salesflow.imports.reading import DEFAULT_LIMITS, FileRejected, Grid, Limits, column_letter

HEADER_SEARCH_ROWS = 10


@dataclass
class Issue:
    row: int | None  # spreadsheet row number; None for the file as a whole
    column: str | None  # the column's header as written in the file
    reason: str
    value: str | None = None
    col_index: int | None = None

    def where(self) -> str:
        if self.row is None:
            return "file"
        col = f" column {column_letter(self.col_index)}" if self.col_index is not None else ""
        name = f" ({self.column})" if self.column else ""
        return f"row {self.row}{col}{name}"

    def as_dict(self) -> dict:
        return {"row": self.row, "column": self.column, "reason": self.reason,
                "value": self.value}


@dataclass
class Validated:
    kind: Kind
    grid: Grid
    header_index: int
    headers: list[str]
    columns: dict[int, str]  # cell index → canonical column
    row_numbers: list[int] = field(default_factory=list)  # spreadsheet row per data row
    data: dict[str, list] = field(default_factory=dict)  # canonical column → parsed values
    issues: list[Issue] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rows_total(self) -> int:
        return len(self.row_numbers)

    @property
    def bad_rows(self) -> set[int]:
        return {i.row for i in self.issues if i.row is not None and i.row > self.header_index + 1}

    @property
    def rows_rejected(self) -> int:
        return len(self.bad_rows)

    @property
    def rows_valid(self) -> int:
        return self.rows_total - self.rows_rejected

    @property
    def ok(self) -> bool:
        return not self.issues

    def index_of(self, name: str) -> int | None:
        for idx, col in self.columns.items():
            if col == name:
                return idx
        return None

    def header_of(self, name: str) -> str:
        idx = self.index_of(name)
        return self.headers[idx] if idx is not None else name

    def records(self) -> list[dict[str, Any]]:
        names = list(self.data)
        cols = [self.data[n] for n in names]
        return [
            {"_row": rn, **{n: c[i] for n, c in zip(names, cols)}}
            for i, rn in enumerate(self.row_numbers)
        ]


def _shown(value) -> str:
    text = V.as_text(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _safe_shown(value) -> str:
    try:
        return _shown(value)
    except V.CellError:
        text = str(value)
        return text[:77] + "..." if len(text) > 80 else text


def find_header(grid: Grid) -> int:
    seen = 0
    for i, row in enumerate(grid.rows):
        if all(V.is_blank(c) for c in row):
            continue
        seen += 1
        if recognised_cells([_header_text(c) for c in row]) >= 2:
            return i
        if seen >= HEADER_SEARCH_ROWS:
            break
    if seen == 0:
        raise FileRejected("the file has no cells with values", code="empty", grid=grid)
    raise FileRejected(
        "no header row found: the first row must name the columns (for example sku, "
        "quantity); see the templates folder for each kind's columns",
        code="no_header", grid=grid)


def _header_text(cell) -> str:
    if V.is_blank(cell):
        return ""
    if isinstance(cell, str):
        return cell.strip()
    try:
        return V.as_text(cell)
    except V.CellError:
        return str(cell)[:100]


def choose_kind(headers: list[str], filename: str, grid: Grid, header_index: int):
    hint = kind_from_filename(filename)
    header_cells = [(header_index, i) for i, h in enumerate(headers) if h]
    if hint is not None:
        match = match_header(hint, headers)
        if match.missing:
            found = ", ".join(repr(h) for h in headers if h) or "nothing"
            raise FileRejected(
                f"the file name says {hint.name} but the header lacks "
                + ", ".join(match.missing) + f" (found {found}); see templates/{hint.name}.xlsx",
                code="missing_columns", grid=grid, cells=header_cells)
        return match
    matches = [match_header(k, headers) for k in KINDS.values()]
    complete = [m for m in matches if not m.missing]
    if not complete:
        best = max(matches, key=lambda m: (len(m.columns), -len(m.missing)))
        found = ", ".join(repr(h) for h in headers if h) or "nothing"
        raise FileRejected(
            f"the header ({found}) matches no kind of import; closest is {best.kind.name}, which "
            f"also needs " + ", ".join(best.missing)
            + ". Name the file after its kind (e.g. products_march.xlsx) or use a template",
            code="unknown_kind", grid=grid, cells=header_cells)
    complete.sort(key=lambda m: len(m.columns), reverse=True)
    tied = [m for m in complete if len(m.columns) == len(complete[0].columns)]
    if len(tied) > 1:
        tied.sort(key=lambda m: m.kind.name)
        names = " or ".join(m.kind.name for m in tied)
        raise FileRejected(
            f"the header fits {names}: start the file name with the kind "
            f"(e.g. {tied[0].kind.name}_2025-06-30.csv) or use the template's column names",
            code="ambiguous_kind", grid=grid, cells=header_cells)
    return complete[0]


ParseFn = Callable[[Any], Any]


def _parser(kind: Kind, name: str) -> ParseFn:
    col = kind.column(name)
    if col.type == TEXT:
        return _text_parser(kind, col)
    if col.type == EMAIL:
        return V.parse_email
    if col.type == INT:
        return _int_parser(col.minimum)
    if col.type == MONEY:
        return _money_parser((kind.name, name) in POSITIVE_MONEY)
    if col.type == DATE:
        return V.parse_datetime
    if col.type == TIME:
        return V.parse_time
    raise ValueError(col.type)


def _text_parser(kind: Kind, col) -> ParseFn:
    base = V.parse_sku if col.sku and kind.name in SKU_IN_PATH else V.as_text
    limit = col.max_len
    core = kind.target == CORE

    def parse_text(value):
        text = base(value)
        V.check_formula(value, text, phone=col.phone)
        if limit and len(text) > limit:
            raise V.CellError(f"{len(text):,} characters; at most {limit}")
        if limit and core and V.java_length(text) > limit:
            raise V.CellError(f"{V.java_length(text):,} characters as the core counts them "
                              f"(some count twice); at most {limit}")
        return text
    return parse_text


def _int_parser(low: int | None) -> ParseFn:
    def parse_int(value):
        n = V.parse_int(value)
        if low is not None and n < low:
            raise V.CellError(f"must be {'greater than 0' if low == 1 else f'at least {low}'}"
                              f" (got {n})")
        if n > V.MAX_INT:
            raise V.CellError(f"{n:,} is too large: at most {V.MAX_INT:,}")
        return n
    return parse_int


def _money_parser(positive: bool) -> ParseFn:
    def parse_money(value):
        amount = V.parse_money(value)
        if positive and amount <= 0:
            raise V.CellError(f"must be greater than 0 (got {amount})")
        if amount < 0:
            raise V.CellError(f"must be 0 or more (got {amount})")
        if amount > V.MAX_AMOUNT:
            raise V.CellError(f"{amount} is more than {V.MAX_AMOUNT:,}, the largest amount "
                              "the core keeps")
        return amount
    return parse_money


def validate_grid(
    grid: Grid,
    *,
    filename: str,
    today: date,
    catalogue: dict[str, dict] | None = None,
    committed_rows: frozenset[int] = frozenset(),
    limits: Limits = DEFAULT_LIMITS,
    max_issues: int = 100_000,
) -> Validated:
    """Validate a read grid. Raises FileRejected for problems of the file as a whole."""
    header_index = find_header(grid)
    header_row = grid.rows[header_index]
    headers = [_header_text(c) for c in header_row]
    width = grid.width
    headers += [""] * (width - len(headers))
    if width > limits.max_columns:
        raise FileRejected(f"the sheet has {width} columns; the limit is {limits.max_columns}",
                           code="too_many_columns", grid=grid)
    match = choose_kind(headers, filename, grid, header_index)
    kind = match.kind
    if match.duplicates:
        parts, cells = [], []
        for name, idx in match.duplicates:
            shown = " and ".join(f"{column_letter(i)} ({headers[i]!r})" for i in idx)
            parts.append(f"columns {shown} both mean {name}")
            cells += [(header_index, i) for i in idx]
        raise FileRejected("duplicate columns: " + "; ".join(parts) + ": keep one of each",
                           code="duplicate_columns", grid=grid, cells=cells)
    forbidden = REJECTED_FOREIGN.get(kind.name, {})
    for i in [*match.unknown, *[f[0] for f in match.foreign]]:
        key = normalize_header(headers[i])
        for canonical, (other, why) in forbidden.items():
            if KINDS[other].lookup.get(key) == canonical:
                raise FileRejected(
                    f"column {column_letter(i)} ({headers[i]!r}) does not belong in a {kind.name} "
                    f"file: {why}", code="wrong_columns", grid=grid, cells=[(header_index, i)])

    result = Validated(kind=kind, grid=grid, header_index=header_index, headers=headers,
                       columns=dict(match.columns))
    ignored = sorted([*match.unknown, *[f[0] for f in match.foreign]])
    if ignored:
        result.notes.append(
            "ignored columns not used by " + kind.name + " files: "
            + ", ".join(f"{column_letter(i)} ({headers[i]!r})" for i in ignored))
    if header_index > 0:
        result.notes.append(f"rows 1-{header_index} above the header are ignored")
    result.notes.extend(grid.notes)

    issues = result.issues

    def add(row_index: int, col: int | None, reason: str, value=None) -> None:
        if len(issues) < max_issues:
            issues.append(Issue(
                row=row_index + 1,
                column=(headers[col] or None) if col is not None and col < len(headers) else None,
                reason=reason,
                value=None if value is None else _safe_shown(value),
                col_index=col,
            ))

    # data rows (blank rows are skipped)
    data_rows: list[int] = []
    rows = grid.rows
    for r in range(header_index + 1, len(rows)):
        row = rows[r]
        if any(not V.is_blank(c) for c in row):
            data_rows.append(r)
    if not data_rows:
        raise FileRejected("the file has a header but no data rows", code="no_rows", grid=grid)
    if len(data_rows) > limits.max_rows:
        raise FileRejected(f"the file has {len(data_rows):,} data rows; the limit is "
                           f"{limits.max_rows:,} per file: split it", code="too_many_rows")
    result.row_numbers = [r + 1 for r in data_rows]

    # columns without a header but with values
    mapped_or_named = {i for i, h in enumerate(headers) if h}
    for j in range(width):
        if j in mapped_or_named:
            continue
        for r in data_rows:
            row = rows[r]
            if j < len(row) and not V.is_blank(row[j]):
                add(header_index, j, "this column has values but no header")
                break

    # oversized cells in columns that are not parsed (parsed ones are checked by their parser)
    for j in range(width):
        if j in result.columns:
            continue
        for r in data_rows:
            row = rows[r]
            if j < len(row) and isinstance(row[j], str) and len(row[j]) > V.MAX_CELL_CHARS:
                add(r, j, f"cell has {len(row[j]):,} characters; the limit is {V.MAX_CELL_CHARS:,}")

    # formulas anywhere in the sheet
    for r, j in grid.formulas:
        add(r, j, "a formula: paste the values instead (Paste Special > Values)")

    # parse each column (a formula cell has its error already)
    formula_cells = set(grid.formulas)
    slash: dict[str, list] = {}
    for j, name in result.columns.items():
        parse = _parser(kind, name)
        col = kind.column(name)
        parsed: list = []
        append = parsed.append
        for r in data_rows:
            row = rows[r]
            value = row[j] if j < len(row) else None
            if formula_cells and (r, j) in formula_cells:
                append(None)
                continue
            if V.is_blank(value):
                append(None)
                if col.required:
                    add(r, j, f"{name} is required")
                continue
            try:
                append(parse(value))
            except V.SlashDate as sd:
                append(None)
                slash.setdefault(name, []).append(((len(parsed) - 1, r, j, value), sd))
            except V.CellError as exc:
                append(None)
                add(r, j, str(exc), value)
        result.data[name] = parsed
    for name, items in slash.items():
        resolved, errors = V.resolve_slash_dates([(key, sd) for key, sd in items])
        for (pos, r, j, value), _ in items:
            key = (pos, r, j, value)
            if key in resolved:
                result.data[name][pos] = resolved[key]
            else:
                add(r, j, errors[key], value)
    for name in kind.required:
        result.data.setdefault(name, [None] * len(data_rows))
    for col in kind.columns:
        result.data.setdefault(col.name, [None] * len(data_rows))

    # split date cells into date (+ time when the kind has a time column)
    for col in kind.columns:
        if col.type == DATE:
            values = result.data[col.name]
            for i, v in enumerate(values):
                if v is not None:
                    values[i] = v[0]
                    if kind.name == "sales_history" and v[1] is not None:
                        times = result.data["time"]
                        if times[i] is None and result.index_of("time") is None:
                            times[i] = v[1]

    _business_rules(result, data_rows, add, today=today, catalogue=catalogue,
                    committed_rows=committed_rows)
    issues.sort(key=lambda i: (i.row or 0, i.col_index if i.col_index is not None else -1))
    return result


def _business_rules(result: Validated, data_rows: list[int], add, *, today: date,
                    catalogue: dict[str, dict] | None, committed_rows: frozenset[int]) -> None:
    kind = result.kind
    data = result.data
    idx = {name: result.index_of(name) for name in data}

    # dates not in the future
    for col in kind.columns:
        if col.type == DATE:
            for pos, d in enumerate(data[col.name]):
                if d is not None and d > today:
                    add(data_rows[pos], idx[col.name],
                        f"{d.isoformat()} is in the future (today is {today.isoformat()})", d)

    # unique keys within the file
    for name in kind.unique:
        first_row: dict[Any, int] = {}
        for pos, value in enumerate(data[name]):
            if value is None:
                continue
            key = value
            if key in first_row:
                add(data_rows[pos], idx[name],
                    f"duplicate {name} {value!r} (already in row {first_row[key]})", value)
            else:
                first_row[key] = data_rows[pos] + 1

    # the core's catalogue
    if kind.name in ("stock_counts", "sales", "sales_history", "lead_times") and catalogue is not None:
        for pos, sku in enumerate(data["sku"]):
            if sku is not None and sku not in catalogue:
                add(data_rows[pos], idx["sku"], f"unknown sku {sku!r}: not in the core's catalogue",
                    sku)
    if kind.name == "products" and catalogue is not None:
        owner = {p.get("name"): p.get("sku") for p in catalogue.values()}
        for pos, (sku, name) in enumerate(zip(data["sku"], data["name"])):
            if sku is None or name is None:
                continue
            other = owner.get(name)
            if other is not None and other != sku:
                add(data_rows[pos], idx["name"],
                    f"the name {name!r} already belongs to sku {other!r} in the core "
                    "(product names are unique)", name)

    if kind.name == "lead_times":
        for pos, days in enumerate(data["lead_time_days"]):
            if days is not None and days > MAX_LEAD_TIME_DAYS:
                add(data_rows[pos], idx["lead_time_days"],
                    f"{days} days is longer than a year: at most {MAX_LEAD_TIME_DAYS}", days)

    if kind.name == "sales":
        _sale_groups(result, data_rows, add, ("customer_id",), key=lambda pos: data["sale_ref"][pos])
        if catalogue is not None:
            sold: dict[str, int] = defaultdict(int)
            for pos, (sku, qty) in enumerate(zip(data["sku"], data["quantity"])):
                if sku is None or qty is None or sku not in catalogue:
                    continue
                if (data_rows[pos] + 1) in committed_rows:
                    continue
                sold[sku] += qty
                stock = int(catalogue[sku].get("stockQuantity") or 0)
                if sold[sku] > stock:
                    add(data_rows[pos], idx["quantity"],
                        f"not enough stock: the file sells {sold[sku]} of {sku!r} up to this row, "
                        f"the core has {stock}", qty)

    if kind.name == "sales" and catalogue is not None:
        def core_price(pos):
            product = catalogue.get(data["sku"][pos])
            return None if product is None else _price(product.get("price"))
        _sale_amounts(result, data_rows, add, core_price, lambda pos: data["sale_ref"][pos])

    if kind.name == "sales_history":
        def key(pos):
            ref = data["sale_ref"][pos]
            return None if ref is None else (data["date"][pos], ref)
        _sale_groups(result, data_rows, add, ("time", "customer_id"), key=key)
        _sale_amounts(result, data_rows, add, lambda pos: data["unit_price"][pos], key)


def _price(value) -> Decimal | None:
    try:
        return Decimal(str(value)).quantize(V.CENT)
    except (InvalidOperation, ValueError):
        return None


def _sale_amounts(result: Validated, data_rows: list[int], add, price_of, key) -> None:
    """Line subtotals and sale totals must stay within the core's amounts (NUMERIC(12,2))."""
    data = result.data
    col = result.index_of("quantity")
    top = f"more than {V.MAX_AMOUNT:,}, the largest amount the core keeps"
    totals: dict[Any, Decimal] = {}
    for pos, qty in enumerate(data["quantity"]):
        price = price_of(pos)
        if qty is None or price is None:
            continue
        line = price * qty
        if line > V.MAX_AMOUNT:
            at = "" if result.kind.name == "sales_history" else f" at the core's price {price}"
            add(data_rows[pos], col, f"the line comes to {line}{at}: {top}", qty)
            continue
        k = key(pos)
        if k is None:
            continue
        before = totals.get(k, Decimal(0))
        totals[k] = before + line
        if before <= V.MAX_AMOUNT < totals[k]:
            add(data_rows[pos], col, f"sale {data['sale_ref'][pos]!r} comes to {totals[k]} up to "
                f"this line: {top}", qty)


def _sale_groups(result: Validated, data_rows: list[int], add, fields: tuple[str, ...], key) -> None:
    """Lines of one sale must agree on ``fields``."""
    first: dict[Any, int] = {}
    data = result.data
    for pos in range(len(data_rows)):
        k = key(pos)
        if k is None:
            continue
        if k not in first:
            first[k] = pos
            continue
        f = first[k]
        for name in fields:
            a, b = data[name][f], data[name][pos]
            if a != b:
                idx = result.index_of(name)
                shown = lambda v: "blank" if v is None else repr(V.as_text(v))  # noqa: E731
                add(data_rows[pos], idx if idx is not None else result.index_of("sale_ref"),
                    f"this line of sale {data['sale_ref'][pos]!r} has {name} {shown(b)} but row "
                    f"{data_rows[f] + 1} has {shown(a)}", b)


def detect_kind(grid: Grid, filename: str) -> Kind:
    """The file's kind from its header row (and name), before the full validation."""
    header_index = find_header(grid)
    headers = [_header_text(c) for c in grid.rows[header_index]]
    headers += [""] * (grid.width - len(headers))
    return choose_kind(headers, filename, grid, header_index).kind
