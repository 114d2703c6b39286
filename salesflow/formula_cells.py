"""The one rule for text that a spreadsheet would run as a formula or a DDE payload.

Text starting with ``= + - @``, a tab or a carriage return (after leading spaces) is
formula-like. The xlsx reports and the import error workbooks mark such cells with Excel's quote prefix; CSV exports, which
have no cell types, write them with a leading apostrophe instead. Numbers are never text here,
so a negative number stays a number.
"""

from __future__ import annotations

import re

# The same rule as a regular expression that Python and DuckDB (RE2) both read.
FORMULA_PATTERN = r"^ *[=+\-@\t\r]"
_FORMULA = re.compile(FORMULA_PATTERN)


def is_formula_like(text: str) -> bool:
    return _FORMULA.match(text) is not None


def neutralise_sql(expr: str) -> str:
    """A DuckDB expression that prefixes the VARCHAR ``expr`` with an apostrophe when it is formula-like."""
    return f"CASE WHEN regexp_matches({expr}, '{FORMULA_PATTERN}') THEN '''' || {expr} ELSE {expr} END"
