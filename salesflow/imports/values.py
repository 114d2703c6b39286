"""Cell parsers. Each returns the parsed value or raises ``CellError`` with the reason a person
reads next to the cell. Cells come from calamine (str, int, float, bool, datetime, date, time,
timedelta, pandas Timestamp) or from CSV (str).

Numbers written as text are accepted when they can be read one way only:

* whole numbers: ``1234``, ``1,234``, ``1 234`` (groups of three digits after a comma, space,
  no-break space or apostrophe); ``1.234`` is refused (a decimal point or a German thousands
  separator?), as is ``12.5``;
* money: a point or a comma as the decimal separator with one or two decimals (``12.5``,
  ``12,50``), thousands groups before it (``1,234.50``, ``1.234,50``, ``1 234,50``), an
  optional currency sign (€ $ £); ``1,234`` and ``1.234`` alone are refused as ambiguous,
  and more than two decimals are refused (money is exact to the cent).

Dates: Excel date cells, ``2025-03-07`` (also with a time, or with slashes), ``07.03.2025``
(day first, as written wherever dots are used), ``7 Mar 2025`` / ``March 7, 2025``, and
``07/03/2025`` style only when the column shows which part is the day (see
``resolve_slash_dates``). Two-digit years and dates before 2000 are refused.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")
MIN_DATE = date(2000, 1, 1)
MAX_CELL_CHARS = 32_767  # Excel's own limit for one cell
MAX_INT = 2**31 - 1  # the core's counts are Java ints
MAX_AMOUNT = Decimal("9999999999.99")  # the core's amounts are NUMERIC(12,2)


class CellError(ValueError):
    pass


def is_blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    if isinstance(value, float):
        return math.isnan(value)
    try:  # pandas NaT
        return value != value
    except Exception:  # noqa: BLE001
        return False


_BAD_FORMAT = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def control_characters(text: str) -> str | None:
    """The first control character in ``text`` (tabs and line breaks are allowed), or None."""
    for ch in text:
        if ch in "\t\r\n":
            continue
        if unicodedata.category(ch) == "Cc" or ch in _BAD_FORMAT:
            return f"U+{ord(ch):04X}"
    return None


def _check_text(text: str) -> str:
    if len(text) > MAX_CELL_CHARS:
        raise CellError(f"cell has {len(text):,} characters; the limit is {MAX_CELL_CHARS:,}")
    bad = control_characters(text)
    if bad:
        raise CellError(f"contains the control character {bad}")
    return text


def as_text(value) -> str:
    """A cell as text: whole floats without ``.0``, dates in ISO form."""
    if isinstance(value, str):
        return _check_text(value.strip())
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 2**53:
            return str(int(value))
        return repr(value)
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (date, time)):
        return value.isoformat()
    if hasattr(value, "to_pydatetime"):
        return as_text(value.to_pydatetime())
    return _check_text(str(value).strip())


def java_length(text: str) -> int:
    """The length Java's ``String.length()`` gives: UTF-16 code units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


# Spring Security's StrictHttpFirewall refuses these in a path, even percent-encoded.
_PATH_REFUSED = ";%/\\"
_PATH_BREAKS = "\t\r\n\u2028\u2029"


def parse_sku(value) -> str:
    """A sku the core can be asked about in ``/products/by-sku/{sku}`` once percent-encoded."""
    text = as_text(value)
    for ch in text:
        if ch in _PATH_REFUSED:
            raise CellError(f"a sku cannot contain '{ch}': the core refuses it in a web address")
        if ch in _PATH_BREAKS:
            raise CellError("a sku cannot contain line breaks or tabs")
        if unicodedata.category(ch) == "Cs":
            raise CellError(f"contains the invalid character U+{ord(ch):04X}")
    if text in (".", ".."):
        raise CellError(f"a sku cannot be {text!r}: web addresses read it as a folder")
    return text


_FORMULA_START = {"=": "=", "+": "+", "-": "-", "@": "@", "\t": "a tab",
                  "\r": "a carriage return", "\n": "a line break"}
_PHONE = re.compile(r"^\+[\d ().\-/]+$")


def check_formula(raw, text: str, *, phone: bool = False) -> None:
    """Refuse text a spreadsheet would read as a formula (``= + - @``, a leading tab or line
    break in the cell as read); a phone number may start with ``+``."""
    start = None
    if isinstance(raw, str):
        lead = raw[: len(raw) - len(raw.lstrip())]
        start = next((_FORMULA_START[ch] for ch in lead if ch in "\t\r\n"), None)
    if start is None and text[:1] in _FORMULA_START and not (phone and _PHONE.match(text)):
        start = _FORMULA_START[text[0]]
    if start is not None:
        raise CellError(f"text cannot start with {start} (a spreadsheet formula)")


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_email(value) -> str:
    text = as_text(value)
    check_formula(value, text)
    if not _EMAIL.match(text):
        raise CellError("not an e-mail address")
    return text


# -- numbers -------------------------------------------------------------------------------
_SPACES = "\u00a0\u202f\u2009 '’"
_CURRENCY = "€$£"
_PLAIN_INT = re.compile(r"^[+-]?\d+$")
_GROUPED_INT = re.compile(r"^[+-]?[1-9]\d{0,2}(?:[,\u00a0\u202f\u2009 '’]\d{3})+$")


def _clean_number_text(text: str) -> str:
    text = text.strip()
    for sign in _CURRENCY:
        text = text.replace(sign, "")
    return text.strip()


def parse_int(value) -> int:
    if isinstance(value, bool):
        raise CellError("TRUE/FALSE is not a number")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise CellError("not a number")
        if not value.is_integer():
            raise CellError(f"{value:g} is not a whole number")
        return int(value)
    if isinstance(value, (datetime, date, time, timedelta)) or hasattr(value, "to_pydatetime"):
        raise CellError("a date or time, not a number")
    text = _clean_number_text(as_text(value))
    if _PLAIN_INT.match(text):
        return int(text)
    if _GROUPED_INT.match(text):
        return int(re.sub(r"[^\d+-]", "", text))
    if re.match(r"^[+-]?\d+\.0+$", text):
        return int(text.split(".")[0])
    if re.match(r"^[+-]?\d{1,3}(?:\.\d{3})+$", text):
        raise CellError(f"{text!r} is ambiguous: write it without a point ({text.replace('.', '')})")
    if re.match(r"^[+-]?\d*[.,]\d+$", text):
        raise CellError(f"{text!r} is not a whole number")
    raise CellError(f"{text!r} is not a whole number")


def _money_from_decimal(d: Decimal, shown: str) -> Decimal:
    if not d.is_finite():
        raise CellError("not a number")
    if d != d.quantize(CENT, rounding=ROUND_HALF_UP):
        raise CellError(f"{shown} has more than 2 decimals")
    return d.quantize(CENT)


_MONEY_PLAIN = re.compile(r"^[+-]?\d+(?:\.\d{1,2})?$")
_MONEY_COMMA_DEC = re.compile(r"^[+-]?\d+,\d{1,2}$")
_MONEY_US = re.compile(r"^[+-]?[1-9]\d{0,2}(?:[,\u00a0\u202f\u2009 '’]\d{3})+(?:\.\d{1,2})?$")
_MONEY_EU = re.compile(r"^[+-]?[1-9]\d{0,2}(?:[.\u00a0\u202f\u2009 '’]\d{3})+(?:,\d{1,2})?$")
_MONEY_AMBIGUOUS = re.compile(r"^[+-]?[1-9]\d{0,2}[.,]\d{3}$")


def parse_money(value) -> Decimal:
    if isinstance(value, bool):
        raise CellError("TRUE/FALSE is not an amount")
    if isinstance(value, int):
        return Decimal(value).quantize(CENT)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise CellError("not a number")
        cents = value * 100
        if abs(cents - round(cents)) > max(1e-6, abs(cents) * 1e-12):
            raise CellError(f"{value!r} has more than 2 decimals")
        return (Decimal(round(cents)) / 100).quantize(CENT)
    if isinstance(value, (datetime, date, time, timedelta)) or hasattr(value, "to_pydatetime"):
        raise CellError("a date or time, not an amount")
    text = _clean_number_text(as_text(value))
    if _MONEY_AMBIGUOUS.match(text):
        raise CellError(
            f"{text!r} is ambiguous (thousands or decimals?): write "
            f"{text.replace(',', '').replace('.', '')} or {text.replace(',', '.')}"
        )
    if _MONEY_PLAIN.match(text):
        return _money_from_decimal(Decimal(text), repr(text))
    if _MONEY_COMMA_DEC.match(text):
        return _money_from_decimal(Decimal(text.replace(",", ".")), repr(text))
    if _MONEY_US.match(text):
        return _money_from_decimal(Decimal(re.sub(r"[^\d.+-]", "", text)), repr(text))
    if _MONEY_EU.match(text):
        digits = re.sub(r"[^\d,+-]", "", text).replace(",", ".")
        return _money_from_decimal(Decimal(digits), repr(text))
    if re.match(r"^[+-]?\d+(?:[.,]\d{3,})$", text):
        raise CellError(f"{text!r} has more than 2 decimals")
    try:
        Decimal(text)
    except InvalidOperation:
        raise CellError(f"{text!r} is not an amount") from None
    raise CellError(f"{text!r} is not an amount")


# -- dates and times -----------------------------------------------------------------------
_MONTHS = {
    m: i + 1
    for i, names in enumerate(
        [("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"),
         ("may",), ("jun", "june"), ("jul", "july"), ("aug", "august"),
         ("sep", "sept", "september"), ("oct", "october"), ("nov", "november"),
         ("dec", "december")]
    )
    for m in names
}
_ISO = re.compile(
    r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$"
)
_DOTTED = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_SLASH = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})(?: (\d{1,2}):(\d{2})(?::(\d{2}))?)?$")
_DAY_MONTH_NAME = re.compile(r"^(\d{1,2})[ -]([A-Za-z]{3,9})\.?[ -](\d{4})$")
_MONTH_NAME_DAY = re.compile(r"^([A-Za-z]{3,9})\.? (\d{1,2}),? (\d{4})$")
_SHORT_YEAR = re.compile(r"^\d{1,2}[./-]\d{1,2}[./-]\d{2}$")


class SlashDate(CellError):
    """A ``a/b/yyyy`` date whose reading depends on the rest of the column."""

    def __init__(self, a: int, b: int, year: int, clock: time | None):
        super().__init__("ambiguous date")
        self.a, self.b, self.year, self.clock = a, b, year, clock


def _mk_date(y: int, m: int, d: int, shown: str) -> date:
    try:
        day = date(y, m, d)
    except ValueError:
        raise CellError(f"{shown!r} is not a valid date") from None
    if day < MIN_DATE:
        raise CellError(f"{shown!r} is before {MIN_DATE.isoformat()}")
    return day


def _mk_time(h, m, s, shown: str) -> time | None:
    if h is None:
        return None
    try:
        return time(int(h), int(m), int(s or 0))
    except ValueError:
        raise CellError(f"{shown!r} has an invalid time") from None


def parse_datetime(value) -> tuple[date, time | None]:
    """A date cell: the date and, when the cell carries one, its time of day."""
    if isinstance(value, bool):
        raise CellError("TRUE/FALSE is not a date")
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        if value.date() < MIN_DATE:
            raise CellError(f"{value.date().isoformat()} is before {MIN_DATE.isoformat()}")
        t = value.time().replace(microsecond=0)
        return value.date(), (None if t == time(0) else t)
    if isinstance(value, date):
        if value < MIN_DATE:
            raise CellError(f"{value.isoformat()} is before {MIN_DATE.isoformat()}")
        return value, None
    if isinstance(value, (int, float)):
        raise CellError("a number, not a date: format the cell as a date or write 2025-03-07")
    if isinstance(value, (time, timedelta)):
        raise CellError("a time, not a date")
    text = as_text(value)
    m = _ISO.match(text)
    if m:
        y, mo, d, h, mi, s = m.groups()
        return _mk_date(int(y), int(mo), int(d), text), _mk_time(h, mi, s, text)
    m = _DOTTED.match(text)
    if m:
        d, mo, y, h, mi, s = m.groups()
        return _mk_date(int(y), int(mo), int(d), text), _mk_time(h, mi, s, text)
    m = _SLASH.match(text)
    if m:
        a, b, y, h, mi, s = m.groups()
        clock = _mk_time(h, mi, s, text)
        a, b, y = int(a), int(b), int(y)
        if a == b:
            return _mk_date(y, a, a, text), clock
        raise SlashDate(a, b, y, clock)
    m = _DAY_MONTH_NAME.match(text)
    if m and m.group(2).lower() in _MONTHS:
        return _mk_date(int(m.group(3)), _MONTHS[m.group(2).lower()], int(m.group(1)), text), None
    m = _MONTH_NAME_DAY.match(text)
    if m and m.group(1).lower() in _MONTHS:
        return _mk_date(int(m.group(3)), _MONTHS[m.group(1).lower()], int(m.group(2)), text), None
    if _SHORT_YEAR.match(text):
        raise CellError(f"{text!r} has a two-digit year: write the year in full")
    raise CellError(f"{text!r} is not a date (write 2025-03-07)")


def resolve_slash_dates(items: list[tuple[int, SlashDate]]) -> tuple[dict[int, tuple[date, time | None]], dict[int, str]]:
    """Read a column's ``a/b/yyyy`` dates the one way the column allows.

    A first part above 12 anywhere in the column means day first; a second part above 12
    means month first; with neither, or both, every such date is refused.
    """
    day_first = any(s.a > 12 for _, s in items)
    month_first = any(s.b > 12 for _, s in items)
    parsed: dict[int, tuple[date, time | None]] = {}
    errors: dict[int, str] = {}
    for key, s in items:
        shown = f"{s.a:02d}/{s.b:02d}/{s.year}"
        if day_first and month_first:
            errors[key] = (f"{shown}: this column mixes day/month and month/day dates; "
                           f"write dates as YYYY-MM-DD")
            continue
        if not (day_first or month_first):
            errors[key] = (f"{shown} is ambiguous ({s.a} {_month_name(s.b)} or "
                           f"{_month_name(s.a)} {s.b}?): write YYYY-MM-DD")
            continue
        d, m = (s.a, s.b) if day_first else (s.b, s.a)
        try:
            parsed[key] = (_mk_date(s.year, m, d, shown), s.clock)
        except CellError as exc:
            errors[key] = str(exc)
    return parsed, errors


def _month_name(m: int) -> str:
    names = ("January February March April May June July August September October "
             "November December").split()
    return names[m - 1] if 1 <= m <= 12 else str(m)


_TIME = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def parse_time(value) -> time:
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return value.time().replace(microsecond=0)
    if isinstance(value, time):
        return value.replace(microsecond=0)
    if isinstance(value, timedelta):
        seconds = int(value.total_seconds())
        if 0 <= seconds < 86400:
            return time(seconds // 3600, seconds // 60 % 60, seconds % 60)
        raise CellError("not a time of day")
    if isinstance(value, float) and 0 <= value < 1:
        seconds = round(value * 86400)
        return time(seconds // 3600 % 24, seconds // 60 % 60, seconds % 60)
    text = as_text(value)
    m = _TIME.match(text)
    if m:
        try:
            return time(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))
        except ValueError:
            pass
    raise CellError(f"{text!r} is not a time of day (write 14:05)")
