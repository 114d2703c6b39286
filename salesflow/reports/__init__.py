"""Scheduled reports: content read from the marts, rendered as PDF and Excel, written to disk.

``write_report(con, kind, as_of, out_root, settings)`` is the one call a report asset needs;
the modules hold the parts: ``content`` (periods and sections), ``charts``, ``pdf``, ``excel``
and ``files`` (paths, retention, previews, the report e-mail).
"""

from salesflow.reports.content import KINDS, Period, Report, load_report, report_period
from salesflow.reports.files import (DEFAULT_KEEP_DAYS, ReportFiles, first_page_png,
                                     keep_days_from_env, kpi_markdown, preview_markdown,
                                     prune_reports, render_pages_png, report_message,
                                     report_paths, write_report)

__all__ = [
    "DEFAULT_KEEP_DAYS", "KINDS", "Period", "Report", "ReportFiles", "first_page_png",
    "keep_days_from_env", "kpi_markdown", "load_report", "preview_markdown", "prune_reports",
    "render_pages_png", "report_message", "report_paths", "report_period", "write_report",
]
