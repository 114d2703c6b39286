"""Report files on disk: stable names, atomic writes, retention, previews and the report e-mail.

Layout under the reports root (``exports/reports``)::

    <kind>/<YYYY-MM-DD>/salesflow-<kind>-<YYYY-MM-DD>.pdf
    <kind>/<YYYY-MM-DD>/salesflow-<kind>-<YYYY-MM-DD>.xlsx

where the date is the report's as-of day. Rerunning a report replaces its two files; each is
written under a hidden temporary name and moved into place, so a reader never sees half a file.

Retention (``prune_reports``) goes by the as-of day in the folder name: a report folder is
removed once its day is more than ``keep_days`` days before ``today``. Only folders named as
above are touched.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Mapping, Sequence

import duckdb

from salesflow.email_render import render
from salesflow.exports import write_atomically
from salesflow.mailer import Attachment, build_message
from salesflow.reports.content import KINDS, Report, load_report
from salesflow.reports.excel import render_xlsx
from salesflow.reports.charts import revenue_trend_png
from salesflow.fmt import NA, fmt_change, fmt_growth, fmt_value
from salesflow.reports.pdf import render_pdf
from salesflow.settings import ShopSettings, whole_days_from_env

DEFAULT_KEEP_DAYS = 90
_DAY_FOLDER = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@dataclass(frozen=True)
class ReportFiles:
    kind: str
    as_of: date
    folder: Path
    pdf: Path
    xlsx: Path
    report: Report


def report_paths(out_root: str | Path, kind: str, as_of: date) -> tuple[Path, Path, Path]:
    """(folder, pdf, xlsx) of the ``kind`` report for ``as_of``."""
    if kind not in KINDS:
        raise ValueError(f"unknown report kind {kind!r}; expected one of {', '.join(KINDS)}")
    day = as_of.isoformat()
    folder = Path(out_root) / kind / day
    stem = f"salesflow-{kind}-{day}"
    return folder, folder / f"{stem}.pdf", folder / f"{stem}.xlsx"


def write_report(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    as_of: date,
    out_root: str | Path,
    settings: ShopSettings | None = None,
    *,
    now: datetime | None = None,
) -> ReportFiles:
    """Load the ``kind`` report for ``as_of`` and write its PDF and workbook."""
    folder, pdf_path, xlsx_path = report_paths(out_root, kind, as_of)
    report = load_report(con, kind, as_of, settings, now=now)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomically(pdf_path, lambda p: render_pdf(report, p))
    write_atomically(xlsx_path, lambda p: render_xlsx(report, p))
    return ReportFiles(kind, as_of, folder, pdf_path, xlsx_path, report)


def prune_reports(root: str | Path, keep_days: int, today: date) -> list[Path]:
    """Remove report folders whose as-of day is before ``today - keep_days``; returns them."""
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1, got {keep_days}")
    cutoff = today - timedelta(days=keep_days)
    removed = []
    for kind in KINDS:
        base = Path(root) / kind
        if not base.is_dir():
            continue
        for folder in sorted(base.iterdir()):
            if not folder.is_dir() or folder.is_symlink() or not _DAY_FOLDER.match(folder.name):
                continue
            try:
                day = date.fromisoformat(folder.name)
            except ValueError:
                continue
            if day < cutoff:
                shutil.rmtree(folder)
                removed.append(folder)
    return removed


def keep_days_from_env(environ: Mapping[str, str] | None = None) -> int:
    """``SALESFLOW_REPORTS_KEEP_DAYS``, default ``DEFAULT_KEEP_DAYS``."""
    return whole_days_from_env("SALESFLOW_REPORTS_KEEP_DAYS", DEFAULT_KEEP_DAYS, environ=environ)


def pdftoppm_available() -> bool:
    return shutil.which("pdftoppm") is not None


def render_pages_png(pdf_path: str | Path, out_dir: str | Path, *, dpi: int = 50,
                     first: int | None = None, last: int | None = None) -> list[Path]:
    """Every page (or ``first``..``last``) as ``page-N.png`` in ``out_dir``, through pdftoppm."""
    exe = shutil.which("pdftoppm")
    if exe is None:
        raise FileNotFoundError("pdftoppm is not installed (Debian/Ubuntu: apt-get install poppler-utils)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "-png", "-r", str(dpi)]
    if first is not None:
        cmd += ["-f", str(first)]
    if last is not None:
        cmd += ["-l", str(last)]
    subprocess.run([*cmd, str(pdf_path), str(out_dir / "page")], check=True, timeout=120,
                   capture_output=True)
    pages = list(out_dir.glob("page-*.png"))
    return sorted(pages, key=lambda p: int(p.stem.rsplit("-", 1)[1]))


def first_page_png(pdf_path: str | Path, *, width_px: int = 800) -> bytes | None:
    """The first page as PNG bytes, ``width_px`` wide; None when pdftoppm is not installed or
    cannot read the file."""
    exe = shutil.which("pdftoppm")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory(prefix="salesflow-preview-") as tmp:
        out = Path(tmp) / "preview"
        try:
            subprocess.run([exe, "-png", "-f", "1", "-l", "1", "-singlefile", "-scale-to-x",
                            str(width_px), "-scale-to-y", "-1", str(pdf_path), str(out)],
                           check=True, timeout=60, capture_output=True)
        except (subprocess.SubprocessError, OSError):
            return None
        png = out.with_suffix(".png")
        return png.read_bytes() if png.exists() else None


def _md_cell(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace("|", "\\|").replace("\n", " "))


def kpi_markdown(report: Report) -> str:
    """The KPI summary as a markdown table, headed by the shop and the period."""
    p = report.period
    lines = [
        f"**{_md_cell(report.shop_name)}** - {report.title}, {_md_cell(p.label)} "
        f"(compared with {_md_cell(p.prev_label)})",
        "",
        "| Figure | This period | Previous period | Change | Growth |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for k in report.kpis:
        lines.append(
            f"| {k.label} | {fmt_value(k.current, k.kind, report.currency)} | "
            f"{fmt_value(k.previous, k.kind, report.currency)} | "
            f"{fmt_change(k.change, k.kind, report.currency)} | {fmt_growth(k.growth_pct)} |")
    lines += ["", f"Stock alerts: {len(report.stock_alerts.rows)}; anomalies: "
                  f"{len(report.anomalies.rows)}."]
    return "\n".join(lines)


def preview_markdown(files: ReportFiles, *, width_px: int = 480) -> str:
    """Markdown for the run's UI: the first PDF page as an inline image (when pdftoppm is
    installed), then the KPI table."""
    md = kpi_markdown(files.report)
    png = first_page_png(files.pdf, width_px=width_px)
    if png is None:
        return md
    data = base64.b64encode(png).decode("ascii")
    return f"![First page of {files.pdf.name}](data:image/png;base64,{data})\n\n{md}"


EMAIL_TOP_N = 5
# KPI cards of the report e-mail, in order; the margin pair only where some cost is known
CARD_KEYS = ("revenue", "orders", "avg_order_value", "units", "gross_profit", "gross_margin_pct")
STATUS_WORDS = {"OUT_OF_STOCK": "out of stock", "LOW": "low", "DEAD": "not selling",
                "OVERSTOCK": "overstock", "OK": "cover short"}


def _tone(change) -> str:
    if change is None or change == 0:
        return ""
    return "up" if change > 0 else "down"


def _change_text(kpi, currency: str) -> str:
    if kpi.kind == "pct":
        return fmt_change(kpi.change, "pct")
    if kpi.growth_pct is not None:
        return fmt_growth(kpi.growth_pct)
    if kpi.change is not None and kpi.previous is not None:
        return fmt_change(kpi.change, kpi.kind, currency)
    return NA


def _cards(r: Report) -> list[dict]:
    kpis = {k.key: k for k in r.kpis}
    margin_known = kpis.get("gross_margin_pct") is not None and kpis["gross_margin_pct"].current is not None
    cards = []
    for key in CARD_KEYS:
        k = kpis.get(key)
        if k is None or (key in ("gross_profit", "gross_margin_pct") and not margin_known):
            continue
        cards.append({"key": key, "label": k.label, "value": fmt_value(k.current, k.kind, r.currency),
                      "change": _change_text(k, r.currency), "tone": _tone(k.change)})
    return cards


def _comparison_rows(r: Report) -> list[list[str]]:
    rows = []
    for comp in r.comparisons:
        revenue = comp.kpi("revenue")
        if not comp.available:
            rows.append([f"{comp.label} ({comp.span_label})", "no figures", NA])
            continue
        rows.append([f"{comp.label} ({comp.span_label})", fmt_value(revenue.value, "money", r.currency),
                     fmt_growth(revenue.growth_pct) if revenue.growth_pct is not None
                     else fmt_change(revenue.change, "money", r.currency)])
    return rows


def _top_rows(r: Report, n: int) -> list[dict]:
    return [{"name": rec["product_name"], "sku": rec["sku"],
             "revenue": fmt_value(rec["revenue"], "money", r.currency),
             "units": fmt_value(rec["units"], "int"),
             "share": fmt_value(rec["revenue_share"], "pct")}
            for rec in r.top_products.records()[:n]]


def _stock_rows(r: Report, n: int) -> list[dict]:
    out = []
    for rec in r.stock_alerts.records()[:n]:
        cover = rec.get("days_of_cover") if rec.get("stock_quantity") else None
        out.append({
            "name": rec["product_name"], "sku": rec["sku"],
            "status": STATUS_WORDS.get(str(rec.get("status")), str(rec.get("status") or "").lower()),
            "severity": str(rec.get("severity") or "none").lower(),
            "stock": fmt_value(rec.get("stock_quantity"), "int"),
            "cover": None if cover is None else f"{fmt_value(cover, 'dec1')} days",
            "reorder": fmt_value(rec.get("reorder_qty"), "int") if rec.get("reorder_qty") else "",
        })
    return out


def _customers(r: Report) -> dict | None:
    c = r.customers
    if c is None:
        return None
    return {
        "cards": [
            {"label": "Customers", "value": fmt_value(c.customers, "int")},
            {"label": "Repeat rate", "value": fmt_value(c.repeat_rate_pct, "pct")},
            {"label": "New", "value": fmt_value(c.new_customers, "int")},
            {"label": "Returning", "value": fmt_value(c.returning_customers, "int")},
        ],
        "segments": [(name, fmt_value(n, "int")) for name, n in c.segments],
        "segments_as_of": c.segments_as_of.isoformat(),
        "identified": (None if c.identified_share_pct is None
                       else fmt_value(c.identified_share_pct, "pct")),
    }


def report_context(files: ReportFiles, *, unsubscribe: str | None = None,
                   chart_cid: str | None = "trend", top_n: int = EMAIL_TOP_N) -> dict:
    """What the report e-mail shows, taken from the written report (the figures of its PDF and
    workbook, nothing read again)."""
    r = files.report
    p = r.period
    main = r.comparisons[0] if r.comparisons else None
    kpis = {k.key: k for k in r.kpis}
    coverage = kpis.get("cost_coverage_pct")
    coverage_note = None
    if (coverage is not None and coverage.current is not None and coverage.current < 100
            and kpis.get("gross_margin_pct") and kpis["gross_margin_pct"].current is not None):
        coverage_note = (f"Gross profit and margin cover the {fmt_value(coverage.current, 'pct')} "
                         "of revenue whose cost is known.")
    revenue = kpis.get("revenue")
    preheader = (f"Revenue {fmt_value(revenue.current, 'money', r.currency)}, "
                 f"{_change_text(revenue, r.currency)}"
                 + (f" vs {main.label.lower()}" if main else "")) if revenue else r.title
    stock_total = len(r.stock_alerts.rows)
    top_total = len(r.top_products.rows)
    return {
        "title": f"{r.title}: {p.label}",
        "subtitle": r.shop_name,
        "shop_name": r.shop_name,
        "preheader": preheader,
        "unsubscribe": unsubscribe,
        "kind": r.kind,
        "period": f"{p.start.isoformat()} to {p.end.isoformat()}" if p.start != p.end else p.start.isoformat(),
        "compared_with": (f"{main.label.lower()}, {main.span_label}" if main else p.prev_label),
        "cards": _cards(r),
        "kpis": [(k.label, fmt_value(k.current, k.kind, r.currency), _change_text(k, r.currency))
                 for k in r.kpis],
        "coverage_note": coverage_note,
        "explanation": list(r.explanation),
        "comparisons": _comparison_rows(r),
        "chart_cid": chart_cid,
        "chart_alt": ("Daily revenue" + (" and forecast" if r.forecast.rows else "")
                      + f" up to {p.as_of.isoformat()}"),
        "top": _top_rows(r, top_n),
        "top_more": max(0, top_total - top_n),
        "top_note": r.top_products.note,
        "stock": _stock_rows(r, top_n),
        "stock_more": max(0, stock_total - top_n),
        "stock_note": r.stock_alerts.note,
        "anomalies": len(r.anomalies.rows),
        "customers": _customers(r),
        "customers_note": r.customers_note,
        "notes": list(r.notes),
        "attachments": [files.pdf.name, files.xlsx.name],
        "currency": r.currency,
    }


def report_message(files: ReportFiles, *, sender: str, recipients: Sequence[str],
                   message_id: str | None = None, unsubscribe: str | None = None) -> EmailMessage:
    """The report e-mail: the key figures, why revenue moved, the revenue trend as an inline
    image, the top products and the stock to act on, with the PDF and the workbook attached."""
    r = files.report
    subject = f"{r.shop_name}: {r.title.lower()} {r.period.label}"
    # drawn small and at a high resolution, so its labels stay readable on a 375 px screen
    chart = revenue_trend_png(r, width_in=5.2, height_in=3.3, dpi=200)
    body = render("report", **report_context(files, unsubscribe=unsubscribe, chart_cid="trend"))
    return build_message(sender=sender, to=recipients, subject=subject, text=body.text,
                         html=body.html, inline_images={"trend": chart},
                         attachments=[Attachment.from_path(files.pdf), Attachment.from_path(files.xlsx)],
                         message_id=message_id)
