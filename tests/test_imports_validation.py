"""Reading and validating import files: header rows, kinds, row numbers, business rules."""

import re
from datetime import date, datetime
from decimal import Decimal

import pytest

from salesflow.imports.reading import FileRejected, Grid, _ChunkScanner, read_file, sniff_delimiter
from salesflow.imports.validation import validate_grid
from tests.imports.builders import raw_xlsx, sheet_xml, write_csv, write_xlsx

TODAY = date(2025, 7, 1)
CATALOGUE = {
    "A-1": {"sku": "A-1", "name": "Apple", "price": 1.0, "stockQuantity": 10},
    "B-2": {"sku": "B-2", "name": "Bread", "price": 2.5, "stockQuantity": 3},
}


def grid(rows):
    return Grid(rows=[list(r) for r in rows], source="csv")


def check(rows, name="file.csv", catalogue=CATALOGUE, **kw):
    return validate_grid(grid(rows), filename=name, today=TODAY, catalogue=catalogue, **kw)


def reasons(v):
    return [(i.row, i.column, i.reason) for i in v.issues]


def test_title_rows_above_the_header_and_blank_rows_keep_spreadsheet_row_numbers():
    v = check([
        ["Stock take, back room", ""],
        ["", ""],
        ["SKU", "Counted"],
        ["A-1", "4"],
        ["", ""],
        ["B-2", "-1"],
    ])
    assert v.kind.name == "stock_counts" and v.header_index == 2
    assert v.row_numbers == [4, 6]
    assert reasons(v) == [(6, "Counted", "must be at least 0 (got -1)")]
    assert v.issues[0].col_index == 1 and v.issues[0].where() == "row 6 column B (Counted)"
    assert v.rows_total == 2 and v.rows_valid == 1 and v.rows_rejected == 1
    assert any("above the header" in n for n in v.notes)


def test_synonyms_and_case_map_to_the_kinds_columns():
    v = check([["Date", "Receipt #", "SKU", "Qty", "Unit Price (€)", "Customer"],
               ["2025-06-01", "R1", "A-1", "2", "1,50", "C1"]])
    assert v.kind.name == "sales_history"
    assert set(v.columns.values()) == {"date", "sale_ref", "sku", "quantity", "unit_price", "customer_id"}
    assert v.ok and v.data["unit_price"] == [Decimal("1.50")] and v.data["quantity"] == [2]


def test_sku_and_quantity_alone_are_ambiguous_until_the_name_says_which():
    rows = [["sku", "qty"], ["A-1", "1"]]
    with pytest.raises(FileRejected) as info:
        check(rows)
    assert info.value.code == "ambiguous_kind"
    assert "sales or stock_counts" in info.value.reason and "file name" in info.value.reason
    assert check(rows, name="stock_counts_june.csv").kind.name == "stock_counts"
    assert check(rows, name="sales_2025-07-01.csv").kind.name == "sales"


def test_a_named_kind_must_have_its_required_columns():
    with pytest.raises(FileRejected, match="file name says products but the header lacks price") as info:
        check([["sku", "name"], ["A-1", "x"]], name="products.csv")
    assert info.value.cells == [(0, 0), (0, 1)]


def test_unknown_header_names_the_closest_kind():
    with pytest.raises(FileRejected, match="matches no kind of import; closest is products, which also "
                       "needs price") as info:
        check([["sku", "name"], ["A-1", "x"]])
    assert info.value.code == "unknown_kind"
    with pytest.raises(FileRejected, match="no header row found") as info:
        check([["foo", "sku"], ["1", "A-1"]])
    assert info.value.code == "no_header"


def test_duplicate_columns_are_refused_naming_both():
    with pytest.raises(FileRejected) as info:
        check([["sku", "Qty", "Quantity"], ["A-1", "1", "2"]], name="sales.csv")
    assert info.value.code == "duplicate_columns"
    assert "columns B ('Qty') and C ('Quantity') both mean quantity" in info.value.reason


def test_a_sales_file_with_dates_or_prices_is_refused_as_history_in_disguise():
    with pytest.raises(FileRejected, match="sales_history") as info:
        check([["sku", "qty", "date"], ["A-1", "1", "2025-06-01"]], name="sales.csv")
    assert info.value.code == "wrong_columns" and "column C ('date')" in info.value.reason


def test_unknown_columns_are_ignored_and_said_so():
    v = check([["sku", "counted", "Shelf"], ["A-1", "3", "top"]], name="stock_counts.csv")
    assert v.ok and any("C ('Shelf')" in n for n in v.notes)


def test_product_rules():
    v = check([
        ["sku", "name", "price", "initial_stock", "low_stock_threshold"],
        ["N-1", "New", "-1", "5", "0"],
        ["N-1", "Other", "2", "", ""],
        ["N-3", "Bread", "1.999", "x", ""],
        ["N/4", "=SUM(A1)", "3", "", ""],
        ["", "", "3", "", ""],
    ], name="products.csv")
    got = reasons(v)
    assert (2, "price", "must be 0 or more (got -1.00)") in got
    assert (2, "low_stock_threshold", "must be greater than 0 (got 0)") in got
    assert (3, "sku", "duplicate sku 'N-1' (already in row 2)") in got
    assert any(r == (4, "name", "the name 'Bread' already belongs to sku 'B-2' in the core "
                     "(product names are unique)") for r in got)
    assert (4, "price", "'1.999' is ambiguous (thousands or decimals?): write 1999 or 1.999") in got
    assert (4, "initial_stock", "'x' is not a whole number") in got
    assert any(r[0] == 5 and r[1] == "sku" and "cannot contain" in r[2] for r in got)
    assert any(r[0] == 5 and r[1] == "name" and "formula" in r[2] for r in got)
    assert (6, "sku", "sku is required") in got and (6, "name", "name is required") in got
    assert v.rows_rejected == 5 and v.rows_valid == 0


def test_sales_rules_stock_unknown_skus_and_receipts():
    v = check([
        ["receipt", "sku", "qty", "customer"],
        ["R1", "B-2", "2", "C1"],
        ["R1", "A-1", "0", "C2"],
        ["R2", "B-2", "2", ""],
        ["", "ZZZ", "1", ""],
    ], name="sales.csv")
    got = reasons(v)
    assert (3, "qty", "must be greater than 0 (got 0)") in got
    assert any(r[0] == 3 and r[1] == "customer" and "row 2 has 'C1'" in r[2] for r in got)
    assert (4, "qty", "not enough stock: the file sells 4 of 'B-2' up to this row, the core has 3") in got
    assert (5, "sku", "unknown sku 'ZZZ': not in the core's catalogue") in got


def test_rows_already_committed_by_an_interrupted_import_do_not_count_against_stock():
    rows = [["sku", "qty"], ["B-2", "2"], ["B-2", "2"]]
    assert not check(rows, name="sales.csv").ok
    catalogue = {**CATALOGUE, "B-2": {**CATALOGUE["B-2"], "stockQuantity": 1}}
    assert check(rows, name="sales.csv", catalogue=catalogue, committed_rows=frozenset({2})).ok is False
    assert check(rows, name="sales.csv", committed_rows=frozenset({2})).ok


def test_history_rules_and_dates():
    v = check([
        ["date", "time", "receipt", "sku", "qty", "unit_price"],
        ["2025-06-01", "10:00", "R1", "A-1", "1", "1.00"],
        ["01.06.2025", "11:00", "R1", "A-1", "1", "1.00"],
        ["2025-08-01", "", "", "A-1", "1", "1.00"],
        ["03/04/2025", "", "", "A-1", "1", "1.00"],
        ["2025-06-02", "25:00", "", "A-1", "1", "-1"],
    ], name="sales_history.csv")
    got = reasons(v)
    assert any(r[0] == 3 and r[1] == "time" and "row 2 has '10:00:00'" in r[2] for r in got)
    assert (4, "date", "2025-08-01 is in the future (today is 2025-07-01)") in got
    assert any(r[0] == 5 and "ambiguous" in r[2] for r in got)
    assert any(r[0] == 6 and r[1] == "time" for r in got)
    assert (6, "unit_price", "must be 0 or more (got -1.00)") in got


def test_expenses_and_customers_rules_need_no_catalogue():
    v = validate_grid(grid([["date", "amount", "category"], ["2025-06-01", "0", "Rent"],
                            ["2025-06-02", "1.234,56", ""]]),
                      filename="expenses.csv", today=TODAY, catalogue=None)
    assert reasons(v) == [(2, "amount", "must be greater than 0 (got 0.00)")]
    assert v.data["amount"][1] == Decimal("1234.56")
    v = validate_grid(grid([["customer_id", "name", "email"], ["C1", "Ada", "ada@example"],
                            ["C1", "Bob", ""]]),
                      filename="customers.csv", today=TODAY, catalogue=None)
    assert reasons(v) == [(2, "email", "not an e-mail address"),
                          (3, "customer_id", "duplicate customer_id 'C1' (already in row 2)")]


def test_columns_with_values_but_no_header():
    v = check([["sku", "counted", ""], ["A-1", "1", "oops"]], name="stock_counts.csv")
    assert reasons(v) == [(1, None, "this column has values but no header")]
    assert v.issues[0].col_index == 2 and v.rows_rejected == 0


def test_xlsx_values_types_and_formulas(tmp_path):
    path = write_xlsx(tmp_path / "history.xlsx", [
        ["Date", "SKU", "Qty", "Unit Price"],
        [datetime(2025, 6, 1), "A-1", 2, 1.5],
        [datetime(2025, 6, 2, 9, 30), "B-2", "=1+1", 2.5],
        [None, None, None, None],
        ["2025-06-03", "A-1", 1.0, "=B2"],
    ])
    v = validate_grid(read_file(path), filename="history.xlsx", today=TODAY, catalogue=CATALOGUE)
    assert v.kind.name == "sales_history" and v.row_numbers == [2, 3, 5]
    assert reasons(v) == [(3, "Qty", "a formula: paste the values instead (Paste Special > Values)"),
                          (5, "Unit Price", "a formula: paste the values instead (Paste Special > Values)")]
    assert v.data["time"][1].hour == 9 and v.data["date"][2] == date(2025, 6, 3)


def test_numbers_typed_into_text_columns_read_as_people_see_them(tmp_path):
    path = write_xlsx(tmp_path / "stock_counts.xlsx", [["sku", "counted"], [1001, 3], [1002.0, 4.0]])
    v = validate_grid(read_file(path), filename="stock_counts.xlsx", today=TODAY, catalogue=None)
    assert v.data["sku"] == ["1001", "1002"] and v.data["counted_quantity"] == [3, 4]


@pytest.mark.parametrize("encoding, bom, text", [
    ("utf-8", False, "Café crème"), ("utf-8", True, "Café crème"), ("utf-16-le", True, "Café ☕"),
    ("cp1252", False, "Café crème €"),
])
def test_csv_encodings(tmp_path, encoding, bom, text):
    path = write_csv(tmp_path / "customers.csv", [["customer_id", "name"], ["C1", text]],
                     encoding=encoding, bom=bom)
    g = read_file(path)
    assert g.rows[1] == ["C1", text]
    assert (g.encoding == "cp1252") == (encoding == "cp1252")


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_csv_delimiters_are_sniffed_even_with_quoted_delimiters(tmp_path, delimiter):
    rows = [["customer_id", "name", "city"], ["C1", f"Smith{delimiter} John", "Paris"],
            ["C2", "Line\nbreak", "Rome"]]
    g = read_file(write_csv(tmp_path / "customers.csv", rows, delimiter=delimiter))
    assert g.delimiter == delimiter and g.rows == rows


def test_sniffing_falls_back_to_comma_for_one_column():
    assert sniff_delimiter("just\none\ncolumn\n") == ","


def test_a_sheet_named_after_the_kind_wins_over_the_first_sheet(tmp_path):
    path = write_xlsx(tmp_path / "book.xlsx", [["notes"], ["hello"]], sheet="Read me",
                      extra_sheets={"Stock Counts": [["sku", "counted"], ["A-1", 1]]})
    g = read_file(path)
    assert g.sheet == "Stock Counts" and g.rows[1] == ["A-1", 1]
    two = write_xlsx(tmp_path / "two.xlsx", [["sku"]], sheet="sales",
                     extra_sheets={"products": [["sku"]]})
    with pytest.raises(FileRejected, match="several kinds"):
        read_file(two)
    from salesflow.imports.kinds import KINDS
    assert read_file(two, hint=KINDS["products"]).sheet == "products"


def test_the_formula_scanner_finds_matches_across_chunk_boundaries():
    data = sheet_xml([["a", "b"]] + [[i, i] for i in range(300)]).encode()
    data = data.replace(b'<c r="B150"><v>148</v></c>', b'<c r="B150"><f>1+1</f><v>2</v></c>')
    from salesflow.imports.reading import _FORMULA, _ROW
    for size in (7, 64, 1000, len(data)):
        f, r = _ChunkScanner(_FORMULA, overlap=256), _ChunkScanner(_ROW, overlap=16, limit=0)
        for i in range(0, len(data), size):
            f.feed(data[i:i + size])
            r.feed(data[i:i + size])
        f.feed(b"", final=True)
        r.feed(b"", final=True)
        assert r.count == 301 and f.count == 1
        assert re.search(rb'r="B150"', f.found[0].group(1))


def test_prefixed_namespaces_are_scanned_too(tmp_path):
    xml = sheet_xml([["sku", "counted"], ["A-1", 1]])
    xml = xml.replace("<worksheet xmlns=", "<x:worksheet xmlns:x=").replace("</worksheet>", "</x:worksheet>")
    for tag in ("sheetData", "row", "c", "v", "is", "t"):
        xml = re.sub(rf"<(/?){tag}\b", rf"<\1x:{tag}", xml)
    xml = xml.replace('<x:c r="B2"><x:v>1</x:v></x:c>', '<x:c r="B2"><x:f>0+1</x:f><x:v>1</x:v></x:c>')
    g = read_file(raw_xlsx(tmp_path / "stock_counts.xlsx", xml))
    assert g.formulas == [(1, 1)]


@pytest.mark.parametrize("kind_name", ["products", "stock_counts", "sales", "sales_history",
                                       "customers", "expenses"])
def test_templates_are_recognised_once_filled_in_and_refused_while_empty(tmp_path, kind_name):
    from openpyxl import load_workbook

    from salesflow.imports.kinds import KINDS
    from salesflow.imports.templates import ensure_templates

    folder = tmp_path / "templates"
    written = ensure_templates(folder)
    assert len(written) == 2 * len(KINDS) + 1 and ensure_templates(folder) == []
    kind = KINDS[kind_name]
    catalogue = {"SKU-0001": {"sku": "SKU-0001", "name": "Other", "price": 1, "stockQuantity": 99}}
    with pytest.raises(FileRejected, match="header but no data rows"):
        validate_grid(read_file(folder / f"{kind_name}.xlsx"), filename=f"{kind_name}.xlsx",
                      today=TODAY, catalogue=catalogue)
    csv_template = read_file(folder / f"{kind_name}.csv")
    assert csv_template.rows == [[c.name for c in kind.columns]] and csv_template.encoding == "utf-8-sig"

    wb = load_workbook(folder / f"{kind_name}.xlsx")
    assert wb.sheetnames == [kind_name, "About"]
    assert wb[kind_name]["A1"].comment is not None
    wb[kind_name].append([c.example for c in kind.columns])
    filled = tmp_path / "upload.xlsx"  # a name that says nothing: the header decides
    wb.save(filled)
    v = validate_grid(read_file(filled), filename=filled.name, today=TODAY, catalogue=catalogue)
    assert v.kind.name == kind_name and v.ok, [i.reason for i in v.issues]
    assert v.rows_total == 1


# -- every rule of the core, mirrored before anything is sent -------------------------------
FORMULA = "text cannot start with {} (a spreadsheet formula)"


def test_formula_prefixes_in_text_columns_are_refused_naming_row_and_column():
    v = check([
        ["sku", "name", "price", "description"],
        ["F-1", "+cmd|' /C calc'!A0", "1", ""],
        ["F-2", '@HYPERLINK("http://evil","x")', "1", ""],
        ["F-3", "-2+3", "1", ""],
        ["F-4", "Tabbed", "1", "\tSUM(1)"],
        ["F-5", "\rCarriage", "1", ""],
        ["F-6", "=1+1", "1", " =trimmed"],
        ["F-7", "Plain -2+3 @ok", "1", "fine + dandy"],
    ], name="products.csv")
    assert reasons(v) == [
        (2, "name", FORMULA.format("+")),
        (3, "name", FORMULA.format("@")),
        (4, "name", FORMULA.format("-")),
        (5, "description", FORMULA.format("a tab")),
        (6, "name", FORMULA.format("a carriage return")),
        (7, "name", FORMULA.format("=")), (7, "description", FORMULA.format("=")),
    ]
    assert [i.where() for i in v.issues[:1]] == ["row 2 column B (name)"]
    assert v.rows_valid == 1 and v.data["name"][-1] == "Plain -2+3 @ok"


def test_numbers_in_numeric_columns_still_parse_and_formulas_there_are_not_numbers():
    v = check([
        ["sku", "name", "price", "initial_stock", "low_stock_threshold"],
        ["N-1", "One", "+2.50", "+5", "+3"],
        ["N-2", "Two", "-2+3", "-5", "-5"],
    ], name="products.csv")
    assert v.data["price"][0] == Decimal("2.50") and v.data["initial_stock"][0] == 5
    assert v.data["low_stock_threshold"][0] == 3
    assert reasons(v) == [
        (3, "price", "'-2+3' is not an amount"),
        (3, "initial_stock", "must be at least 0 (got -5)"),
        (3, "low_stock_threshold", "must be greater than 0 (got -5)"),
    ]


def test_formula_prefixes_in_every_text_column_of_every_kind():
    v = validate_grid(grid([["customer_id", "name", "email", "phone", "city"],
                            ["C1", "Ada", "=x@example.com", "+44 20 7946 0000", "-2+3"],
                            ["@C2", "Bob", "", "+1 (555) 010-9999", ""],
                            ["C3", "Cy", "", "+1 555 0100+cmd", ""]]),
                      filename="customers.csv", today=TODAY, catalogue=None)
    assert reasons(v) == [(2, "email", FORMULA.format("=")), (2, "city", FORMULA.format("-")),
                          (3, "customer_id", FORMULA.format("@")), (4, "phone", FORMULA.format("+"))]
    v = check([["date", "receipt", "sku", "qty", "unit_price", "product_name"],
               ["2025-06-01", "+R1", "A-1", "1", "1", "@x"]], name="sales_history.csv")
    assert reasons(v) == [(2, "receipt", FORMULA.format("+")), (2, "product_name", FORMULA.format("@"))]
    v = check([["date", "amount", "vendor"], ["2025-06-01", "3", "-Acme"]], name="expenses.csv")
    assert reasons(v) == [(2, "vendor", FORMULA.format("-"))]


def test_a_products_file_with_a_path_unsafe_sku_is_refused_before_anything_is_sent():
    v = check([["sku", "name", "price"], ["IMP-1", "One", "1"], ["IMP-2", "Two", "2"],
               ["IMP'3;", "Three", "3"]], name="products.csv")
    assert len(v.issues) == 1 and (v.issues[0].row, v.issues[0].column) == (4, "sku")
    assert "cannot contain ';'" in v.issues[0].reason


def test_skus_go_into_web_addresses_only_for_products_and_stock_counts():
    catalogue = {**CATALOGUE, "A;1": {"sku": "A;1", "name": "Odd", "price": 1.0, "stockQuantity": 5}}
    assert check([["sku", "qty"], ["A;1", "1"]], name="sales.csv", catalogue=catalogue).ok
    v = check([["sku", "counted"], ["A;1", "1"]], name="stock_counts.csv", catalogue=catalogue)
    assert [(r, c) for r, c, _ in reasons(v)] == [(2, "sku")] and "';'" in v.issues[0].reason


def test_lengths_are_counted_as_the_core_counts_them():
    v = check([["sku", "name", "price"],
               ["L-1", "é" * 100, "1"],
               ["L-2", "😀" * 51, "1"],
               ["😀" * 26, "Long sku", "1"],
               ["L-4", "x" * 101, "1"]], name="products.csv")
    assert reasons(v) == [
        (3, "name", "102 characters as the core counts them (some count twice); at most 100"),
        (4, "sku", "52 characters as the core counts them (some count twice); at most 50"),
        (5, "name", "101 characters; at most 100"),
    ]


def test_numbers_stay_within_the_cores_ranges():
    v = check([["sku", "name", "price", "initial_stock", "low_stock_threshold"],
               ["R-1", "Max", "9,999,999,999.99", "2147483647", "2147483647"],
               ["R-2", "Over", "10000000000", "2147483648", "99999999999"]], name="products.csv")
    assert v.data["price"][0] == Decimal("9999999999.99") and v.data["initial_stock"][0] == 2**31 - 1
    assert reasons(v) == [
        (3, "price", "10000000000.00 is more than 9,999,999,999.99, the largest amount the core keeps"),
        (3, "initial_stock", "2,147,483,648 is too large: at most 2,147,483,647"),
        (3, "low_stock_threshold", "99,999,999,999 is too large: at most 2,147,483,647"),
    ]
    v = validate_grid(grid([["date", "amount"], ["2025-06-01", "12345678901"]]),
                      filename="expenses.csv", today=TODAY, catalogue=None)
    assert [(r, c) for r, c, _ in reasons(v)] == [(2, "amount")]


def test_sale_amounts_the_core_would_compute_stay_within_its_range():
    catalogue = {**CATALOGUE, "GOLD": {"sku": "GOLD", "name": "Gold", "price": 6e9, "stockQuantity": 9}}
    v = check([["receipt", "sku", "qty"], ["R1", "GOLD", "1"], ["R2", "GOLD", "2"],
               ["R3", "GOLD", "1"], ["R3", "GOLD", "1"]], name="sales.csv", catalogue=catalogue)
    assert reasons(v) == [
        (3, "qty", "the line comes to 12000000000.00 at the core's price 6000000000.00: more than "
                   "9,999,999,999.99, the largest amount the core keeps"),
        (5, "qty", "sale 'R3' comes to 12000000000.00 up to this line: more than 9,999,999,999.99, "
                   "the largest amount the core keeps"),
    ]
    v = check([["date", "receipt", "sku", "qty", "unit_price"],
               ["2025-06-01", "R1", "A-1", "2147483647", "9999999999.99"],
               ["2025-06-01", "R2", "A-1", "1", "6000000000"],
               ["2025-06-01", "R2", "B-2", "1", "6000000000"]], name="sales_history.csv")
    assert [(r, c) for r, c, _ in reasons(v)] == [(2, "qty"), (4, "qty")]
    assert "the line comes to" in v.issues[0].reason and "sale 'R2' comes to" in v.issues[1].reason

