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

from salesflow.exports import write_atomically
from salesflow.mailer import Attachment, build_message
from salesflow.reports.content import KINDS, Report, load_report, section_notes
from salesflow.reports.excel import render_xlsx
from salesflow.reports.fmt import fmt_change, fmt_growth, fmt_value
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


def report_message(files: ReportFiles, *, sender: str, recipients: Sequence[str],
                   message_id: str | None = None) -> EmailMessage:
    """The report e-mail: the KPI summary in the body, the PDF and the workbook attached."""
    r = files.report
    subject = f"{r.shop_name}: {r.title.lower()} {r.period.label}"
    kpis = "\n".join(
        f"  {k.label:<26} {fmt_value(k.current, k.kind, r.currency):>18}   "
        f"{'growth ' + fmt_growth(k.growth_pct) if k.kind != 'pct' else fmt_change(k.change, k.kind)}"
        for k in r.kpis)
    notes = section_notes(r)
    text = (f"{r.title} for {r.shop_name}\n"
            f"Period: {r.period.label} ({r.period.start} to {r.period.end}), compared with "
            f"{r.period.prev_label}.\n\n{kpis}\n\n"
            f"Stock alerts: {len(r.stock_alerts.rows)}; anomalies: {len(r.anomalies.rows)}.\n"
            + ("\n".join(f"Note: {n}" for n in notes) + "\n" if notes else "")
            + f"\nAttached: {files.pdf.name}, {files.xlsx.name}\n")
    return build_message(sender=sender, to=recipients, subject=subject, text=text,
                         attachments=[Attachment.from_path(files.pdf), Attachment.from_path(files.xlsx)],
                         message_id=message_id)
