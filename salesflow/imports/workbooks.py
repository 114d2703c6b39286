"""The annotated copy of a rejected file and the preview workbook (openpyxl, write-only mode).

Both have the same sheets:

* ``Data``: the file's cells where they were (same rows and column letters), the header row
  in bold, every cell with a problem filled red with the reason in a comment (comments are
  capped at ``MAX_COMMENTS``; the fill is not); the whole row is tinted when the problem has
  no single cell;
* ``Errors``: one line per problem: row, column, header, value, reason;
* ``Summary``: the file, its kind, the counts and what happens next;
* ``Plan`` (preview only): what a commit would do.

Text that a spreadsheet program could run as a formula (starting with ``=`` ``+`` ``-`` ``@``
or a tab or carriage return, unless it is a plain number like ``-5``) is written with a
leading apostrophe, so a hostile cell stays inert in every copy we write. Control characters
that XML cannot hold are replaced, and cells longer than ``MAX_CELL_CHARS`` are cut.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.comments import Comment
from openpyxl.styles import Font, PatternFill

from salesflow.formula_cells import is_formula_like
from salesflow.imports.reading import Grid, column_letter
from salesflow.imports.validation import Issue

MAX_COMMENTS = 500
MAX_ERROR_LINES = 100_000
MAX_CELL_CHARS = 2_000
BAD_FILL = PatternFill("solid", fgColor="FFC7CE")
ROW_FILL = PatternFill("solid", fgColor="FFF2CC")
HEADER_FILL = PatternFill("solid", fgColor="D9E1F2")
BOLD = Font(bold=True)
RED = Font(color="9C0006")
AUTHOR = "SalesFlow import"

_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PLAIN_NUMBER = re.compile(r"^[+-]?\d[\d\s.,]*$")


def neutralise(value: Any) -> Any:
    """A value safe to write into a cell (see the module docstring)."""
    if value is None:
        return None
    if isinstance(value, str):
        text = _ILLEGAL.sub("\ufffd", value)
        if len(text) > MAX_CELL_CHARS:
            text = text[:MAX_CELL_CHARS] + f"... [{len(value):,} characters, cut]"
        if is_formula_like(text) and not _PLAIN_NUMBER.match(text):
            text = "'" + text
        return text
    if isinstance(value, bool) or isinstance(value, (int, float, Decimal, datetime, date, time, timedelta)):
        if isinstance(value, float) and value != value:
            return None
        return value
    if hasattr(value, "to_pydatetime"):
        try:
            return value.to_pydatetime()
        except Exception:  # noqa: BLE001 - NaT
            return None
    return neutralise(str(value))


def _cell(ws, value, *, fill=None, font=None, comment: str | None = None) -> WriteOnlyCell:
    cell = WriteOnlyCell(ws, value=neutralise(value))
    if fill is not None:
        cell.fill = fill
    if font is not None:
        cell.font = font
    if comment:
        c = Comment(neutralise(comment)[:2000], AUTHOR)
        c.width, c.height = 300, 120
        cell.comment = c
    return cell


def write_report(
    path: Path,
    *,
    grid: Grid | None,
    issues: list[Issue],
    summary: list[tuple[str, Any]],
    header_index: int | None = None,
    extra_cells: Iterable[tuple[int, int, str]] = (),
    plan: tuple[list[str], list[list[Any]]] | None = None,
) -> Path:
    """Write the annotated copy (or, with ``plan``, the preview) to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wb = Workbook(write_only=True)

    by_cell: dict[tuple[int, int], list[str]] = {}
    row_only: dict[int, list[str]] = {}
    for issue in issues:
        if issue.row is None:
            continue
        if issue.col_index is None:
            row_only.setdefault(issue.row - 1, []).append(issue.reason)
        else:
            by_cell.setdefault((issue.row - 1, issue.col_index), []).append(issue.reason)
    for r, c, reason in extra_cells:
        by_cell.setdefault((r, c), []).append(reason)
    last_bad_col: dict[int, int] = {}
    for r, c in by_cell:
        last_bad_col[r] = max(last_bad_col.get(r, -1), c)

    sheets = []
    if grid is not None:
        data = wb.create_sheet("Data")
        sheets.append("Data")
        data.freeze_panes = f"A{(header_index or 0) + 2}"
        comments = 0
        for r, row in enumerate(grid.rows):
            width = max(len(row), last_bad_col.get(r, -1) + 1)
            out = []
            for c in range(width):
                value = row[c] if c < len(row) else None
                reasons = by_cell.get((r, c))
                if reasons:
                    note = None
                    if comments < MAX_COMMENTS:
                        note = "\n".join(reasons)
                        comments += 1
                    out.append(_cell(data, value, fill=BAD_FILL, font=RED, comment=note))
                elif r in row_only:
                    out.append(_cell(data, value, fill=ROW_FILL))
                elif header_index is not None and r == header_index:
                    out.append(_cell(data, value, fill=HEADER_FILL, font=BOLD))
                else:
                    out.append(neutralise(value))
            data.append(out)

    errors = wb.create_sheet("Errors")
    sheets.append("Errors")
    for col, width in zip("ABCDE", (8, 8, 24, 30, 90)):
        errors.column_dimensions[col].width = width
    errors.append([_cell(errors, h, font=BOLD, fill=HEADER_FILL)
                   for h in ("Row", "Column", "Header", "Value", "Reason")])
    shown = 0
    for issue in issues:
        if shown >= MAX_ERROR_LINES:
            errors.append([None, None, None, None,
                           f"... and {len(issues) - shown:,} more problems"])
            break
        errors.append([
            issue.row if issue.row is not None else "file",
            column_letter(issue.col_index) if issue.col_index is not None else None,
            neutralise(issue.column),
            neutralise(issue.value),
            neutralise(issue.reason),
        ])
        shown += 1
    if not issues:
        errors.append([None, None, None, None, "no problems found"])

    summary_ws = wb.create_sheet("Summary")
    sheets.append("Summary")
    summary_ws.column_dimensions["A"].width = 22
    summary_ws.column_dimensions["B"].width = 100
    for label, value in summary:
        summary_ws.append([_cell(summary_ws, label, font=BOLD), neutralise(value)])

    if plan is not None:
        header, rows = plan
        plan_ws = wb.create_sheet("Plan")
        sheets.append("Plan")
        plan_ws.append([_cell(plan_ws, h, font=BOLD, fill=HEADER_FILL) for h in header])
        for row in rows:
            plan_ws.append([neutralise(v) for v in row])

    wb.active = sheets.index("Errors") if issues else 0
    tmp = path.with_name(path.name + ".part")
    wb.save(tmp)
    tmp.replace(path)
    return path


def write_text_report(path: Path, lines: list[str]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(_ILLEGAL.sub("?", line) for line in lines) + "\n", encoding="utf-8")
    return path
