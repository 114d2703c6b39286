"""Display formatting shared by the PDF, the e-mails and the run metadata."""

from __future__ import annotations

import calendar
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

NA = "n/a"


def _group(value: Decimal, places: int) -> str:
    q = Decimal(1).scaleb(-places)
    return f"{value.quantize(q, rounding=ROUND_HALF_UP):,.{places}f}"


def fmt_value(value, kind: str, currency: str = "") -> str:
    """``value`` as a person reads it; ``kind`` is a report column kind."""
    if value is None:
        return NA if kind in ("money", "pct", "int", "dec1", "dec3", "num") else ""
    if kind == "money":
        text = _group(Decimal(str(value)), 2)
        return f"{text} {currency}".rstrip()
    if kind == "int":
        return f"{int(value):,}"
    if kind == "pct":
        return f"{_group(Decimal(str(value)), 2)} %"
    if kind == "dec1":
        return _group(Decimal(str(value)), 1)
    if kind == "dec3":
        return _group(Decimal(str(value)), 3)
    if kind == "num":
        return _group(Decimal(repr(float(value))), 2)
    if kind == "month" and isinstance(value, (date, datetime)):
        return f"{value:%b %Y}"
    if kind in ("date", "month"):
        return value.isoformat() if isinstance(value, (date, datetime)) else str(value)
    return str(value)


def fmt_change(value, kind: str, currency: str = "") -> str:
    """A signed difference: money and counts as amounts, percentages in points."""
    if value is None:
        return NA
    sign = "+" if value > 0 else ("-" if value < 0 else "")
    mag = abs(value)
    if kind == "pct":
        return f"{sign}{_group(Decimal(str(mag)), 2)} pts"
    return sign + fmt_value(mag, kind, currency)


def fmt_growth(value) -> str:
    if value is None:
        return NA
    sign = "+" if value > 0 else ""
    return f"{sign}{_group(Decimal(str(value)), 2)} %"


def span_label(start: date, end: date) -> str:
    """A period as the reports and their sentences name it: "Friday 2 December 2011",
    "November 2011" (a whole calendar month), "1 - 15 December 2024", "28 November -
    4 December 2011", "28 December 2024 - 3 January 2025"."""
    if start == end:
        return f"{start:%A} {start.day} {start:%B %Y}"
    if (start.year, start.month) == (end.year, end.month):
        if start.day == 1 and end.day == calendar.monthrange(end.year, end.month)[1]:
            return f"{start:%B %Y}"
        return f"{start.day} - {end.day} {end:%B %Y}"
    if start.year == end.year:
        return f"{start.day} {start:%B} - {end.day} {end:%B %Y}"
    return f"{start.day} {start:%B %Y} - {end.day} {end:%B %Y}"
