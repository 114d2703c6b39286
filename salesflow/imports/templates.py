"""Empty, documented templates for every kind: ``<kind>.xlsx``, ``<kind>.csv`` and a README.

The xlsx template has the data sheet named after the kind (header row only, each header
cell with a comment describing the column, sku and id columns formatted as text so that
leading zeros survive, date columns formatted as dates) and an ``About`` sheet with the
kind's rules and every column's accepted names. The CSV template is the header row in UTF-8
with a byte-order mark (so that Excel opens it as UTF-8).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill

from salesflow.imports.kinds import DATE, KINDS, TEXT, TIME, Kind
from salesflow.imports.reading import DEFAULT_LIMITS, Limits, column_letter

TYPE_WORDS = {
    "text": "text", "int": "whole number", "money": "amount (2 decimals at most)",
    "date": "date", "time": "time of day", "email": "e-mail address",
}


def _version(limits: Limits) -> str:
    h = hashlib.sha256(repr((sorted((k, v.columns, v.doc) for k, v in KINDS.items()), limits)).encode())
    return h.hexdigest()[:16]


def ensure_templates(folder: Path, limits: Limits = DEFAULT_LIMITS) -> list[Path]:
    """Write the templates when missing or out of date; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = folder / ".version"
    version = _version(limits)
    expected = [folder / f"{k}.{ext}" for k in KINDS for ext in ("xlsx", "csv")] + [folder / "README.md"]
    if stamp.exists() and stamp.read_text().strip() == version and all(p.exists() for p in expected):
        return []
    written = []
    for kind in KINDS.values():
        written.append(write_xlsx_template(kind, folder / f"{kind.name}.xlsx", limits))
        written.append(write_csv_template(kind, folder / f"{kind.name}.csv"))
    readme = folder / "README.md"
    readme.write_text(readme_text(limits), encoding="utf-8")
    written.append(readme)
    stamp.write_text(version + "\n")
    return written


def write_csv_template(kind: Kind, path: Path) -> Path:
    path.write_bytes(("\ufeff" + ",".join(c.name for c in kind.columns) + "\r\n").encode("utf-8"))
    return path


def write_xlsx_template(kind: Kind, path: Path, limits: Limits = DEFAULT_LIMITS) -> Path:
    wb = Workbook()
    ws = wb.active
    ws.title = kind.name
    bold = Font(bold=True)
    fill = PatternFill("solid", fgColor="D9E1F2")
    for j, col in enumerate(kind.columns):
        cell = ws.cell(row=1, column=j + 1, value=col.name)
        cell.font = bold
        cell.fill = fill
        note = f"{'Required' if col.required else 'Optional'}: {col.doc}\nExample: {col.example}"
        comment = Comment(note, "SalesFlow")
        comment.width, comment.height = 320, 110
        cell.comment = comment
        letter = column_letter(j)
        ws.column_dimensions[letter].width = max(14, len(col.name) + 4)
        fmt = None
        if col.type == TEXT and (col.sku or col.name.endswith("_id") or col.name in ("sale_ref", "phone")):
            fmt = "@"
        elif col.type == DATE:
            fmt = "yyyy-mm-dd"
        elif col.type == TIME:
            fmt = "hh:mm"
        if fmt:
            ws.column_dimensions[letter].number_format = fmt
    ws.freeze_panes = "A2"

    about = wb.create_sheet("About")
    about.column_dimensions["A"].width = 22
    about.column_dimensions["B"].width = 12
    about.column_dimensions["C"].width = 22
    about.column_dimensions["D"].width = 70
    about.column_dimensions["E"].width = 18
    about.column_dimensions["F"].width = 60
    wrap = Alignment(wrap_text=True, vertical="top")
    about.append([f"{kind.title} ({kind.name})"])
    about["A1"].font = Font(bold=True, size=14)
    about.append([kind.doc])
    about.append([f"Fill in the '{kind.name}' sheet from row 2, one line per row; keep the "
                  "header row. Save as .xlsx and drop the file into the inbox folder "
                  f"(name it {kind.name}_<anything>.xlsx)."])
    about.append([f"Limits: {limits.max_rows:,} rows, {limits.max_columns} columns, "
                  f"{limits.max_xlsx_bytes >> 20} MB per workbook. No formulas, merged cells "
                  "or hidden sheets: such files are rejected."])
    about.append([])
    about.append(["column", "required", "type", "meaning", "example", "also accepted as"])
    for cell in about[6]:
        cell.font = bold
        cell.fill = fill
    for col in kind.columns:
        about.append([col.name, "yes" if col.required else "no", TYPE_WORDS[col.type], col.doc,
                      col.example, ", ".join(col.synonyms)])
        for cell in about[about.max_row]:
            cell.alignment = wrap
    wb.active = 0
    wb.save(path)
    return path


def readme_text(limits: Limits = DEFAULT_LIMITS) -> str:
    lines = [
        "# Import templates",
        "",
        "Drop a filled-in template (or any .xlsx / .csv with these columns) into `inbox/`.",
        "The file is checked, then committed when it has no problem at all; otherwise it goes",
        "to `rejected/` with an annotated copy (`<name>.errors.xlsx`: bad cells in red, the",
        "reason in a comment, an Errors sheet with every problem's row, column and reason).",
        "Committed files go to `processed/`. In review mode a clean file waits in",
        "`inbox/pending/` next to its preview (`<name>.preview.xlsx`); move the file to",
        "`inbox/approved/` to commit it.",
        "",
        "## Rules for every file",
        "",
        "- `.xlsx` (the first sheet, or a sheet named after the kind) or `.csv` (UTF-8, "
        "UTF-16 with a byte-order mark, or Windows-1252; comma, semicolon, tab or | "
        "separated).",
        f"- At most {limits.max_rows:,} data rows and {limits.max_columns} columns; "
        f"workbooks up to {limits.max_xlsx_bytes >> 20} MB, CSV up to "
        f"{limits.max_csv_bytes >> 20} MB. Split bigger files.",
        "- Row 1 names the columns (a few title rows above the header are tolerated). Header "
        "names are matched without regard to case, spaces or accents, and common synonyms "
        "are accepted (`Qty`, `Unit Price`, `Receipt #`...). A column named twice is refused.",
        "- The kind is recognised from the header; start the file name with the kind "
        "(`stock_counts_june.xlsx`) when two kinds share columns (a `sku, qty` file could be "
        "sales or stock counts).",
        "- Refused: formulas (paste values), merged cells, hidden sheets, password-protected "
        "or macro workbooks, legacy .xls, files whose content does not match their extension, "
        "control characters, cells over 32,767 characters.",
        "- Numbers: `1234`, `1,234`, `1 234` for whole numbers; amounts with a point or a "
        "comma as the decimal separator (`12.50`, `12,50`, `1,234.50`, `1.234,50`). "
        "`1,234` or `1.234` as an amount is ambiguous and refused, as are more than two "
        "decimals.",
        "- Dates: Excel dates, `2025-03-07`, `07.03.2025`, `7 Mar 2025`; `07/03/2025` only "
        "when some date in the same column shows the order (a first or second part above 12). "
        "No dates in the future or before 2000.",
        "- A file with the same content as one already committed is not imported again.",
        "",
    ]
    for kind in KINDS.values():
        lines += [f"## {kind.name} ({kind.title})", "", kind.doc, "",
                  "| column | required | type | meaning |", "| --- | --- | --- | --- |"]
        for col in kind.columns:
            lines.append(f"| `{col.name}` | {'yes' if col.required else 'no'} | "
                         f"{TYPE_WORDS[col.type]} | {col.doc} |")
        lines.append("")
    return "\n".join(lines)
