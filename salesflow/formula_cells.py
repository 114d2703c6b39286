"""The one rule for text that a spreadsheet would run as a formula or a DDE payload.

Text starting with ``= + - @``, a tab or a carriage return (after leading spaces) is
formula-like. The xlsx reports mark such cells with Excel's quote prefix; CSV exports, which
have no cell types, write them with a leading apostrophe instead. Numbers are never text here,
so a negative number stays a number.
"""

from __future__ import annotations

import re

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# The same rule as a regular expression that Python and DuckDB (RE2) both read.
FORMULA_PATTERN = r"^ *[=+\-@\t\r]"
_FORMULA = re.compile(FORMULA_PATTERN)


def is_formula_like(text: str) -> bool:
    return _FORMULA.match(text) is not None


def neutralise(text: str) -> str:
    """``text`` with a leading apostrophe when it is formula-like, else unchanged."""
    return "'" + text if is_formula_like(text) else text


def neutralise_sql(expr: str) -> str:
    """A DuckDB expression applying :func:`neutralise` to the VARCHAR expression ``expr``."""
    return f"CASE WHEN regexp_matches({expr}, '{FORMULA_PATTERN}') THEN '''' || {expr} ELSE {expr} END"
