"""Hostile files: every one ends in a clear rejection naming the problem, with nothing
committed to the core or the warehouse and the file moved out of the inbox.

The corpus is generated at test time (``HOSTILE``); ``tests/test_imports_dagster.py`` runs the
same corpus through the sensor and the job."""

from __future__ import annotations

import os
import random
import struct
import uuid
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from tests.imports.builders import fake_ole, raw_xlsx, sheet_xml, write_xlsx
from tests.imports.fixtures import ImportEnv, module_core, shared_env  # noqa: F401

SKU = "BAK-00001"  # in the test shop's catalogue


@dataclass
class Hostile:
    id: str
    make: Callable[[Path, Path], str]  # (inbox, scratch folder) -> path relative to the inbox
    reason: str  # what the rejection must say
    marks: tuple = ()
    where: str | None = None  # the cell the reason must name, e.g. "row 2 column B (name)"


def _file(name: str, data: bytes | str) -> Callable[[Path, Path], str]:
    def make(inbox: Path, tmp: Path) -> str:
        (inbox / name).write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        return name
    return make


def _built(name: str, build: Callable[[Path], Path]) -> Callable[[Path, Path], str]:
    def make(inbox: Path, tmp: Path) -> str:
        build(inbox / name)
        return name
    return make


def _valid_xlsx(path: Path) -> Path:
    return write_xlsx(path, [["date", "amount"], [datetime(2025, 6, 1), 10]])


def _truncated(path: Path) -> Path:
    buf = path.with_suffix(".tmpx")
    write_xlsx(buf, [["date", "amount"]] + [[datetime(2025, 6, 1), i] for i in range(1, 500)])
    data = buf.read_bytes()
    buf.unlink()
    path.write_bytes(data[: len(data) // 2])
    return path


def _bomb(path: Path) -> Path:
    body = "<worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>" \
        + " " * (64 << 20) + "</sheetData></worksheet>"
    return raw_xlsx(path, body)


def _lying_sizes(path: Path) -> Path:
    raw_xlsx(path, sheet_xml([["date", "amount"]] + [["2025-06-01", i] for i in range(1, 3000)]))
    data = bytearray(path.read_bytes())
    name = b"xl/worksheets/sheet1.xml"
    at = data.find(b"PK\x01\x02")
    while at >= 0:
        name_len = struct.unpack_from("<H", data, at + 28)[0]
        if bytes(data[at + 46: at + 46 + name_len]) == name:
            struct.pack_into("<I", data, at + 24, 1000)  # declared uncompressed size
        at = data.find(b"PK\x01\x02", at + 4)
    path.write_bytes(bytes(data))
    return path


def _formulas(path: Path) -> Path:
    return write_xlsx(path, [["date", "amount"], [datetime(2025, 6, 1), "=2*5"], [datetime(2025, 6, 2), 3]])


def _merged(path: Path) -> Path:
    return write_xlsx(path, [["date", "amount", "category"], [datetime(2025, 6, 1), 3, "Rent"],
                             [datetime(2025, 6, 2), 4, None]], merge="C2:C3")


def _hidden(state: str) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        return write_xlsx(path, [["date", "amount"], [datetime(2025, 6, 1), 3]], sheet="expenses",
                          extra_sheets={"secret": [["date", "amount"], [datetime(2025, 6, 1), 9999]]},
                          hidden={"secret": state})
    return build


def _macros(path: Path) -> Path:
    return raw_xlsx(path, sheet_xml([["date", "amount"], ["2025-06-01", 3]]),
                    extra={"xl/vbaProject.bin": b"\xd0\xcf\x11\xe0fake vba"},
                    content_types_extra='<Default Extension="bin" ContentType="application/'
                    'vnd.ms-office.vbaProject"/>')


def _dtd(path: Path) -> Path:
    prolog = ('<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
              '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]>')
    return raw_xlsx(path, sheet_xml([["date", "amount"], ["2025-06-01", "&lol3;"]], prolog=prolog)
                    .replace("&amp;lol3;", "&lol3;"))


def _ods(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        zf.writestr("content.xml", "<office:document-content/>")
    return path


def _not_a_workbook_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("notes.txt", "hello")
    return path


def _million_rows_xlsx(path: Path) -> Path:
    rows = "".join(f'<row r="{r}"><c r="A{r}"><v>{r}</v></c></row>' for r in range(1, 1_000_001))
    return raw_xlsx(path, '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/'
                    f'main"><sheetData>{rows}</sheetData></worksheet>')


def _big_cell_xlsx(path: Path) -> Path:
    rng = random.Random(7)
    text = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz ") for _ in range(3_000_000))
    return raw_xlsx(path, sheet_xml([["customer_id", "name"], ["C1", text]]))


def _symlink(inbox: Path, tmp: Path) -> str:
    target = tmp / "outside.csv"
    target.write_text("customer_id,name\nC1,Ada\n")
    os.symlink(target, inbox / "customers_link.csv")
    return "customers_link.csv"


def _undecodable_name(inbox: Path, tmp: Path) -> str:
    raw = b"expenses\xff\xfe.csv"
    with open(os.path.join(os.fsencode(inbox), raw), "wb") as fh:
        fh.write(b"date,amount\r\n2025-06-01,3\r\n")
    return os.fsdecode(raw)


def _escape(inbox: Path, tmp: Path) -> str:
    (inbox.parent / "outside.csv").write_text("customer_id,name\nC1,Ada\n")
    return "../outside.csv"


def _rng_bytes(n: int, seed: int = 3) -> bytes:
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(n))


def _utf16_no_bom() -> bytes:
    return "customer_id,name\r\nC1,Zoë\r\n".encode("utf-16-le")


def _mixed() -> bytes:
    return "customer_id,name\r\nC1,Zoë\r\n".encode("utf-8") + "C2,Renée\r\n".encode("cp1252")


def _million_csv() -> bytes:
    return b"customer_id,name\r\n" + b"".join(b"C%d,N\r\n" % i for i in range(1_000_000))


def _wide_csv() -> str:
    header = ["customer_id", "name"] + [f"extra{i}" for i in range(98)]
    return ",".join(header) + "\r\n" + ",".join(["C1", "Ada"] + ["x"] * 98) + "\r\n"


HOSTILE = [
    Hostile("empty-csv", _file("expenses.csv", b""), "the file is empty"),
    Hostile("empty-xlsx", _file("expenses.xlsx", b""), "the file is empty"),
    Hostile("only-blank-lines", _file("expenses.csv", "\r\n   \r\n\t\r\n"), "no text"),
    Hostile("header-only-csv", _file("stock_counts_june.csv", "sku,counted\r\n"), "header but no data rows"),
    Hostile("header-only-xlsx", _built("expenses.xlsx", lambda p: write_xlsx(p, [["date", "amount"]])),
            "header but no data rows"),
    Hostile("pdf", _file("sales.pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n"), "unsupported file type '.pdf'"),
    Hostile("no-extension", _file("expenses", "date,amount\r\n2025-06-01,3\r\n"), "unsupported file type"),
    Hostile("legacy-xls-extension", _file("expenses.xls", b"anything"), "legacy Excel 97-2003"),
    Hostile("text-named-xlsx", _file("expenses.xlsx", "date,amount\r\n2025-06-01,3\r\n"),
            "named .xlsx but is not an Excel workbook (it holds text"),
    Hostile("workbook-named-csv", _built("expenses.csv", _valid_xlsx), "named .csv but is a zip archive"),
    Hostile("truncated-zip", _built("expenses.xlsx", _truncated), "damaged"),
    Hostile("junk-zip", _file("expenses.xlsx", b"PK\x03\x04" + _rng_bytes(4000)), "damaged"),
    Hostile("zip-without-workbook", _built("expenses.xlsx", _not_a_workbook_zip), "not an Excel workbook"),
    Hostile("decompression-bomb", _built("expenses.xlsx", _bomb), "decompression bomb"),
    Hostile("member-lies-about-its-size", _built("expenses.xlsx", _lying_sizes), "damaged"),
    Hostile("password-protected", _built("expenses.xlsx", lambda p: fake_ole(p, encrypted=True)),
            "password-protected"),
    Hostile("legacy-ole-renamed", _built("expenses.xlsx", lambda p: fake_ole(p, encrypted=False)),
            "legacy Office binary file"),
    Hostile("opendocument-renamed", _built("expenses.xlsx", _ods), "OpenDocument"),
    Hostile("macros", _built("expenses.xlsx", _macros), "macros"),
    Hostile("xml-entities", _built("expenses.xlsx", _dtd), "DTD"),
    Hostile("formulas", _built("expenses.xlsx", _formulas), "a formula: paste the values"),
    Hostile("merged-cells", _built("expenses.xlsx", _merged), "merged cells (C2:C3)"),
    Hostile("hidden-sheet", _built("expenses.xlsx", _hidden("hidden")), "hidden sheets ('secret')"),
    Hostile("very-hidden-sheet", _built("expenses.xlsx", _hidden("veryHidden")), "hidden sheets"),
    Hostile("name-with-control-character", _file("expenses\x07.csv", "date,amount\r\n2025-06-01,3\r\n"),
            "control character U+0007"),
    Hostile("name-with-bidi-override", _file("expenses\u202ecsv.exe.csv", "date,amount\r\n2025-06-01,3\r\n"),
            "control character U+202E"),
    Hostile("name-with-dotdot-backslash", _file("..\\..\\expenses.csv", "date,amount\r\n2025-06-01,3\r\n"),
            "path separator or '..'"),
    Hostile("name-not-utf8", _undecodable_name, "the file name is not valid UTF-8"),
    Hostile("path-escaping-the-inbox", _escape, "escapes the inbox"),
    Hostile("symlink", _symlink, "symbolic links are not accepted"),
    Hostile("utf16-without-bom", _file("customers.csv", _utf16_no_bom()), "NUL byte"),
    Hostile("mixed-encodings", _file("customers.csv", _mixed()), "mixes UTF-8 with another encoding"),
    Hostile("undefined-cp1252-bytes", _file("customers.csv", b"customer_id,name\r\nC1,\x81\x8d\r\n"),
            "neither UTF-8 nor Windows-1252"),
    Hostile("binary-junk", _file("customers.csv", _rng_bytes(20_000, seed=11)), "binary data"),
    Hostile("million-rows-csv", _file("customers.csv", _million_csv()), "the limit is 200,000 rows",
            marks=(pytest.mark.slow,)),
    Hostile("million-rows-xlsx", _built("customers.xlsx", _million_rows_xlsx),
            "the limit is 200,000 rows", marks=(pytest.mark.slow,)),
    Hostile("several-mb-cell-csv", _file("customers.csv", "customer_id,name\r\nC1," + "x" * 5_000_000 + "\r\n"),
            "5,000,000 characters; the limit is 32,767"),
    Hostile("several-mb-cell-xlsx", _built("customers.xlsx", _big_cell_xlsx),
            "3,000,000 characters; the limit is 32,767"),
    Hostile("too-many-columns", _file("customers.csv", _wide_csv()), "100 columns; the limit is 60"),
    Hostile("ambiguous-thousands", _file("products.csv", f"sku,name,price\r\nNEW-9,Thing,\"1,234\"\r\n"),
            "'1,234' is ambiguous"),
    Hostile("ambiguous-dates", _file("expenses.csv", "date,amount\r\n03/04/2025,3\r\n04/05/2025,4\r\n"),
            "03/04/2025 is ambiguous"),
    Hostile("duplicate-columns", _file("customers.csv", "customer_id,Name,Full Name\r\nC1,Ada,Ada L\r\n"),
            "duplicate columns"),
    Hostile("formula-text-in-csv", _file("products.csv", "sku,name,price\r\nNEW-8,\"=HYPERLINK(\"\"http://x\"\")\",1\r\n"),
            "text cannot start with = (a spreadsheet formula)"),
    Hostile("formula-dde-plus", _file("products.csv", "sku,name,price\r\nNEW-7,\"+cmd|' /C calc'!A0\",1\r\n"),
            "text cannot start with + (a spreadsheet formula)", where="row 2 column B (name)"),
    Hostile("formula-at-hyperlink", _file("customers.csv",
            'customer_id,name\r\nC1,"@HYPERLINK(""http://evil"",""x"")"\r\n'),
            "text cannot start with @ (a spreadsheet formula)", where="row 2 column B (name)"),
    Hostile("formula-minus-arithmetic", _file("products.csv",
            "sku,name,price,description\r\nNEW-6,Six,1,-2+3\r\n"),
            "text cannot start with - (a spreadsheet formula)", where="row 2 column D (description)"),
    Hostile("formula-leading-tab", _built("customers.xlsx", lambda p: write_xlsx(
            p, [["customer_id", "name"], ["C1", "\tSUM(1)"]])),
            "text cannot start with a tab (a spreadsheet formula)", where="row 2 column B (name)"),
    Hostile("formula-leading-carriage-return", _file("customers.csv", 'customer_id,name\r\nC1,"\rAda"\r\n'),
            "text cannot start with a carriage return (a spreadsheet formula)", where="row 2 column B (name)"),
    Hostile("numbers-are-not-formulas", _file("products.csv",
            "sku,name,price,initial_stock\r\nNEW-5,Five,-2+3,+5\r\n"),
            "'-2+3' is not an amount", where="row 2 column C (price)"),
    Hostile("semicolon-in-sku", _file("products.csv",
            "sku,name,price\r\nIMP-1,One,1\r\nIMP-2,Two,2\r\nIMP'3;,Three,3\r\n"),
            "a sku cannot contain ';': the core refuses it in a web address", where="row 4 column A (sku)"),
    Hostile("dot-dot-sku", _file("stock_counts.csv", "sku,counted\r\n..,3\r\n"), "a sku cannot be '..'"),
    Hostile("count-beyond-java-int", _file("stock_counts.csv", f"sku,counted\r\n{SKU},2147483648\r\n"),
            "2,147,483,648 is too large: at most 2,147,483,647"),
    Hostile("price-beyond-numeric-12-2", _file("products.csv", "sku,name,price\r\nNEW-4,Four,10000000000\r\n"),
            "more than 9,999,999,999.99, the largest amount the core keeps"),
    Hostile("name-too-long-in-utf16", _file("products.csv", "sku,name,price\r\nNEW-3," + "😀" * 51 + ",1\r\n"),
            "102 characters as the core counts them"),
    Hostile("control-character-in-cell", _file("customers.csv", "customer_id,name\r\nC1,Ada\x1bLove\r\n"),
            "control character U+001B"),
    Hostile("unterminated-quote", _file("customers.csv", 'customer_id,name\r\nC1,"Ada\r\n'), "malformed"),
    Hostile("unknown-header", _file("report.csv", "foo,bar\r\n1,2\r\n"), "no header row found"),
    Hostile("negative-and-zero-quantities", _file("sales.csv", f"sku,qty\r\n{SKU},-1\r\n{SKU},0\r\n"),
            "must be greater than 0"),
    Hostile("future-dates", _file("expenses.csv", "date,amount\r\n2031-01-01,3\r\n"), "is in the future"),
    Hostile("unknown-sku", _file("stock_counts.csv", "sku,counted\r\nNOPE-1,3\r\n"), "unknown sku 'NOPE-1'"),
    Hostile("duplicate-sku-in-products", _file("products.csv",
            "sku,name,price\r\nNEW-1,One,1\r\nNEW-1,Two,2\r\n"), "duplicate sku 'NEW-1' (already in row 2)"),
]


@pytest.fixture(scope="module")
def core_before(module_core):
    from salesflow.core_client import CoreClient

    with CoreClient(module_core.url, *module_core.admin) as c:
        return c.get_json("/products"), len(c.get_json("/sales"))


def _assert_nothing_committed(env: ImportEnv, core_before) -> None:
    with env.client() as c:
        assert c.get_json("/products") == core_before[0]
        assert len(c.get_json("/sales")) == core_before[1]
    for table in ("raw.sales", "raw.sale_items", "raw.expenses", "raw.customers", "ops.import_batches"):
        assert env.query(f"SELECT count(*) FROM {table}") in ([], [(0,)]), table


def test_the_corpus_is_large_enough():
    assert len(HOSTILE) >= 30
    assert len({h.id for h in HOSTILE}) == len(HOSTILE)


@pytest.mark.parametrize("case", [pytest.param(h, id=h.id, marks=h.marks) for h in HOSTILE])
def test_hostile_file_is_rejected_clearly_and_nothing_is_committed(shared_env, core_before, case, tmp_path):
    env = shared_env
    env.layout.ensure()
    relpath = case.make(env.layout.inbox, tmp_path)
    outcome = env.run(relpath)

    assert outcome.status == "rejected", outcome.summary()
    said = [outcome.message] + [i.reason for i in outcome.issues]
    assert any(case.reason in s for s in said), (case.reason, said)
    if case.where:
        assert any(case.reason in i.reason and i.where() == case.where for i in outcome.issues), \
            [(i.where(), i.reason) for i in outcome.issues]
    _assert_nothing_committed(env, core_before)
    assert env.inbox_files() == [] or case.id == "path-escaping-the-inbox"

    if case.id == "path-escaping-the-inbox":
        assert (env.layout.inbox.parent / "outside.csv").exists()
        assert outcome.moved_to is None and not any(env.layout.rejected.iterdir())
        return
    assert outcome.moved_to is not None and outcome.moved_to.parent == env.layout.rejected
    assert os.path.lexists(outcome.moved_to) and outcome.report.exists()
    assert "/" not in outcome.moved_to.name[16:] and "\x07" not in outcome.moved_to.name
    if outcome.sha256:
        rows = env.query("SELECT status, message FROM ops.imports WHERE file_sha256 = ?", [outcome.sha256])
        assert rows and rows[0][0] == "rejected"
    if outcome.report.suffix == ".xlsx":
        wb = load_workbook(outcome.report)
        errors = [row for row in wb["Errors"].iter_rows(values_only=True)][1:]
        assert any(case.reason in str(r[4]) for r in errors)
        assert all(c.data_type != "f" for ws in wb for row in ws.iter_rows() for c in row)
    else:
        assert case.reason in outcome.report.read_text()


def test_annotated_copy_marks_the_bad_cells(shared_env):
    env = shared_env
    env.layout.ensure()
    write_xlsx(env.layout.inbox / "expenses_june.xlsx", [
        ["Date", "Amount", "Category", "Description"],
        [datetime(2025, 6, 1), 120, "Rent", "=HYPERLINK(\"http://evil\")"],
        [datetime(2025, 6, 2), "=1+1", "Rent", "ok"],
        ["2031-01-01", -5, "Power", "+cmd|' /C calc'!A0"],
    ])
    outcome = env.run("expenses_june.xlsx")
    assert outcome.status == "rejected" and outcome.rows_rejected == 3 and outcome.rows_valid == 0
    wb = load_workbook(outcome.report)
    assert wb.sheetnames[:3] == ["Data", "Errors", "Summary"] and wb.active.title == "Errors"
    data = wb["Data"]
    assert data["B3"].comment.text.startswith("a formula") and data["B3"].fill.fgColor.rgb.endswith("FFC7CE")
    assert "in the future" in data["A4"].comment.text and "greater than 0" in data["B4"].comment.text
    assert data["A2"].comment is None and data["B2"].value == 120
    for ref in ("D2", "B3", "D4"):
        assert data[ref].data_type != "f"
    assert data["D2"].value is None and "formula" in data["D2"].comment.text
    assert data["D4"].value == "'+cmd|' /C calc'!A0" and data["D4"].data_type == "s"
    assert data["D4"].comment.text.startswith("text cannot start with + (a spreadsheet formula)")
    errors = list(wb["Errors"].iter_rows(values_only=True))
    assert errors[0] == ("Row", "Column", "Header", "Value", "Reason")
    assert (2, "D", "Description") == errors[1][:3] and "formula" in errors[1][4]
    assert {(r[0], r[1]) for r in errors[1:]} == {(2, "D"), (3, "B"), (4, "A"), (4, "B"), (4, "D")}


def test_formula_like_text_from_a_csv_stays_inert_in_the_annotated_copy(shared_env):
    env = shared_env
    env.layout.ensure()
    env.drop("customers.csv", 'customer_id,name,city\r\nC1,"=HYPERLINK(""http://evil"")",@SUM(1)\r\n'
             "C2,Bob,-2+3+cmd\r\n")
    outcome = env.run("customers.csv")
    assert outcome.status == "rejected"
    assert [(i.row, i.column) for i in outcome.issues] == [(2, "name"), (2, "city"), (3, "city")]
    data = load_workbook(outcome.report)["Data"]
    assert data["B2"].value == "'=HYPERLINK(\"http://evil\")" and data["B2"].data_type == "s"
    assert data["C2"].value == "'@SUM(1)" and data["C3"].value == "'-2+3+cmd"


# -- skus in the core's web addresses --------------------------------------------------------
_SKU_TEXT = st.text(
    st.one_of(st.sampled_from(list(";%/\\?#.~+-=@&'\" \t\r\n\u2028\u00a0é😀")),
              st.characters(codec="utf-8")),
    min_size=1, max_size=12)


@pytest.fixture(scope="module")
def empty_core(tmp_path_factory):
    from emulator.clock import FixedClock
    from emulator.testing import running_emulator
    from salesflow.core_client import CoreClient
    from tests.conftest import CORE_NOW

    state = tmp_path_factory.mktemp("empty-core") / "core.sqlite3"
    with running_emulator(state, clock=FixedClock(CORE_NOW)) as emu:
        with CoreClient(emu.url, *emu.admin, backoff_s=0.01, backoff_max_s=0.05) as client:
            yield client


def _accepted_sku(raw: str) -> str | None:
    from datetime import date

    from salesflow.imports.reading import Grid
    from salesflow.imports.validation import validate_grid

    grid = Grid(rows=[["sku", "name", "price"], [raw, "Name", "1"]], source="csv")
    v = validate_grid(grid, filename="products.csv", today=date(2025, 7, 1), catalogue={})
    return v.data["sku"][0] if v.ok else None


@settings(max_examples=150, deadline=None)
@given(raw=_SKU_TEXT)
@example(raw="A?B#C")
@example(raw="...")
@example(raw="a.b")
@example(raw="~x y")
def test_every_sku_validation_accepts_round_trips_through_the_cores_web_address(empty_core, raw):
    from salesflow.imports.commit import get_product

    sku = _accepted_sku(raw)
    assume(sku is not None)
    if get_product(empty_core, sku) is None:
        name = f"P{uuid.uuid4().hex}"
        empty_core.post_json("/products", {"name": name, "sku": sku, "price": 1.0}, retry=False)
    found = get_product(empty_core, sku)
    assert isinstance(found, dict) and found["sku"] == sku


@pytest.mark.parametrize("sku", ["IMP'3;", "50%", "A/B", "A\\B", ".", ".."])
def test_the_skus_validation_refuses_are_ones_the_core_cannot_be_asked_about(empty_core, sku):
    from salesflow.errors import CoreApiError
    from salesflow.imports.commit import get_product

    assert _accepted_sku(sku) is None
    empty_core.post_json("/products", {"name": f"P{uuid.uuid4().hex}", "sku": sku, "price": 1.0},
                         retry=False)
    try:
        found = get_product(empty_core, sku)
    except CoreApiError as exc:
        assert exc.status == 400
    else:
        assert not (isinstance(found, dict) and found.get("sku") == sku)
