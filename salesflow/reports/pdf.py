"""The report as a PDF (ReportLab platypus): a cover with the shop, the period, the key
figures against each comparison and why revenue moved, then one section per part of the
report. Tables are ``LongTable``s that repeat their header row on every page they run onto;
every page but the cover carries the shop and the period at the top and "Page X of Y" at the
bottom.

The PDF is for reading, so its long lists (stock alerts, anomalies) show their first
``PDF_TOP_N`` rows, the most urgent, and say how many more the workbook holds; a daily report
stays within a few pages whatever the size of the catalogue."""

from __future__ import annotations

import io
import os
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO, Sequence
from xml.sax.saxutils import escape

import matplotlib
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen import canvas as rl_canvas
from reportlab.platypus import (CondPageBreak, Image, KeepTogether, LongTable, PageBreak,
                                Paragraph, SimpleDocTemplate, Spacer, TableStyle)

from salesflow.reports import charts
from salesflow.reports.content import Column, Report, Table, section_notes, severity_rank
from salesflow.fmt import fmt_change, fmt_growth, fmt_value

PAGE_W, PAGE_H = A4
MARGIN = 16 * mm
FRAME_W = PAGE_W - 2 * MARGIN
NAVY = colors.HexColor("#1f3b63")
LIGHT = colors.HexColor("#eef2f8")
RULE = colors.HexColor("#c5cfdd")
SEVERITY_FILL = {
    0: colors.HexColor("#f8d7da"), 1: colors.HexColor("#fde2c8"),
    2: colors.HexColor("#fff3c4"), 3: colors.HexColor("#dde8f5"),
}


@lru_cache(maxsize=1)
def fonts() -> tuple[str, str]:
    """DejaVu Sans (shipped with matplotlib, covers far more than Latin-1) when it can be
    registered, else Helvetica."""
    folder = os.path.join(matplotlib.get_data_path(), "fonts", "ttf")
    try:
        pdfmetrics.registerFont(TTFont("SalesflowSans", os.path.join(folder, "DejaVuSans.ttf")))
        pdfmetrics.registerFont(TTFont("SalesflowSans-Bold", os.path.join(folder, "DejaVuSans-Bold.ttf")))
        return "SalesflowSans", "SalesflowSans-Bold"
    except Exception:  # a matplotlib build without its fonts
        return "Helvetica", "Helvetica-Bold"


def _styles() -> dict[str, ParagraphStyle]:
    regular, bold = fonts()
    return {
        "cover_kicker": ParagraphStyle("ck", fontName=bold, fontSize=12, leading=15,
                                       textColor=colors.HexColor("#5b6b82")),
        "cover_title": ParagraphStyle("ct", fontName=bold, fontSize=28, leading=34, textColor=NAVY),
        "cover_shop": ParagraphStyle("cs", fontName=regular, fontSize=18, leading=24),
        "cover_meta": ParagraphStyle("cm", fontName=regular, fontSize=10.5, leading=15,
                                     textColor=colors.HexColor("#3d4757")),
        "h1": ParagraphStyle("h1", fontName=bold, fontSize=15, leading=19, textColor=NAVY,
                             spaceBefore=8, spaceAfter=6),
        "h2": ParagraphStyle("h2", fontName=bold, fontSize=11, leading=14, textColor=NAVY,
                             spaceBefore=4, spaceAfter=3),
        "body": ParagraphStyle("b", fontName=regular, fontSize=9.5, leading=13, spaceAfter=4),
        "note": ParagraphStyle("n", fontName=regular, fontSize=8.5, leading=11,
                               textColor=colors.HexColor("#5b6b82"), spaceAfter=4),
        "cell": ParagraphStyle("c", fontName=regular, fontSize=8, leading=10),
        "cell_r": ParagraphStyle("cr", fontName=regular, fontSize=8, leading=10, alignment=TA_RIGHT),
        "head": ParagraphStyle("h", fontName=bold, fontSize=8, leading=10, textColor=colors.white),
        "head_r": ParagraphStyle("hr", fontName=bold, fontSize=8, leading=10,
                                 textColor=colors.white, alignment=TA_RIGHT),
    }


NUMERIC = {"int", "money", "pct", "dec1", "dec3", "num"}
PDF_TOP_N = 15


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    return Paragraph(escape(str(text)), style)


def _col_widths(header: Sequence[str], body: Sequence[Sequence[str]], numeric: Sequence[bool],
                width: float = FRAME_W) -> list[float]:
    """Numbers and short text keep their natural width; long text columns share the rest."""
    regular, bold = fonts()
    natural = []
    for i, head in enumerate(header):
        longest = max([pdfmetrics.stringWidth(r[i], regular, 8) for r in body] or [0])
        head_w = max(pdfmetrics.stringWidth(w, bold, 8) for w in head.split() or [""])
        natural.append(max(longest, head_w) + 12)
    if sum(natural) <= width:
        spare = width - sum(natural)
        text_cols = [i for i, n in enumerate(numeric) if not n] or list(range(len(header)))
        return [w + (spare / len(text_cols) if i in text_cols else 0) for i, w in enumerate(natural)]
    cap = 90.0
    widths = [w if n else min(w, cap) for w, n in zip(natural, numeric)]
    if sum(widths) >= width:
        return [w * width / sum(widths) for w in widths]
    spare = width - sum(widths)
    wants = {i: natural[i] - widths[i] for i in range(len(header)) if natural[i] > widths[i]}
    total = sum(wants.values())
    return [w + (spare * wants[i] / total if i in wants else 0) for i, w in enumerate(widths)]


def grid(header: Sequence[str], body: Sequence[Sequence[str]], numeric: Sequence[bool], *,
         fills: dict[tuple[int, int], colors.Color] | None = None,
         width: float = FRAME_W) -> LongTable:
    """A table that breaks across pages with its header row repeated."""
    st = _styles()
    widths = _col_widths(header, body, numeric, width)
    data = [[_p(h, st["head_r"] if n else st["head"]) for h, n in zip(header, numeric)]]
    data += [[_p(v, st["cell_r"] if n else st["cell"]) for v, n in zip(row, numeric)] for row in body]
    table = LongTable(data, colWidths=widths, repeatRows=1, hAlign="LEFT")
    style = [
        ("BACKGROUND", (0, 0), (-1, 0), NAVY),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("LINEBELOW", (0, 0), (-1, -1), 0.25, RULE),
        ("TOPPADDING", (0, 0), (-1, -1), 2.5), ("BOTTOMPADDING", (0, 0), (-1, -1), 2.5),
        ("LEFTPADDING", (0, 0), (-1, -1), 4), ("RIGHTPADDING", (0, 0), (-1, -1), 4),
    ]
    for r in range(2, len(data), 2):
        style.append(("BACKGROUND", (0, r), (-1, r), LIGHT))
    for (r, c), fill in (fills or {}).items():
        style.append(("BACKGROUND", (c, r + 1), (c, r + 1), fill))
    table.setStyle(TableStyle(style))
    return table


def table_flowable(table: Table, currency: str, columns: Sequence[Column] | None = None,
                   *, severity_key: str | None = None) -> LongTable:
    cols = list(columns or table.columns)
    index = {c.key: i for i, c in enumerate(table.columns)}
    body = [[fmt_value(row[index[c.key]], c.kind, currency) for c in cols] for row in table.rows]
    fills = {}
    if severity_key is not None and severity_key in [c.key for c in cols]:
        ci = [c.key for c in cols].index(severity_key)
        for r, row in enumerate(table.rows):
            fill = SEVERITY_FILL.get(severity_rank(row[index[severity_key]]))
            if fill is not None:
                fills[(r, ci)] = fill
    return grid([c.label for c in cols], body, [c.kind in NUMERIC for c in cols], fills=fills)


def _image(png: bytes, width: float = FRAME_W) -> Image:
    img = Image(io.BytesIO(png))
    ratio = img.imageHeight / img.imageWidth
    return Image(io.BytesIO(png), width=width, height=width * ratio)


def _kpi_change(kpi, currency: str) -> str:
    """Growth in percent; for the two percentages (which have no growth) the change in points."""
    if kpi.kind == "pct":
        return fmt_change(kpi.change, kpi.kind, currency)
    return fmt_growth(kpi.growth_pct)


def kpi_table(report: Report) -> LongTable:
    """The key figures: this period, then each comparison's value and the change against it
    (with a "Change" column in money or counts as well when there is one comparison only)."""
    cur = report.currency
    comps = report.comparisons
    header = ["Figure", "This period"]
    for c in comps:
        header += [c.label, "Change" if len(comps) == 1 else "Growth"]
        if len(comps) == 1:
            header.append("Growth")
    body = []
    for k in report.kpis:
        row = [k.label, fmt_value(k.current, k.kind, cur)]
        for c in comps:
            ck = c.kpi(k.key)
            if len(comps) == 1:
                row += [fmt_value(ck.value, k.kind, cur), fmt_change(ck.change, k.kind, cur),
                        fmt_growth(ck.growth_pct)]
            else:
                row += [fmt_value(ck.value, k.kind, cur), _kpi_change(ck, cur)]
        body.append(row)
    return grid(header, body, [False] + [True] * (len(header) - 1))


def _more_line(shown: int, total: int, what: str, sheet: str, st) -> list:
    if total <= shown:
        return []
    return [Spacer(1, 1.5 * mm), Paragraph(escape(
        f"and {total - shown:,} more {what} - the full list of {total:,} is in the workbook "
        f"(sheet '{sheet}')."), st["body"])]


def _head(table: Table, n: int) -> Table:
    return Table(table.title, table.columns, table.rows[:n], table.note)


STOCK_PDF_COLUMNS = ("severity", "status", "sku", "product_name", "stock_quantity",
                     "days_of_cover", "reorder_qty", "sales_per_day")


def _status_words(status) -> str:
    """OUT_OF_STOCK as "Out of stock"; OK stays OK."""
    text = str(status)
    return text if text == "OK" else text.replace("_", " ").capitalize()


def _stock_flowable(report: Report, limit: int) -> LongTable:
    """The first ``limit`` stock alerts with the columns a reader acts on (the workbook has
    threshold and average units as well); statuses in words so that they fit their column."""
    t = report.stock_alerts
    cols = [c for c in t.columns if c.key in STOCK_PDF_COLUMNS]
    status = [c.key for c in t.columns].index("status")
    rows = [tuple(_status_words(v) if i == status and v else v for i, v in enumerate(row))
            for row in t.rows[:limit]]
    return table_flowable(Table(t.title, t.columns, rows), report.currency, cols,
                          severity_key="severity")


def _customers_block(report: Report, st) -> list:
    c = report.customers
    if c is None:
        return [Paragraph(escape(report.customers_note or "No customer figures."), st["body"])]
    body = [
        ["Customers who bought", fmt_value(c.customers, "int")],
        ["New (first purchase in the period)", fmt_value(c.new_customers, "int")],
        ["Returning (bought before)", fmt_value(c.returning_customers, "int")],
        ["Repeat rate (2+ orders in the period)", fmt_value(c.repeat_rate_pct, "pct")],
        ["Orders with a customer id", f"{fmt_value(c.identified_orders, 'int')} of "
                                      f"{fmt_value(c.orders, 'int')} ({fmt_value(c.identified_share_pct, 'pct')})"],
    ]
    out: list = [grid(["Figure", "Value"], body, [False, True], width=FRAME_W * 0.65)]
    if c.segments:
        out += [Spacer(1, 3 * mm), Paragraph(escape(
            f"RFM segments of all customers on {c.segments_as_of.isoformat()}"), st["body"])]
        out.append(grid(["Segment", "Customers", "Share"],
                        [[name, fmt_value(n, "int"), fmt_value(share, "pct")]
                         for name, n, share in c.segment_shares()], [False, True, True],
                        width=FRAME_W * 0.65))
    else:
        out.append(Paragraph(escape(f"No RFM segments for {c.segments_as_of.isoformat()} "
                                    "(marts.customer_rfm has none for that day)."), st["note"]))
    return out


class _NumberedCanvas(rl_canvas.Canvas):
    """Draws "Page X of Y" once the page count is known."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pages: list[dict] = []

    def showPage(self):  # noqa: N802 - ReportLab's name
        self._pages.append(dict(self.__dict__))
        self._startPage()

    def save(self):
        total = len(self._pages)
        regular, _bold = fonts()
        for state in self._pages:
            self.__dict__.update(state)
            self.setFont(regular, 8)
            self.setFillColor(colors.HexColor("#5b6b82"))
            self.drawRightString(PAGE_W - MARGIN, 9 * mm, f"Page {self._pageNumber} of {total}")
            super().showPage()
        super().save()


def _cover_page(c, _doc) -> None:
    c.saveState()
    c.setFillColor(NAVY)
    c.rect(0, PAGE_H - 28 * mm, PAGE_W, 28 * mm, stroke=0, fill=1)
    c.setFillColor(colors.HexColor("#e07b00"))
    c.rect(0, PAGE_H - 30 * mm, PAGE_W, 2 * mm, stroke=0, fill=1)
    c.setFillColor(colors.white)
    c.setFont(fonts()[1], 13)
    c.drawString(MARGIN, PAGE_H - 17 * mm, "SalesFlow")
    c.restoreState()


def _later_pages(report: Report):
    regular, bold = fonts()

    def draw(c, _doc) -> None:
        c.saveState()
        c.setStrokeColor(RULE)
        c.setLineWidth(0.5)
        c.line(MARGIN, PAGE_H - 11 * mm, PAGE_W - MARGIN, PAGE_H - 11 * mm)
        c.setFont(bold, 8.5)
        c.setFillColor(NAVY)
        c.drawString(MARGIN, PAGE_H - 9.5 * mm, report.shop_name)
        c.setFont(regular, 8.5)
        c.drawRightString(PAGE_W - MARGIN, PAGE_H - 9.5 * mm,
                          f"{report.title} - {report.period.label}")
        c.line(MARGIN, 12 * mm, PAGE_W - MARGIN, 12 * mm)
        c.setFont(regular, 8)
        c.setFillColor(colors.HexColor("#5b6b82"))
        c.drawString(MARGIN, 9 * mm, f"Generated {report.generated_at:%Y-%m-%d %H:%M %Z}")
        c.restoreState()
    return draw


def _section(title: str, st, room: float = 60 * mm) -> list:
    """A heading, on a new page when less than ``room`` is left on this one."""
    return [CondPageBreak(room), Paragraph(escape(title), st["h1"])]


def _anomaly_flowable(report: Report, limit: int):
    """The first ``limit`` anomalies: the day, the series, how bad, observed against expected
    and what it is. The expected band, score and direction are in the workbook; left out here so
    that the note, the part a reader acts on, has the width to read in a few lines."""
    body, fills = [], {}
    for r, rec in enumerate(report.anomalies.records()[:limit]):
        body.append([fmt_value(rec["ds"], "date"), str(rec["series_id"]), str(rec["severity"] or ""),
                     fmt_value(rec["observed"], "num"), fmt_value(rec["expected"], "num"),
                     " ".join(str(x) for x in (rec["kind"], rec["note"]) if x)])
        fill = SEVERITY_FILL.get(severity_rank(rec["severity"]))
        if fill is not None:
            fills[(r, 2)] = fill
    return grid(["Date", "Series", "Severity", "Observed", "Expected", "Note"], body,
                [False, False, False, True, True, False], fills=fills)


def build_story(report: Report) -> list:
    st = _styles()
    p = report.period
    story: list = [
        Spacer(1, 26 * mm),
        Paragraph(escape(report.title.upper()), st["cover_kicker"]),
        Paragraph(escape(p.label), st["cover_title"]),
        Spacer(1, 2 * mm),
        Paragraph(escape(report.shop_name), st["cover_shop"]),
        Spacer(1, 4 * mm),
        Paragraph(escape(f"Period: {p.start.isoformat()} to {p.end.isoformat()} ({p.days} "
                         f"day{'s' if p.days != 1 else ''})"), st["cover_meta"]),
        *[Paragraph(escape(f"Compared with {c.label.lower()}: {c.span_label}"
                           + ("" if c.start == c.end else
                              f" ({c.start.isoformat()} to {c.end.isoformat()})")
                           + ("" if c.available else " - no sales data for it")), st["cover_meta"])
          for c in report.comparisons],
        Paragraph(escape(f"Currency: {report.currency} - generated "
                         f"{report.generated_at:%Y-%m-%d %H:%M %Z}"), st["cover_meta"]),
        Spacer(1, 10 * mm),
        Paragraph("Key figures", st["h1"]),
        kpi_table(report),
        Spacer(1, 4 * mm),
    ]
    if report.explanation:
        story.append(Paragraph("Why revenue moved", st["h2"]))
        story += [Paragraph(escape(line), st["body"]) for line in report.explanation]
        story.append(Spacer(1, 2 * mm))
    counts = {k: v for k, v in report.stock_counts.items() if v}
    headline = (f"{len(report.stock_alerts.rows)} stock alert(s), "
                f"{len(report.anomalies.rows)} anomal{'y' if len(report.anomalies.rows) == 1 else 'ies'} "
                "in this report.")
    story.append(Paragraph(escape(headline), st["body"]))
    story.append(PageBreak())

    story += _section("Revenue trend", st)
    story.append(_image(charts.revenue_trend_png(report)))
    if report.forecast.rows:
        story.append(Paragraph(escape(
            f"Forecast made on {report.forecast_as_of.isoformat()} with model "
            f"{report.forecast_model}; shaded bands are its 80 % and 95 % intervals."), st["note"]))
    else:
        story.append(Paragraph(escape(report.forecast.note or ""), st["note"]))

    story += _section("Top products", st)
    png = charts.top_products_png(report)
    if png:
        story.append(_image(png, FRAME_W * 0.9))
        story.append(Spacer(1, 3 * mm))
        story.append(table_flowable(report.top_products, report.currency))
    else:
        story.append(Paragraph(escape(report.top_products.note or ""), st["body"]))

    if report.kind != "daily":
        story += _section("Customers", st)
        story += _customers_block(report, st)

    story += _section("Stock alerts", st)
    if counts:
        story.append(Paragraph(escape("Catalogue by status: " + ", ".join(
            f"{_status_words(k)} {v:,}" for k, v in counts.items())), st["note"]))
    if report.stock_alerts.rows:
        rows = report.stock_alerts.rows
        if len(rows) > PDF_TOP_N:
            story.append(Paragraph(escape(
                f"The {PDF_TOP_N} most urgent of {len(rows):,}: most severe first, then the products "
                "that sell the most a day."), st["note"]))
        story.append(_stock_flowable(report, PDF_TOP_N))
        story += _more_line(PDF_TOP_N, len(rows), "products needing attention", "Stock alerts", st)
    else:
        story.append(Paragraph(escape(report.stock_alerts.note or ""), st["body"]))

    story += _section("Anomalies", st)
    if report.anomalies.rows:
        n = len(report.anomalies.rows)
        if n > PDF_TOP_N:
            story.append(Paragraph(escape(
                f"The {PDF_TOP_N} most severe of {n:,}."), st["note"]))
        story.append(_anomaly_flowable(report, PDF_TOP_N))
        story += _more_line(PDF_TOP_N, n, "anomalies", "Anomalies", st)
    else:
        story.append(Paragraph(escape(report.anomalies.note or ""), st["body"]))

    story += _section("Expenses and net profit", st)
    if report.has_expenses:
        png = charts.expenses_png(report)
        block = [Paragraph(escape(report.expenses.title), st["body"])]
        if report.expenses.rows:
            block.append(table_flowable(_head(report.expenses, PDF_TOP_N), report.currency))
            block += _more_line(PDF_TOP_N, len(report.expenses.rows), "expense categories",
                                "Expenses", st)
        else:
            block.append(Paragraph(escape(report.expenses.note or ""), st["note"]))
        story.append(KeepTogether(block))
        if png:
            story.append(Spacer(1, 3 * mm))
            story.append(_image(png, FRAME_W * 0.8))
        story.append(Spacer(1, 3 * mm))
        story.append(Paragraph(escape(report.profit.title), st["body"]))
        if report.profit.rows:
            story.append(table_flowable(report.profit, report.currency))
        else:
            story.append(Paragraph(escape(report.profit.note or ""), st["note"]))
    else:
        story.append(Paragraph("No expenses have been imported yet, so net profit is not shown. "
                               "Gross profit is in the key figures.", st["body"]))

    notes = section_notes(report)
    if notes:
        story += _section("Notes", st, room=(12 + 5 * len(notes)) * mm)
        story += [Paragraph(escape(n), st["note"]) for n in notes]
    return story


def render_pdf(report: Report, target: str | Path | BinaryIO) -> None:
    """Write the report as a PDF to a path or a binary file object."""
    out = str(target) if isinstance(target, Path) else target
    doc = SimpleDocTemplate(
        out, pagesize=A4, leftMargin=MARGIN, rightMargin=MARGIN, topMargin=16 * mm,
        bottomMargin=16 * mm, title=f"{report.title} - {report.period.label}",
        author=report.shop_name, subject=f"{report.shop_name} {report.kind} report",
        creator="SalesFlow Pipelines",
    )
    doc.build(build_story(report), onFirstPage=_cover_page, onLaterPages=_later_pages(report),
              canvasmaker=_NumberedCanvas)
