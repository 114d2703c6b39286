"""The reorder list as an Excel workbook, for the daily digest's attachment.

One sheet, ``Reorder``: a title and a one-line summary, then the rows of
``marts.reorder_suggestions`` grouped by category (Uncategorized last), each category closed by
a subtotal row (units and order cost), and a grand total at the end. Totals are written as
values (summed exactly in Decimal), not formulas, so that every reader (a phone's preview, a
script) sees them. Order costs sum the rows whose unit cost is known; a total says how many
rows it leaves out. A second sheet, ``About``, says how each figure is made.

Text is written through ``salesflow.reports.excel.set_text``: a product name that looks like a
formula stays text.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Iterable, Mapping, Sequence

import duckdb
from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter

from salesflow import reorder
from salesflow.fmt import fmt_value
from salesflow.reports.excel import HEADER_FILL, HEADER_FONT, set_text, set_value

SHEET = "Reorder"
TITLE_FONT = Font(bold=True, size=14)
GROUP_FONT = Font(bold=True, color="1F3B63")
TOTAL_FONT = Font(bold=True)
SUBTOTAL_FILL = PatternFill("solid", fgColor="E8EEF7")
TOTAL_FILL = PatternFill("solid", fgColor="C9D6EA")
TOP_RULE = Border(top=Side(style="thin", color="1F3B63"))
MAX_WIDTH = 48


@dataclass(frozen=True)
class _Col:
    key: str
    title: str
    kind: str  # a NUMBER_FORMATS key or "text"


def _columns(currency: str) -> list[_Col]:
    return [
        _Col("sku", "SKU", "text"),
        _Col("product_name", "Product", "text"),
        _Col("stock_quantity", "Stock", "int"),
        _Col("lead_time_days", "Lead time (days)", "int"),
        _Col("demand_units", "Forecast over lead time", "num"),
        _Col("safety_units", "Safety stock", "num"),
        _Col("target_units", "Target", "num"),
        _Col("suggested_qty", "Order qty", "int"),
        _Col("unit_cost", f"Unit cost ({currency})", "money"),
        _Col("order_cost", f"Order cost ({currency})", "money"),
        _Col("stockout_date", "Stock-out by", "date"),
        _Col("basis", "Basis", "text"),
        _Col("lead_time_source", "Lead time from", "text"),
        _Col("note", "Note", "text"),
    ]


@dataclass
class _Total:
    products: int = 0
    units: int = 0
    cost: Decimal = Decimal("0.00")
    without_cost: int = 0

    def add(self, row: Mapping[str, Any]) -> None:
        self.products += 1
        self.units += int(row["suggested_qty"] or 0)
        if row.get("order_cost") is None:
            self.without_cost += 1
        else:
            self.cost += Decimal(str(row["order_cost"]))

    def note(self) -> str | None:
        if not self.without_cost:
            return None
        return (f"{self.without_cost} of {self.products} products without a known unit cost: "
                "not in the order cost")


def _by_category(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, list[Mapping[str, Any]]]]:
    groups: dict[str, list] = {}
    for row in rows:
        groups.setdefault(row.get("category") or reorder.UNCATEGORIZED, []).append(row)
    order = sorted(groups, key=lambda c: (c == reorder.UNCATEGORIZED, c.casefold()))
    return [(c, groups[c]) for c in order]


def reorder_workbook_bytes(rows: Sequence[Mapping[str, Any]], currency: str, *,
                           as_of: date | None = None, shop_name: str | None = None) -> bytes:
    """The workbook of ``rows`` (dicts with the columns of ``marts.reorder_suggestions``, as
    ``salesflow.reorder.load_rows`` gives them)."""
    rows = list(rows)
    if as_of is None and rows:
        as_of = rows[0].get("as_of")
    columns = _columns(currency)
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    widths = [len(c.title) for c in columns]

    def put(r: int, j: int, value: Any, kind: str):
        cell = ws.cell(row=r, column=j + 1)
        set_value(cell, value, kind)
        shown = "" if value is None else (fmt_value(value, "money") if kind == "money" else str(value))
        widths[j] = max(widths[j], min(MAX_WIDTH, len(shown)))
        return cell

    grand = _Total()
    for row in rows:
        grand.add(row)
    title = "Reorder list" + (f" as of {as_of.isoformat()}" if as_of else "")
    set_text(ws.cell(row=1, column=1), f"{shop_name}: {title}" if shop_name else title)
    ws.cell(row=1, column=1).font = TITLE_FONT
    summary = (f"{grand.products:,} product{'s' if grand.products != 1 else ''} to order, "
               f"{grand.units:,} unit{'s' if grand.units != 1 else ''}, order cost ")
    # like the total rows: no order cost at all, not 0.00, when no product's unit cost is known
    if grand.without_cost == grand.products:
        summary += "unknown (no known unit cost)"
    else:
        summary += fmt_value(grand.cost, "money", currency)
        if grand.without_cost:
            summary += f" ({grand.without_cost} without a known unit cost)"
    if not rows:
        summary = "Nothing to order: no product's stock falls short of its forecast over its lead time."
    set_text(ws.cell(row=2, column=1), summary)
    set_text(ws.cell(row=3, column=1),
             "Order qty = Target − Stock, rounded up; Target = forecast over the lead time + "
             "safety stock. Grouped by category; see the About sheet.")
    ws.cell(row=3, column=1).font = Font(italic=True, color="555555")

    header_row = 5
    for j, col in enumerate(columns):
        cell = ws.cell(row=header_row, column=j + 1)
        set_text(cell, col.title)
        cell.font = HEADER_FONT
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(wrap_text=True, vertical="center")
    ws.row_dimensions[header_row].height = 32
    ws.freeze_panes = ws.cell(row=header_row + 1, column=3)

    r = header_row + 1
    qty_col = next(j for j, c in enumerate(columns) if c.key == "suggested_qty")
    cost_col = next(j for j, c in enumerate(columns) if c.key == "order_cost")
    note_col = next(j for j, c in enumerate(columns) if c.key == "note")

    def total_row(label: str, total: _Total, fill: PatternFill) -> None:
        nonlocal r
        put(r, 0, label, "text")
        put(r, 1, f"{total.products} product{'s' if total.products != 1 else ''}", "text")
        put(r, qty_col, total.units, "int")
        # blank, not 0.00, when no product of the total has a known cost
        put(r, cost_col, total.cost if total.without_cost < total.products else None, "money")
        put(r, note_col, total.note(), "text")
        for j in range(len(columns)):
            cell = ws.cell(row=r, column=j + 1)
            cell.font = TOTAL_FONT
            cell.fill = fill
            cell.border = TOP_RULE
        r += 1

    for category, group in _by_category(rows):
        put(r, 0, category, "text").font = GROUP_FONT
        r += 1
        sub = _Total()
        for row in group:
            sub.add(row)
            for j, col in enumerate(columns):
                put(r, j, row.get(col.key), col.kind)
            r += 1
        total_row(f"Subtotal {category}", sub, SUBTOTAL_FILL)
        r += 1
    if rows:
        total_row("Grand total", grand, TOTAL_FILL)

    for j, width in enumerate(widths):
        ws.column_dimensions[get_column_letter(j + 1)].width = max(8, min(MAX_WIDTH, width + 2))
    ws.column_dimensions["A"].width = max(ws.column_dimensions["A"].width, 16)
    ws.page_setup.orientation = "landscape"
    ws.page_setup.fitToWidth = 1
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    _about(wb, currency)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _about(wb: Workbook, currency: str) -> None:
    ws = wb.create_sheet("About")
    lines = [
        ("Forecast over lead time", "The forecast's expected units over the product's lead time "
         "(the days from ordering to having it on the shelf)."),
        ("Safety stock", "Units kept for a busier than expected lead time: enough for 95 in 100 "
         "lead times, from the spread of the forecast."),
        ("Order qty", "Target minus stock, rounded up to whole units; 0 is not listed."),
        (f"Order cost ({currency})", "Order qty × unit cost, where the unit cost is known. "
         "Totals leave out the products without one and say how many."),
        ("Stock-out by", "The first day the expected sales exceed today's stock; blank when that "
         "is beyond the forecast's horizon (4 weeks by default)."),
        ("Basis", "forecast: the product's own model; fallback: its recent sales rate or its "
         "category's; recent average: no forecast, the average of the last 28 days."),
        ("Lead time from", "product: imported with a lead_times file; category: the shop's "
         f"setting {reorder.CATEGORY_ENV}; default: the shop's default lead time."),
    ]
    set_text(ws.cell(row=1, column=1), "Column")
    set_text(ws.cell(row=1, column=2), "What it means")
    for j in (1, 2):
        ws.cell(row=1, column=j).font = HEADER_FONT
        ws.cell(row=1, column=j).fill = HEADER_FILL
    for i, (name, text) in enumerate(lines, start=2):
        set_text(ws.cell(row=i, column=1), name)
        set_text(ws.cell(row=i, column=2), text)
        ws.cell(row=i, column=2).alignment = Alignment(wrap_text=True, vertical="top")
        ws.cell(row=i, column=1).alignment = Alignment(vertical="top")
    ws.column_dimensions["A"].width = 26
    ws.column_dimensions["B"].width = 90


def reorder_filename(as_of: date) -> str:
    return f"reorder_{as_of.isoformat()}.xlsx"


def reorder_attachment(con: duckdb.DuckDBPyConnection, as_of: date, currency: str,
                       *, shop_name: str | None = None) -> tuple[str, bytes] | None:
    """``(filename, xlsx bytes)`` of the reorder list of ``as_of``, or None when it has no rows
    (nothing to order, or the mart not built for that day)."""
    rows = reorder.load_rows(con, as_of)
    if not rows:
        return None
    return reorder_filename(as_of), reorder_workbook_bytes(rows, currency, as_of=as_of,
                                                           shop_name=shop_name)
