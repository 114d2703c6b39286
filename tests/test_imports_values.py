"""Cell parsers of the imports: numbers written as text, money, dates in several formats."""

from datetime import date, datetime, time
from decimal import Decimal

import pytest

from salesflow.imports import values as V
from salesflow.imports.kinds import kind_from_filename, normalize_header
from salesflow.imports.workbooks import neutralise


@pytest.mark.parametrize("text, expected", [
    ("12", 12), (" 12 ", 12), ("+7", 7), ("-3", -3), ("1,234", 1234), ("1 234", 1234),
    ("1\u00a0234\u00a0567", 1234567), ("1'234", 1234), ("12.0", 12), (12.0, 12), (5, 5),
])
def test_whole_numbers_accepted(text, expected):
    assert V.parse_int(text) == expected


@pytest.mark.parametrize("text, reason", [
    ("1.234", "ambiguous"), ("12.5", "not a whole number"), (12.5, "not a whole number"),
    ("12,5", "not a whole number"), ("1,23", "not a whole number"), ("abc", "not a whole number"),
    (True, "TRUE/FALSE"), (datetime(2025, 1, 1), "date"), ("", "not a whole number"),
])
def test_whole_numbers_refused(text, reason):
    with pytest.raises(V.CellError, match=reason):
        V.parse_int(text)


@pytest.mark.parametrize("text, expected", [
    ("12", "12.00"), ("12.5", "12.50"), ("12,50", "12.50"), ("1,234.50", "1234.50"),
    ("1.234,50", "1234.50"), ("1 234,5", "1234.50"), ("1,234,567", "1234567.00"),
    ("1.234.567,89", "1234567.89"), ("€12.50", "12.50"), ("12.50 €", "12.50"), ("$0.99", "0.99"),
    (12.5, "12.50"), (0.1 + 0.2, "0.30"), (19.99, "19.99"), (3, "3.00"), ("-4.20", "-4.20"),
])
def test_money_accepted_exactly(text, expected):
    assert V.parse_money(text) == Decimal(expected)


@pytest.mark.parametrize("text, reason", [
    ("1,234", "ambiguous"), ("1.234", "ambiguous"), ("12.345", "ambiguous"),
    ("0.125", "more than 2 decimals"), ("12.3456", "more than 2 decimals"),
    (12.345, "more than 2 decimals"), ("12,3456", "more than 2 decimals"),
    ("1,23,4", "not an amount"), ("twelve", "not an amount"), ("1e3", "not an amount"),
    (float("nan"), "not a number"),
])
def test_money_refused(text, reason):
    with pytest.raises(V.CellError, match=reason):
        V.parse_money(text)


@pytest.mark.parametrize("value, expected", [
    ("2025-03-07", (date(2025, 3, 7), None)),
    ("2025/3/7", (date(2025, 3, 7), None)),
    ("2025-03-07 14:05", (date(2025, 3, 7), time(14, 5))),
    ("2025-03-07T14:05:09", (date(2025, 3, 7), time(14, 5, 9))),
    ("07.03.2025", (date(2025, 3, 7), None)),
    ("7 Mar 2025", (date(2025, 3, 7), None)),
    ("7-March-2025", (date(2025, 3, 7), None)),
    ("March 7, 2025", (date(2025, 3, 7), None)),
    ("05/05/2025", (date(2025, 5, 5), None)),
    (datetime(2025, 3, 7), (date(2025, 3, 7), None)),
    (datetime(2025, 3, 7, 9, 30), (date(2025, 3, 7), time(9, 30))),
    (date(2025, 3, 7), (date(2025, 3, 7), None)),
])
def test_dates_accepted(value, expected):
    assert V.parse_datetime(value) == expected


@pytest.mark.parametrize("value, reason", [
    ("07/03/25", "two-digit year"), ("2025-02-30", "not a valid date"), ("31.13.2025", "not a valid date"),
    ("1999-12-31", "before 2000"), (45000, "a number, not a date"), ("soon", "not a date"),
    ("Smarch 3, 2025", "not a date"),
])
def test_dates_refused(value, reason):
    with pytest.raises(V.CellError, match=reason):
        V.parse_datetime(value)


def test_slash_dates_follow_the_evidence_in_their_column():
    def slash(text):
        with pytest.raises(V.SlashDate) as info:
            V.parse_datetime(text)
        return info.value

    day_first = [(i, slash(t)) for i, t in enumerate(["03/04/2025", "25/04/2025"])]
    parsed, errors = V.resolve_slash_dates(day_first)
    assert parsed == {0: (date(2025, 4, 3), None), 1: (date(2025, 4, 25), None)} and not errors

    month_first = [(i, slash(t)) for i, t in enumerate(["03/04/2025", "04/25/2025"])]
    parsed, errors = V.resolve_slash_dates(month_first)
    assert parsed[0] == (date(2025, 3, 4), None) and parsed[1][0] == date(2025, 4, 25)

    parsed, errors = V.resolve_slash_dates([(0, slash("03/04/2025"))])
    assert not parsed and "ambiguous" in errors[0] and "YYYY-MM-DD" in errors[0]

    mixed = [(i, slash(t)) for i, t in enumerate(["25/04/2025", "04/25/2025"])]
    parsed, errors = V.resolve_slash_dates(mixed)
    assert not parsed and all("mixes" in e for e in errors.values())


def test_text_cells():
    assert V.as_text(1001.0) == "1001"
    assert V.as_text(" SKU-1 ") == "SKU-1"
    assert V.as_text(datetime(2025, 1, 2)) == "2025-01-02"
    with pytest.raises(V.CellError, match="U\\+0007"):
        V.as_text("bell\x07")
    with pytest.raises(V.CellError, match="U\\+202E"):
        V.as_text("evil\u202etxt.exe")
    with pytest.raises(V.CellError, match="32,767"):
        V.as_text("x" * 40_000)
    with pytest.raises(V.CellError, match="sku"):
        V.parse_sku("A/B")


@pytest.mark.parametrize("header, key", [
    (" Unit Price (€) ", "unit_price"), ("Receipt #", "receipt_no"), ("QTY", "qty"),
    ("unitPrice", "unit_price"), ("Quantité", "quantite"), ("\ufeffsku", "sku"),
    ("Low-stock  threshold", "low_stock_threshold"),
])
def test_header_normalisation(header, key):
    assert normalize_header(header) == key


@pytest.mark.parametrize("name, kind", [
    ("products_2025.xlsx", "products"), ("Stock Counts June.csv", "stock_counts"),
    ("sales_history_2024.csv", "sales_history"), ("sales-2025-06-30.xlsx", "sales"),
    ("Customers.CSV", "customers"), ("expenses.xlsx", "expenses"), ("june.xlsx", None),
    ("salesman.csv", None),
])
def test_kind_hint_from_the_file_name(name, kind):
    found = kind_from_filename(name)
    assert (found.name if found else None) == kind


@pytest.mark.parametrize("value, written", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"), ("+cmd", "'+cmd"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("-5", "-5"), ("+1 234,50", "+1 234,50"), ("plain", "plain"),
    ("a\x00b", "a\ufffdb"), (12, 12), (None, None),
])
def test_neutralise_makes_formula_like_text_inert(value, written):
    assert neutralise(value) == written


@pytest.mark.parametrize("sku, reason", [
    ("IMP'3;", "cannot contain ';'"), ("50%OFF", "cannot contain '%'"), ("A/B", "cannot contain '/'"),
    ("A\\B", "cannot contain '\\\\'"), ("A\nB", "line breaks"), ("A\tB", "tabs"),
    ("A\u2028B", "line breaks"), ("A\u2029B", "line breaks"), ("A\x00B", "U\\+0000"),
    (".", "cannot be '.'"), ("..", "cannot be '..'"),
])
def test_skus_the_cores_firewall_refuses_in_a_web_address_are_refused(sku, reason):
    with pytest.raises(V.CellError, match=reason):
        V.parse_sku(sku)


@pytest.mark.parametrize("sku", ["A?B", "BOLT#4", "...", "a.b", "IMP'3", "Café crème", "x y", "~+_"])
def test_skus_the_core_takes_once_percent_encoded_are_kept(sku):
    assert V.parse_sku(sku) == sku


@pytest.mark.parametrize("text, expected", [("-5", -5), ("+5", 5), (" -5 ", -5), ("-1,234", -1234)])
def test_signed_numbers_in_numeric_columns_still_parse(text, expected):
    assert V.parse_int(text) == expected


@pytest.mark.parametrize("parse, text, reason", [
    (V.parse_int, "-2+3", "'-2\\+3' is not a whole number"),
    (V.parse_money, "-2+3", "'-2\\+3' is not an amount"),
    (V.parse_int, "=2+3", "'=2\\+3' is not a whole number"),
    (V.parse_money, "@SUM(1)", "'@SUM\\(1\\)' is not an amount"),
])
def test_formulas_in_numeric_columns_are_not_numbers(parse, text, reason):
    with pytest.raises(V.CellError, match=reason):
        parse(text)


def test_java_length_counts_utf16_code_units_as_the_core_does():
    assert V.java_length("abc") == 3 and V.java_length("é") == 1 and V.java_length("😀") == 2
