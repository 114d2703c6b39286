"""Files for the import tests, generated at test time (no binary fixtures in the repository)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any, Iterable
from xml.sax.saxutils import escape

from openpyxl import Workbook

from salesflow.imports.reading import OLE_MAGIC, column_letter

MAIN_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"


def write_csv(path: Path, rows: Iterable[Iterable[Any]], *, delimiter: str = ",",
              encoding: str = "utf-8", bom: bool = False) -> Path:
    import csv

    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\r\n")
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    data = buf.getvalue().encode(encoding)
    if bom:
        data = {"utf-8": b"\xef\xbb\xbf", "utf-16-le": b"\xff\xfe"}[encoding] + data
    path.write_bytes(data)
    return path


def write_xlsx(path: Path, rows: Iterable[Iterable[Any]], *, sheet: str = "Sheet1",
               extra_sheets: dict[str, list] | None = None, hidden: dict[str, str] | None = None,
               merge: str | None = None) -> Path:
    """A normal workbook written by openpyxl (values, formulas as '=...' strings)."""
    wb = Workbook()
    ws = wb.active
    ws.title = sheet
    for row in rows:
        ws.append(list(row))
    if merge:
        ws.merge_cells(merge)
    for name, sheet_rows in (extra_sheets or {}).items():
        other = wb.create_sheet(name)
        for row in sheet_rows:
            other.append(list(row))
    for name, state in (hidden or {}).items():
        wb[name].sheet_state = state
    wb.save(path)
    return path


def _cell_xml(ref: str, value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return f'<c r="{ref}" t="b"><v>{int(value)}</v></c>'
    if isinstance(value, (int, float)):
        return f'<c r="{ref}"><v>{value}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{escape(str(value))}</t></is></c>'


def sheet_xml(rows: Iterable[Iterable[Any]], *, prolog: str = "", tail: str = "") -> str:
    parts = [f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>{prolog}'
             f'<worksheet xmlns="{MAIN_NS}"><sheetData>']
    for r, row in enumerate(rows, start=1):
        cells = "".join(_cell_xml(f"{column_letter(c)}{r}", v) for c, v in enumerate(row))
        parts.append(f'<row r="{r}">{cells}</row>')
    parts.append(f"</sheetData>{tail}</worksheet>")
    return "".join(parts)


def raw_xlsx(path: Path, sheet: str | bytes, *, sheet_name: str = "Sheet1",
             extra: dict[str, bytes] | None = None, content_types_extra: str = "",
             compression: int = zipfile.ZIP_DEFLATED) -> Path:
    """A minimal workbook assembled by hand, so tests control every byte of its parts."""
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
        'officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" ContentType="application/vnd.openxmlformats-'
        f'officedocument.spreadsheetml.worksheet+xml"/>{content_types_extra}</Types>'
    )
    rels = (f'<Relationships xmlns="{PKG_REL_NS}"><Relationship Id="rId1" Type="{REL_NS}/officeDocument" '
            'Target="xl/workbook.xml"/></Relationships>')
    workbook = (f'<workbook xmlns="{MAIN_NS}" xmlns:r="{REL_NS}"><sheets>'
                f'<sheet name="{escape(sheet_name)}" sheetId="1" r:id="rId1"/></sheets></workbook>')
    wb_rels = (f'<Relationships xmlns="{PKG_REL_NS}"><Relationship Id="rId1" Type="{REL_NS}/worksheet" '
               'Target="worksheets/sheet1.xml"/></Relationships>')
    with zipfile.ZipFile(path, "w", compression) as zf:
        zf.writestr("[Content_Types].xml", content_types)
        zf.writestr("_rels/.rels", rels)
        zf.writestr("xl/workbook.xml", workbook)
        zf.writestr("xl/_rels/workbook.xml.rels", wb_rels)
        zf.writestr("xl/worksheets/sheet1.xml", sheet)
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return path


def fake_ole(path: Path, *, encrypted: bool) -> Path:
    """An OLE compound file header with the stream names Office writes for encrypted
    workbooks (EncryptionInfo, EncryptedPackage) or for a legacy workbook (Workbook)."""
    names = ["EncryptionInfo", "EncryptedPackage"] if encrypted else ["Workbook", "SummaryInformation"]
    body = bytearray(OLE_MAGIC + b"\x00" * (512 - len(OLE_MAGIC)))
    for name in names:
        entry = name.encode("utf-16-le").ljust(64, b"\x00") + b"\x00" * 64
        body += entry
    body += b"\x00" * 4096
    path.write_bytes(bytes(body))
    return path
