"""Reading an import file safely into a grid of cells.

Nothing here trusts the file. In order:

1. the name's extension must be ``.xlsx``, ``.csv``, ``.tsv`` or ``.txt``, and the content
   must be what the extension says (an OLE file is a password-protected workbook or a legacy
   ``.xls``; a zip named ``.csv`` or text named ``.xlsx`` is refused);
2. size limits (``Limits``) before anything is parsed;
3. xlsx: the zip's central directory is checked first (member count, declared sizes,
   compression ratio: a decompression bomb is refused before a byte is inflated), then every
   member is inflated once as a stream with a hard cap, which also verifies the declared
   sizes and CRCs (a member lying about its size fails here, not inside the xlsx reader).
   Encrypted zips, macros (``vbaProject.bin``), binary workbooks, XML with a DTD, hidden
   sheets and merged cells are refused; formula cells are listed so that validation marks
   them; the data sheet's row count is checked before it is loaded. Only then does
   python-calamine (through pandas) read the sheet's values;
4. CSV: encoding (UTF-8 with or without BOM, UTF-16 with BOM, otherwise Windows-1252 when
   every byte is defined there and the text is not a mix with UTF-8), delimiter sniffing
   among ``,`` ``;`` tab ``|``, and the row limit before parsing.

The grid's row ``i`` is spreadsheet row ``i + 1`` and column ``j`` is column letter ``j``, so
row numbers in errors are the ones a person sees.
"""

from __future__ import annotations

import csv
import hashlib
import io
import posixpath
import re
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from salesflow.imports.kinds import KINDS, Kind, normalize_header

csv.field_size_limit(2**31 - 1)

ALLOWED_EXTENSIONS = (".xlsx", ".csv", ".tsv", ".txt")
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
_ENCRYPTED_OLE = ("EncryptedPackage".encode("utf-16-le"), "EncryptionInfo".encode("utf-16-le"))


@dataclass(frozen=True)
class Limits:
    """What a file may be. Anything over a limit is refused with the limit in the message."""

    max_rows: int = 200_000  # data rows per file
    max_columns: int = 60
    max_csv_bytes: int = 64 << 20
    max_xlsx_bytes: int = 32 << 20
    max_zip_members: int = 1_000
    max_member_bytes: int = 256 << 20  # one inflated zip member
    max_total_bytes: int = 384 << 20  # all inflated members together
    max_ratio: float = 200.0  # inflated / compressed, for members above ratio_floor
    ratio_floor: int = 1 << 20


DEFAULT_LIMITS = Limits()


class FileRejected(Exception):
    """The file as a whole cannot be imported; ``reason`` says why in words for its owner."""

    def __init__(self, reason: str, *, code: str, grid: "Grid | None" = None,
                 cells: list[tuple[int, int]] | None = None):
        super().__init__(reason)
        self.reason = reason
        self.code = code
        self.grid = grid
        self.cells = cells or []  # (row index, column index) to highlight in the annotated copy


@dataclass
class Grid:
    rows: list[list[Any]]
    source: str  # "xlsx" or "csv"
    sheet: str | None = None
    encoding: str | None = None
    delimiter: str | None = None
    formulas: list[tuple[int, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def width(self) -> int:
        return max((len(r) for r in self.rows), default=0)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def cell_index(ref: str) -> tuple[int, int] | None:
    """``'C5'`` → ``(4, 2)`` (row index, column index)."""
    m = re.match(r"^\$?([A-Z]{1,3})\$?(\d+)$", ref.strip().upper())
    if not m:
        return None
    col = 0
    for ch in m.group(1):
        col = col * 26 + (ord(ch) - 64)
    return int(m.group(2)) - 1, col - 1


# -- entry point ---------------------------------------------------------------------------
def read_file(path: Path, name: str | None = None, *, limits: Limits = DEFAULT_LIMITS,
              hint: Kind | None = None) -> Grid:
    path = Path(path)
    name = name or path.name
    ext = Path(name).suffix.lower()
    if ext not in ALLOWED_EXTENSIONS:
        raise FileRejected(_extension_reason(ext), code="extension")
    size = path.stat().st_size
    if size == 0:
        raise FileRejected("the file is empty (0 bytes)", code="empty")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if ext == ".xlsx":
        _refuse_if_larger(size, limits.max_xlsx_bytes, "the workbook")
        if head.startswith(OLE_MAGIC):
            raise FileRejected(_ole_reason(path), code="encrypted_or_legacy")
        if not head.startswith(ZIP_MAGIC):
            raise FileRejected(
                "the file is named .xlsx but is not an Excel workbook"
                + (" (it holds text: if it is a CSV file, name it .csv)" if _looks_textual(path) else ""),
                code="wrong_extension")
        return read_xlsx(path, limits=limits, hint=hint)
    _refuse_if_larger(size, limits.max_csv_bytes, "the file")
    if head.startswith(ZIP_MAGIC):
        raise FileRejected(f"the file is named {ext} but is a zip archive (an Excel workbook? "
                           "name it .xlsx)", code="wrong_extension")
    if head.startswith(OLE_MAGIC):
        raise FileRejected(f"the file is named {ext} but is an Office binary file: "
                           + _ole_reason(path), code="wrong_extension")
    if head.startswith(b"%PDF"):
        raise FileRejected(f"the file is named {ext} but is a PDF document", code="wrong_extension")
    return read_csv(path, limits=limits)


def _refuse_if_larger(size: int, limit: int, what: str) -> None:
    if size > limit:
        raise FileRejected(f"{what} is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB: "
                           "split it into several files", code="too_large")


def _extension_reason(ext: str) -> str:
    if ext == ".xls":
        return "legacy Excel 97-2003 workbooks (.xls) are not accepted: save it as .xlsx"
    if ext in (".xlsm", ".xltm", ".xlsb"):
        return f"{ext} workbooks (macros or binary format) are not accepted: save it as .xlsx"
    if ext == ".ods":
        return "OpenDocument spreadsheets (.ods) are not accepted: save it as .xlsx"
    shown = ext or "(none)"
    return (f"unsupported file type {shown!r}: drop an Excel workbook (.xlsx) or a CSV file "
            "(.csv); templates are in the templates folder")


def _ole_reason(path: Path) -> str:
    with open(path, "rb") as fh:
        data = fh.read(8 << 20)
    if any(marker in data for marker in _ENCRYPTED_OLE):
        return ("the workbook is password-protected (encrypted): remove the password "
                "(File > Info > Protect Workbook) and drop it again")
    return ("this is a legacy Office binary file (Excel 97-2003 .xls or similar), not an "
            ".xlsx workbook: save it as .xlsx")


def _looks_textual(path: Path) -> bool:
    with open(path, "rb") as fh:
        sample = fh.read(4096)
    if b"\x00" in sample:
        return False
    try:
        sample.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        return exc.start > len(sample) - 4  # a sequence cut by the sample's end


# -- xlsx ----------------------------------------------------------------------------------
_NS_STRIP = re.compile(r"^\{[^}]*\}")


def _local(tag: str) -> str:
    return _NS_STRIP.sub("", tag)


@dataclass
class _Sheet:
    name: str
    state: str
    part: str | None
    is_worksheet: bool


class _ChunkScanner:
    """Counts and collects regex matches in a stream of chunks (matches shorter than ``overlap``)."""

    def __init__(self, pattern: re.Pattern, overlap: int = 4096, limit: int = 1000,
                 needles: tuple[bytes, ...] = ()):
        self.pattern = pattern
        self.overlap = overlap
        self.limit = limit
        self.needles = needles  # the regex runs only on buffers holding one of these
        self.found: list[re.Match] = []
        self.count = 0
        self._tail = b""

    def feed(self, chunk: bytes, final: bool = False) -> None:
        buf = self._tail + chunk
        cut = len(buf) if final else max(0, len(buf) - self.overlap)
        self._tail = b"" if final else buf[cut:]
        if self.needles and not any(n in buf for n in self.needles):
            return
        for m in self.pattern.finditer(buf):
            if m.start() >= cut:
                break
            self.count += 1
            if len(self.found) < self.limit:
                self.found.append(m)


_FORMULA = re.compile(rb"<(?:\w+:)?c\b([^>]*)>\s*<(?:\w+:)?f\b")
_ROW = re.compile(rb"<(?:\w+:)?row\b")
_MERGE = re.compile(rb"<(?:\w+:)?mergeCell\b[^>]*?\bref=\"([^\"]+)\"")
_REF_ATTR = re.compile(rb"\br=\"([A-Z]+[0-9]+)\"")
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def read_xlsx(path: Path, *, limits: Limits = DEFAULT_LIMITS, hint: Kind | None = None) -> Grid:
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise FileRejected(f"the workbook is damaged (not a valid zip: {exc})", code="corrupt") from None
    except Exception as exc:  # noqa: BLE001 - any failure to open the archive
        raise FileRejected(f"the workbook is damaged ({type(exc).__name__})", code="corrupt") from None
    with zf:
        infos = zf.infolist()
        _check_declared_sizes(infos, limits)
        names = {i.filename for i in infos}
        if "mimetype" in names and "content.xml" in names:
            raise FileRejected("this is an OpenDocument spreadsheet renamed to .xlsx: save it "
                               "as .xlsx", code="wrong_extension")
        if "[Content_Types].xml" not in names:
            raise FileRejected("the file is a zip archive but not an Excel workbook "
                               "([Content_Types].xml is missing)", code="not_xlsx")
        content_types = _read_small(zf, "[Content_Types].xml", limits)
        if b"vbaProject" in content_types or any(n.lower().endswith("vbaproject.bin") for n in names):
            raise FileRejected("the workbook contains macros (VBA): save it as a plain .xlsx "
                               "workbook", code="macros")
        if b"sheet.binary" in content_types:
            raise FileRejected("this is a binary workbook (.xlsb): save it as .xlsx",
                               code="wrong_extension")
        workbook_part = _office_document_part(zf, names, limits)
        if workbook_part is None or workbook_part not in names:
            raise FileRejected("the file is a zip archive but not an Excel workbook "
                               "(no workbook part)", code="not_xlsx")
        sheets = _sheets(zf, workbook_part, names, limits)
        hidden = [s.name for s in sheets if s.state in ("hidden", "veryHidden")]
        if hidden:
            raise FileRejected(
                "the workbook has hidden sheets (" + ", ".join(repr(h) for h in hidden[:5])
                + "): hidden data is not imported unseen; delete or unhide them",
                code="hidden_sheets")
        sheet = _choose_sheet(sheets, hint)
        scans = _stream_members(zf, infos, sheet.part, limits)
    formulas_scan, rows_scan, merges_scan = scans
    if merges_scan.count:
        refs = [m.group(1).decode("ascii", "replace") for m in merges_scan.found[:10]]
        cells = []
        for ref in refs:
            first = cell_index(ref.split(":")[0])
            if first:
                cells.append(first)
        raise FileRejected(
            f"sheet {sheet.name!r} has merged cells ({', '.join(refs)}"
            f"{', ...' if merges_scan.count > len(refs) else ''}): unmerge them so that every "
            "row has its own values", code="merged_cells", cells=cells)
    if rows_scan.count > limits.max_rows + 101:
        raise FileRejected(
            f"sheet {sheet.name!r} has {rows_scan.count:,} rows; the limit is "
            f"{limits.max_rows:,} rows per file: split it into several files", code="too_many_rows")
    formulas = []
    for m in formulas_scan.found:
        ref = _REF_ATTR.search(m.group(1))
        if ref:
            idx = cell_index(ref.group(1).decode("ascii"))
            if idx:
                formulas.append(idx)
    rows = _load_values(path, sheet.name)
    grid = Grid(rows=rows, source="xlsx", sheet=sheet.name, formulas=formulas)
    if formulas_scan.count > len(formulas):
        grid.notes.append(f"{formulas_scan.count:,} formula cells (the first {len(formulas)} are marked)")
    return grid


def _check_declared_sizes(infos: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(infos) > limits.max_zip_members:
        raise FileRejected(f"the workbook has {len(infos):,} parts; the limit is "
                           f"{limits.max_zip_members:,}", code="zip_bomb")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise FileRejected("the workbook is encrypted (password-protected zip)",
                               code="encrypted_or_legacy")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise FileRejected(f"the workbook uses an unsupported compression "
                               f"({info.compress_type}) in {info.filename!r}", code="corrupt")
        total += info.file_size
        ratio = info.file_size / max(1, info.compress_size)
        if info.file_size > limits.max_member_bytes or (
            info.file_size > limits.ratio_floor and ratio > limits.max_ratio
        ):
            raise FileRejected(
                f"the workbook looks like a decompression bomb: {info.filename!r} inflates "
                f"from {info.compress_size:,} to {info.file_size:,} bytes (ratio {ratio:,.0f})",
                code="zip_bomb")
    if total > limits.max_total_bytes:
        raise FileRejected(
            f"the workbook inflates to {total / 2**20:,.0f} MB; the limit is "
            f"{limits.max_total_bytes / 2**20:,.0f} MB", code="zip_bomb")


def _read_small(zf: zipfile.ZipFile, name: str, limits: Limits, cap: int = 4 << 20) -> bytes:
    try:
        with zf.open(name) as fh:
            data = fh.read(cap + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
        raise FileRejected(f"the workbook is damaged ({name}: {exc})", code="corrupt") from None
    if len(data) > cap:
        raise FileRejected(f"the workbook part {name!r} is larger than {cap >> 20} MB",
                           code="zip_bomb")
    if _DTD.search(data[:4096]):
        raise FileRejected(f"the workbook part {name!r} declares a DTD or entities, which "
                           "workbooks never need", code="xml_dtd")
    return data


def _parse_xml(data: bytes, name: str) -> ElementTree.Element:
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise FileRejected(f"the workbook is damaged ({name}: {exc})", code="corrupt") from None


def _resolve_target(base_part: str, target: str) -> str:
    if target.startswith("/"):
        return target.lstrip("/")
    return posixpath.normpath(posixpath.join(posixpath.dirname(base_part), target))


def _rels(zf, part: str, names: set[str], limits: Limits) -> dict[str, tuple[str, str]]:
    rels_name = posixpath.join(posixpath.dirname(part), "_rels", posixpath.basename(part) + ".rels")
    if rels_name not in names:
        return {}
    root = _parse_xml(_read_small(zf, rels_name, limits), rels_name)
    out = {}
    for el in root.iter():
        if _local(el.tag) == "Relationship":
            rid, target, typ = el.get("Id"), el.get("Target"), el.get("Type", "")
            if rid and target and el.get("TargetMode") != "External":
                out[rid] = (_resolve_target(part, target), typ)
    return out


def _office_document_part(zf, names: set[str], limits: Limits) -> str | None:
    if "_rels/.rels" in names:
        root = _parse_xml(_read_small(zf, "_rels/.rels", limits), "_rels/.rels")
        for el in root.iter():
            if _local(el.tag) == "Relationship" and el.get("Type", "").endswith("/officeDocument"):
                return el.get("Target", "").lstrip("/")
    return "xl/workbook.xml" if "xl/workbook.xml" in names else None


def _sheets(zf, workbook_part: str, names: set[str], limits: Limits) -> list[_Sheet]:
    root = _parse_xml(_read_small(zf, workbook_part, limits), workbook_part)
    rels = _rels(zf, workbook_part, names, limits)
    sheets = []
    for el in root.iter():
        if _local(el.tag) != "sheet":
            continue
        rid = next((v for k, v in el.attrib.items() if _local(k) == "id"), None)
        part, typ = rels.get(rid, (None, "")) if rid else (None, "")
        sheets.append(_Sheet(
            name=el.get("name", ""),
            state=el.get("state", "visible"),
            part=part if part in names else None,
            is_worksheet=typ.endswith("/worksheet"),
        ))
    if not sheets:
        raise FileRejected("the workbook has no sheets", code="not_xlsx")
    return sheets


def _sheet_kind(name: str) -> str | None:
    key = normalize_header(name)
    for kind in KINDS.values():
        if key == kind.name or key in kind.prefixes:
            return kind.name
    return None


def _choose_sheet(sheets: list[_Sheet], hint: Kind | None) -> _Sheet:
    worksheets = [s for s in sheets if s.is_worksheet and s.part]
    if not worksheets:
        raise FileRejected("the workbook has no worksheet with cells", code="not_xlsx")
    named = [(s, _sheet_kind(s.name)) for s in worksheets]
    named = [(s, k) for s, k in named if k]
    if hint is not None:
        for s, k in named:
            if k == hint.name:
                return s
    kinds = {k for _, k in named}
    if len(kinds) > 1:
        raise FileRejected(
            "the workbook has sheets for several kinds (" + ", ".join(sorted(kinds))
            + "): one kind per file, or name the file after the kind to import",
            code="several_kinds")
    if named:
        return named[0][0]
    return worksheets[0]


def _stream_members(zf, infos, sheet_part: str | None, limits: Limits):
    formulas = _ChunkScanner(_FORMULA, limit=1000, needles=(b"<f", b":f"))
    rows = _ChunkScanner(_ROW, overlap=16, limit=0)
    merges = _ChunkScanner(_MERGE, limit=50, needles=(b"mergeCell",))
    total = 0
    for info in infos:
        if info.is_dir():
            continue
        scanning = info.filename == sheet_part
        got = 0
        first = True
        try:
            with zf.open(info) as fh:
                while True:
                    chunk = fh.read(1 << 20)
                    if not chunk:
                        break
                    got += len(chunk)
                    total += len(chunk)
                    if got > limits.max_member_bytes or total > limits.max_total_bytes:
                        raise FileRejected(
                            f"the workbook looks like a decompression bomb: {info.filename!r} "
                            "inflates past the limit", code="zip_bomb")
                    if first and info.filename.endswith((".xml", ".rels")) and _DTD.search(chunk[:4096]):
                        raise FileRejected(f"the workbook part {info.filename!r} declares a DTD "
                                           "or entities, which workbooks never need", code="xml_dtd")
                    first = False
                    if scanning:
                        formulas.feed(chunk)
                        rows.feed(chunk)
                        merges.feed(chunk)
        except FileRejected:
            raise
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, RuntimeError, NotImplementedError) as exc:
            raise FileRejected(f"the workbook is damaged ({info.filename}: {exc})",
                               code="corrupt") from None
        if scanning:
            formulas.feed(b"", final=True)
            rows.feed(b"", final=True)
            merges.feed(b"", final=True)
    return formulas, rows, merges


def _load_values(path: Path, sheet: str) -> list[list[Any]]:
    import pandas as pd

    try:
        frame = pd.read_excel(path, sheet_name=sheet, header=None, dtype=object,
                              engine="calamine", na_filter=False)
    except Exception as exc:  # noqa: BLE001 - the reader's errors are the file's problem
        text = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise FileRejected(f"the workbook could not be read ({text})", code="corrupt") from None
    return frame.values.tolist()


# -- CSV -----------------------------------------------------------------------------------
_UTF8_SEQ = re.compile(rb"[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3}")
DELIMITERS = (",", ";", "\t", "|")


def decode_text(data: bytes) -> tuple[str, str]:
    """``(text, encoding)``; FileRejected when the bytes are not text we can read one way."""
    if data.startswith(b"\xef\xbb\xbf"):
        try:
            return data[3:].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise FileRejected(f"the file starts with a UTF-8 mark but has invalid UTF-8 at "
                               f"byte {exc.start + 3:,}", code="encoding") from None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError as exc:
            raise FileRejected(f"the file starts with a UTF-16 mark but is not valid UTF-16 "
                               f"(byte {exc.start:,})", code="encoding") from None
    nul = data.find(b"\x00")
    if nul >= 0:
        raise FileRejected(
            f"the file holds binary data (a NUL byte at {nul:,}): not a text file, or UTF-16 "
            "without a byte-order mark; save it as CSV UTF-8", code="encoding")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    if _UTF8_SEQ.search(data):
        raise FileRejected(
            f"the file mixes UTF-8 with another encoding (invalid UTF-8 at byte {first_bad:,} "
            "next to valid UTF-8 text): save it again as CSV UTF-8", code="encoding")
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError as exc:
        raise FileRejected(
            f"the file is neither UTF-8 nor Windows-1252 text (byte 0x{data[exc.start]:02X} at "
            f"{exc.start:,}): save it as CSV UTF-8", code="encoding") from None


def sniff_delimiter(text: str) -> str:
    sample = text[: 64 * 1024]
    if len(text) > len(sample) and "\n" in sample:
        sample = sample[: sample.rfind("\n")]
    lines = sample.splitlines()[:50]
    best: tuple | None = None
    for order, delim in enumerate(DELIMITERS):
        try:
            rows = list(csv.reader(lines, delimiter=delim))
        except csv.Error:
            continue
        counts = [len(r) for r in rows if any(c.strip() for c in r)]
        if not counts:
            continue
        modal, hits = Counter(counts).most_common(1)[0]
        score = (modal > 1, hits / len(counts), modal, -order)
        if best is None or score > best[0]:
            best = (score, delim)
    if best is None or not best[0][0]:
        return ","
    return best[1]


def read_csv(path: Path, *, limits: Limits = DEFAULT_LIMITS) -> Grid:
    data = Path(path).read_bytes()
    lines = data.count(b"\n")
    if lines > limits.max_rows + 1000:
        raise FileRejected(
            f"the file has {lines:,} lines; the limit is {limits.max_rows:,} rows per file: "
            "split it into several files", code="too_many_rows")
    text, encoding = decode_text(data)
    del data
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        raise FileRejected("the file has no text (only blanks)", code="empty")
    delim = sniff_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim, strict=True)
    rows: list[list[Any]] = []
    try:
        for row in reader:
            rows.append(row)
            if len(rows) > limits.max_rows + 101:
                raise FileRejected(
                    f"the file has more than {limits.max_rows:,} rows; the limit is "
                    f"{limits.max_rows:,} rows per file: split it", code="too_many_rows")
    except csv.Error as exc:
        raise FileRejected(f"the CSV is malformed at line {reader.line_num:,}: {exc}",
                           code="malformed") from None
    grid = Grid(rows=rows, source="csv", encoding=encoding, delimiter=delim)
    if encoding == "cp1252":
        grid.notes.append("read as Windows-1252 text (not UTF-8)")
    return grid
