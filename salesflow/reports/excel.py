"""The report as an Excel workbook (openpyxl), one sheet per section.

Every sheet has its header in row 1, frozen, with an auto-filter; numbers are stored as
numbers (money and counts as they are in the marts, percentages as fractions with a ``0.00%``
format, dates as dates) and columns are sized to their content. Charts are native Excel
charts over the sheet's cells.

No cell can run a formula: every text cell is written as a string, and text that Excel or
another spreadsheet would read as a formula or a DDE payload (starting with ``= + - @``, a tab
or a carriage return, after leading spaces) is also marked with Excel's quote prefix, so it
stays text even when someone edits the cell.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Sequence

from openpyxl import Workbook
from openpyxl.cell.cell import Cell
from openpyxl.chart import BarChart, LineChart, Reference
from openpyxl.chart.legend import Legend
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from salesflow.formula_cells import is_formula_like
from salesflow.reports.content import Column, Report, Table, section_notes
from salesflow.fmt import fmt_value

NUMBER_FORMATS = {
    "money": "#,##0.00", "int": "#,##0", "pct": "0.00%", "dec1": "#,##0.0",
    "dec3": "#,##0.000", "num": "#,##0.00", "date": "yyyy-mm-dd",
    "month": "mmm yyyy",
}
HEADER_FILL = PatternFill("solid", fgColor="1F3B63")
HEADER_FONT = Font(bold=True, color="FFFFFF")
MAX_WIDTH = 60

SHEETS = ("Summary", "Revenue trend", "Top products", "Customers", "Stock alerts", "Anomalies",
          "Expenses", "Net profit")


def set_text(cell: Cell, text: str) -> None:
    """Store ``text`` as a string cell; formula-like text also gets the quote prefix."""
    cell.value = text
    cell.data_type = "s"
    if is_formula_like(text):
        cell.quotePrefix = True


def set_value(cell: Cell, value: Any, kind: str) -> None:
    if value is None:
        cell.value = None
        return
    if kind == "text" or isinstance(value, str):
        set_text(cell, str(value))
        return
    if kind == "pct":
        cell.value = Decimal(str(value)) / 100
    elif kind in ("date", "month"):
        cell.value = value if isinstance(value, (date, datetime)) else str(value)
    elif kind == "int":
        cell.value = int(value)
    elif isinstance(value, float):
        cell.value = value
    else:
        cell.value = Decimal(str(value))
    cell.number_format = NUMBER_FORMATS.get(kind, "General")


def _display(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "text":
        return str(value)
    return fmt_value(value, kind)


def write_table(ws: Worksheet, columns: Sequence[Column], rows: Sequence[Sequence[Any]], *,
                currency: str = "", first_row: int = 1) -> None:
    """Header at ``first_row``, the rows under it, column widths fitted to both."""
    widths = []
    for c, col in enumerate(columns, start=1):
        label = f"{col.label} ({currency})" if col.kind == "money" and currency else col.label
        cell = ws.cell(first_row, c)
        set_text(cell, label)
        cell.fill = HEADER_FILL
        cell.font = HEADER_FONT
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=False)
        widths.append(len(label))
    for r, row in enumerate(rows, start=first_row + 1):
        for c, (col, value) in enumerate(zip(columns, row), start=1):
            set_value(ws.cell(r, c), value, col.kind)
            widths[c - 1] = max(widths[c - 1], len(_display(value, col.kind)))
    for c, w in enumerate(widths, start=1):
        letter = get_column_letter(c)
        current = ws.column_dimensions[letter].width or 0
        ws.column_dimensions[letter].width = max(current, min(MAX_WIDTH, max(8, w + 3)))


def _data_sheet(wb: Workbook, title: str, table: Table, currency: str) -> Worksheet:
    ws = wb.create_sheet(title)
    write_table(ws, table.columns, table.rows, currency=currency)
    ws.freeze_panes = "A2"
    if table.rows:
        ws.auto_filter.ref = f"A1:{get_column_letter(len(table.columns))}{len(table.rows) + 1}"
    return ws


def _line_chart(title: str, y_title: str) -> LineChart:
    chart = LineChart()
    chart.title = title
    chart.y_axis.title = y_title
    chart.y_axis.numFmt = "#,##0"
    chart.x_axis.number_format = "yyyy-mm-dd"
    chart.x_axis.majorTimeUnit = "days"
    chart.height, chart.width = 9, 22
    chart.y_axis.delete = False
    chart.x_axis.delete = False
    return chart


def _bar_chart(title: str, y_title: str, *, horizontal: bool = True) -> BarChart:
    chart = BarChart()
    chart.type = "bar" if horizontal else "col"
    chart.title = title
    chart.y_axis.title = y_title
    chart.y_axis.numFmt = "#,##0"
    chart.legend = None
    chart.y_axis.delete = False
    chart.x_axis.delete = False
    return chart


TREND_SHEET_COLUMNS = (
    Column("date", "Date", "date"), Column("revenue", "Revenue", "money"),
    Column("orders", "Orders", "int"), Column("units", "Units", "int"),
    Column("yhat", "Forecast", "money"), Column("yhat_lo_80", "Forecast low 80%", "money"),
    Column("yhat_hi_80", "Forecast high 80%", "money"),
    Column("yhat_lo_95", "Forecast low 95%", "money"),
    Column("yhat_hi_95", "Forecast high 95%", "money"),
)


def trend_rows(report: Report) -> list[tuple]:
    """Actual days and forecast days on one date axis (a forecast day may also be an actual)."""
    actual = {r[0]: r[1:] for r in report.trend.rows}
    forecast = {r[0]: r[1:] for r in report.forecast.rows}
    out = []
    for day in sorted(set(actual) | set(forecast)):
        out.append((day, *(actual.get(day) or (None, None, None)),
                    *(forecast.get(day) or (None,) * 5)))
    return out


def _change_cells(ws: Worksheet, r: int, c: int, kind: str, change, growth) -> None:
    """The change (in points for percentages) at column ``c`` and the growth at ``c + 1``."""
    if kind == "pct":
        set_value(ws.cell(r, c), change, "num")
        ws.cell(r, c).number_format = '+#,##0.00" pts";-#,##0.00" pts";0.00" pts"'
    else:
        set_value(ws.cell(r, c), change, kind)
        if change is not None:
            ws.cell(r, c).number_format = "+" + NUMBER_FORMATS[kind] + ";-" + NUMBER_FORMATS[kind] + ";0"
    set_value(ws.cell(r, c + 1), growth, "pct")
    if growth is not None:
        ws.cell(r, c + 1).number_format = "+0.00%;-0.00%;0.00%"


def _summary_sheet(wb: Workbook, report: Report) -> Worksheet:
    """Each figure of the period, then for each comparison (the main one first) its value, the
    change and the growth; under them the periods, why revenue moved, and the notes."""
    ws = wb.active
    ws.title = "Summary"
    cur = report.currency
    columns = [Column("figure", "Figure"), Column("current", "This period")]
    for i, comp in enumerate(report.comparisons):
        columns += [Column(f"value_{i}", comp.label), Column(f"change_{i}", "Change"),
                    Column(f"growth_{i}", "Growth")]
    write_table(ws, columns, [])
    for r, k in enumerate(report.kpis, start=2):
        set_text(ws.cell(r, 1), k.label + (f" ({cur})" if k.kind == "money" else ""))
        set_value(ws.cell(r, 2), k.current, k.kind)
        for i, comp in enumerate(report.comparisons):
            ck = comp.kpi(k.key)
            col = 3 + 3 * i
            set_value(ws.cell(r, col), ck.value, k.kind)
            _change_cells(ws, r, col + 1, k.kind, ck.change, ck.growth_pct)
    p = report.period
    info_row = len(report.kpis) + 3
    info = [
        ("Shop", report.shop_name), ("Report", report.title),
        ("Period", f"{p.label} ({p.start.isoformat()} to {p.end.isoformat()})"),
    ]
    info += [(c.label, f"{c.span_label} ({c.start.isoformat()} to {c.end.isoformat()})"
              + ("" if c.available else ", no sales data for it")) for c in report.comparisons]
    info += [("Currency", cur), ("Generated", f"{report.generated_at:%Y-%m-%d %H:%M %Z}")]
    info += [("Why revenue moved" if i == 0 else "", line) for i, line in enumerate(report.explanation)]
    info += [("Note", n) for n in section_notes(report)]
    for i, (label, text) in enumerate(info):
        cell = ws.cell(info_row + i, 1)
        set_text(cell, label)
        cell.font = Font(bold=True)
        set_text(ws.cell(info_row + i, 2), text)
    ws.column_dimensions["A"].width = max(ws.column_dimensions["A"].width,
                                          max(len(k.label) for k in report.kpis) + 8)
    for c in range(2, len(columns) + 1):
        letter = get_column_letter(c)
        ws.column_dimensions[letter].width = max(ws.column_dimensions[letter].width, 18)
    ws.freeze_panes = "A2"
    return ws


CUSTOMER_FIGURES = (
    ("customers", "Customers who bought", "int"),
    ("new_customers", "New customers (first purchase in the period)", "int"),
    ("returning_customers", "Returning customers (bought before the period)", "int"),
    ("repeat_customers", "Customers with 2+ orders in the period", "int"),
    ("repeat_rate_pct", "Repeat rate", "pct"),
    ("orders", "Orders", "int"),
    ("identified_orders", "Orders with a customer id", "int"),
    ("identified_share_pct", "Share of orders with a customer id", "pct"),
)


def _customers_sheet(wb: Workbook, report: Report) -> Worksheet:
    """The period's customer figures, then the RFM segment counts; one line instead when the
    report has none (a daily report, or sales without customer ids)."""
    ws = wb.create_sheet("Customers")
    write_table(ws, (Column("figure", "Figure"), Column("value", "Value")), [])
    ws.freeze_panes = "A2"
    c = report.customers
    if c is None:
        set_text(ws.cell(2, 1), report.customers_note or
                 "Customer figures are in the weekly and monthly reports.")
        return ws
    for r, (key, label, kind) in enumerate(CUSTOMER_FIGURES, start=2):
        set_text(ws.cell(r, 1), label)
        set_value(ws.cell(r, 2), getattr(c, key), kind)
    first = len(CUSTOMER_FIGURES) + 3
    set_text(ws.cell(first, 1), f"RFM segments of all customers on {c.segments_as_of.isoformat()}")
    ws.cell(first, 1).font = Font(bold=True)
    write_table(ws, (Column("segment", "Segment"), Column("customers", "Customers", "int"),
                     Column("share", "Share", "pct")), c.segment_shares(), first_row=first + 1)
    if not c.segments:
        set_text(ws.cell(first + 2, 1), "No RFM segments for that day.")
    ws.column_dimensions["A"].width = max(ws.column_dimensions["A"].width, 48)
    return ws


def build_workbook(report: Report) -> Workbook:
    wb = Workbook()
    cur = report.currency
    _summary_sheet(wb, report)

    rows = trend_rows(report)
    ws = wb.create_sheet("Revenue trend")
    write_table(ws, TREND_SHEET_COLUMNS, rows, currency=cur)
    ws.freeze_panes = "A2"
    if rows:
        ws.auto_filter.ref = f"A1:I{len(rows) + 1}"
        chart = _line_chart("Daily revenue" + (" and forecast" if report.forecast.rows else ""), cur)
        n = len(rows) + 1
        cols = [2, 5, 6, 7] if report.forecast.rows else [2]
        for c in cols:
            chart.add_data(Reference(ws, min_col=c, min_row=1, max_row=n), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=n))
        for s in chart.series[1:]:
            s.graphicalProperties.line.dashStyle = "dash"
        ws.add_chart(chart, "K2")

    ws = _data_sheet(wb, "Top products", report.top_products, cur)
    if report.top_products.rows:
        n = len(report.top_products.rows) + 1
        chart = _bar_chart("Revenue by product", cur)
        chart.add_data(Reference(ws, min_col=4, min_row=1, max_row=n), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=3, min_row=2, max_row=n))
        chart.x_axis.scaling.orientation = "maxMin"
        chart.height, chart.width = max(7.5, 0.7 * n), 18
        ws.add_chart(chart, "H2")

    _customers_sheet(wb, report)
    _data_sheet(wb, "Stock alerts", report.stock_alerts, cur)
    _data_sheet(wb, "Anomalies", report.anomalies, cur)

    ws = _data_sheet(wb, "Expenses", report.expenses, cur)
    if report.expenses.rows:
        n = len(report.expenses.rows) + 1
        chart = _bar_chart(report.expenses.title, cur)
        chart.add_data(Reference(ws, min_col=3, min_row=1, max_row=n), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=2, min_row=2, max_row=n))
        chart.x_axis.scaling.orientation = "maxMin"
        ws.add_chart(chart, "F2")

    ws = _data_sheet(wb, "Net profit", report.profit, cur)
    if report.profit.rows:
        n = len(report.profit.rows) + 1
        chart = _bar_chart("Profit by month", cur, horizontal=False)
        chart.legend = Legend(legendPos="b")
        for c in (3, 4, 5):
            chart.add_data(Reference(ws, min_col=c, min_row=1, max_row=n), titles_from_data=True)
        chart.set_categories(Reference(ws, min_col=1, min_row=2, max_row=n))
        chart.x_axis.number_format = "mmm yyyy"
        ws.add_chart(chart, "G2")

    wb.properties.title = f"{report.title} - {report.period.label}"
    wb.properties.creator = "SalesFlow Pipelines"
    wb.properties.subject = report.shop_name
    return wb


def render_xlsx(report: Report, target: str | Path | BinaryIO) -> None:
    build_workbook(report).save(target)
