"""The seven kinds of import file: their columns, synonyms, and how a header row is recognised.

A header cell is normalised (``normalize_header``: case, accents, spaces, punctuation and a
trailing unit in brackets are dropped, ``#`` reads as ``no``) and looked up among the kind's
column names and synonyms. A file's kind is the one whose required columns are all present
and which recognises the most header cells; a file-name prefix (``products_*.xlsx``,
``stock_counts_*.csv``...) decides when the header alone does not, and a file whose name
names a kind must have that kind's required columns.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

# Cell types (parsers in ``salesflow.imports.values``).
TEXT, INT, MONEY, DATE, TIME, EMAIL = "text", "int", "money", "date", "time", "email"

CORE, WAREHOUSE = "core", "warehouse"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False
    synonyms: tuple[str, ...] = ()
    max_len: int | None = None
    minimum: int | None = None  # numbers: the smallest value allowed
    doc: str = ""
    example: str = ""
    sku: bool = False  # a sku: stricter characters where it goes into the core's URLs
    phone: bool = False  # a phone number: may start with +


@dataclass(frozen=True)
class Kind:
    name: str
    target: str
    title: str
    doc: str
    columns: tuple[Column, ...]
    unique: tuple[str, ...] = ()  # columns whose values must not repeat within a file
    prefixes: tuple[str, ...] = ()  # file-name prefixes that name this kind
    lookup: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        table = {}
        for col in self.columns:
            for word in (col.name, *col.synonyms):
                key = normalize_header(word)
                if key in table and table[key] != col.name:
                    raise ValueError(f"{self.name}: {word!r} names two columns")
                table[key] = col.name
        self.lookup.update(table)

    def column(self, name: str) -> Column:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.required)


_UNIT = re.compile(r"\s*[\(\[][^\)\]]*[\)\]]\s*$")


def normalize_header(value) -> str:
    """``' Unit Price (€) '`` → ``unit_price``; ``'Receipt #'`` → ``receipt_no``."""
    text = "" if value is None else str(value)
    text = text.replace("\ufeff", "").replace("\u00a0", " ").strip()
    text = _UNIT.sub("", text)
    text = text.replace("#", " no ").replace("&", " and ")
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)  # camelCase → camel_case
    return re.sub(r"[^0-9a-z]+", "_", text.lower()).strip("_")


SKU = Column(
    "sku", TEXT, True,
    ("product_sku", "item_sku", "sku_code", "product_code", "item_code", "article",
     "article_no", "article_number", "code"),
    max_len=50, sku=True,
    doc="The product's sku in the core (at most 50 characters; no ; % / \\ or line breaks).",
    example="SKU-0001",
)
QUANTITY_SOLD = Column(
    "quantity", INT, True, ("qty", "units", "quantity_sold", "qty_sold", "pieces", "pcs"),
    minimum=1, doc="Units sold, a whole number greater than 0.", example="2",
)
SALE_REF = Column(
    "sale_ref", TEXT, False,
    ("receipt", "receipt_no", "receipt_number", "ticket", "ticket_no", "order", "order_id",
     "order_no", "order_number", "invoice", "invoice_no", "transaction", "transaction_id",
     "sale_id", "sale_no", "sale_number"),
    max_len=64,
    doc="Optional: lines with the same reference form one sale (one receipt). "
        "Blank: each line is a sale of its own.",
    example="R-1001",
)
CUSTOMER_REF = Column(
    "customer_id", TEXT, False,
    ("customer", "customer_no", "customer_number", "client", "client_id", "client_no"),
    max_len=64, doc="Optional customer id.", example="C-042",
)

KINDS: dict[str, Kind] = {}


def _kind(kind: Kind) -> Kind:
    KINDS[kind.name] = kind
    return kind


PRODUCTS = _kind(Kind(
    "products", CORE, "Products",
    "Creates or replaces products in the core, by sku. A product already in the core keeps "
    "its current stock (use a stock_counts file to set stock); blank optional cells keep the "
    "core's current value. Unit cost and category cannot be imported: every inventory write "
    "adds to the product's stock in the core.",
    (
        SKU,
        Column("name", TEXT, True, ("product_name", "product", "item", "item_name", "title"),
               max_len=100, doc="Product name, unique in the core (at most 100 characters).",
               example="Espresso beans 1kg"),
        Column("price", MONEY, True,
               ("unit_price", "selling_price", "sale_price", "retail_price", "price_each"),
               minimum=0, doc="Selling price, 0 or more, at most 2 decimals.", example="12.50"),
        Column("initial_stock", INT, False,
               ("stock", "stock_quantity", "opening_stock", "initial_quantity", "quantity", "qty"),
               minimum=0, doc="Stock of a NEW product (0 if blank). Ignored for products "
               "already in the core: use a stock_counts file.", example="25"),
        Column("low_stock_threshold", INT, False,
               ("threshold", "reorder_level", "reorder_point", "min_stock", "minimum_stock",
                "low_stock"),
               minimum=1, doc="Low-stock alert level, 1 or more (10 for new products if blank).",
               example="5"),
        Column("description", TEXT, False, ("desc", "details"), max_len=1000,
               doc="Optional description.", example="Medium roast"),
    ),
    unique=("sku", "name"),
    prefixes=("products", "product", "catalogue", "catalog"),
))

STOCK_COUNTS = _kind(Kind(
    "stock_counts", CORE, "Stock counts",
    "Sets each product's stock in the core to the counted figure (a stock take). The core "
    "keeps the figure on the product; the file never writes inventory quantities.",
    (
        SKU,
        Column("counted_quantity", INT, True,
               ("counted", "count", "counted_qty", "on_hand", "in_stock", "stock",
                "stock_quantity", "stock_level", "quantity", "qty"),
               minimum=0, doc="Units counted on the shelf, a whole number, 0 or more.",
               example="17"),
        Column("counted_on", DATE, False, ("date", "count_date", "counted_at", "stocktake_date"),
               doc="Optional date of the count (not in the future).", example="2025-06-30"),
        Column("note", TEXT, False, ("notes", "comment", "comments", "remark"), max_len=500,
               doc="Optional note (kept in the import journal).", example="back room"),
    ),
    unique=("sku",),
    prefixes=("stock_counts", "stock_count", "stockcount", "stocktake", "stock_take",
              "inventory_count", "counts"),
))

SALES = _kind(Kind(
    "sales", CORE, "Sales (today, offline)",
    "Today's sales made while the till was offline, sent to the core with /sales/bulk. The "
    "core charges each product's current price, deducts stock and stamps the sale with the "
    "time of the import: for past dates or other prices use a sales_history file.",
    (SALE_REF, SKU, QUANTITY_SOLD, CUSTOMER_REF),
    prefixes=("sales", "sale", "offline_sales", "todays_sales"),
))

SALES_HISTORY = _kind(Kind(
    "sales_history", WAREHOUSE, "Sales history",
    "Dated historical sales (for shops migrating from another till), written to the "
    "warehouse only (raw.sales / raw.sale_items), never to the core. A sale is identified by "
    "its date and sale_ref: importing the same sale again replaces it.",
    (
        Column("date", DATE, True,
               ("sale_date", "day", "date_of_sale", "transaction_date", "order_date", "sold_on"),
               doc="Date of the sale (not in the future). 2025-03-07, 07.03.2025 or an Excel "
                   "date; 03/07/2025 only when the file shows the order (a day above 12).",
               example="2024-11-30"),
        Column("time", TIME, False, ("sale_time", "hour"), doc="Optional time of day, 14:05.",
               example="14:05"),
        SALE_REF,
        SKU,
        QUANTITY_SOLD,
        Column("unit_price", MONEY, True,
               ("price", "price_each", "selling_price", "sale_price"),
               minimum=0, doc="Price per unit charged at the time, 0 or more.", example="4.20"),
        Column("product_name", TEXT, False, ("name", "product", "item", "item_name"),
               max_len=100, doc="Optional: the name at the time (the core's current name if "
               "blank).", example="Espresso beans 1kg"),
        CUSTOMER_REF,
    ),
    prefixes=("sales_history", "saleshistory", "history", "historical_sales", "past_sales",
              "sales_archive"),
))

CUSTOMERS = _kind(Kind(
    "customers", WAREHOUSE, "Customers",
    "Customers, written to the warehouse (raw.customers). A customer id imported again "
    "replaces the earlier row.",
    (
        Column("customer_id", TEXT, True,
               ("customer", "customer_no", "customer_number", "client_id", "client_no", "id"),
               max_len=64, doc="The customer's id, as used on sales.", example="C-042"),
        Column("name", TEXT, True, ("customer_name", "full_name", "client_name", "client"),
               max_len=200, doc="Name.", example="Ada Lovelace"),
        Column("email", EMAIL, False, ("e_mail", "email_address", "mail"), max_len=254,
               doc="Optional e-mail address.", example="ada@example.com"),
        Column("phone", TEXT, False, ("phone_number", "telephone", "tel", "mobile"),
               max_len=40, phone=True, doc="Optional phone number.", example="+44 20 7946 0000"),
        Column("city", TEXT, False, ("town",), max_len=100, doc="Optional city.",
               example="London"),
        Column("customer_since", DATE, False,
               ("since", "first_seen", "created", "created_on", "joined", "member_since"),
               doc="Optional date the customer joined (not in the future).",
               example="2023-04-01"),
    ),
    unique=("customer_id",),
    prefixes=("customers", "customer", "clients", "client"),
))

EXPENSES = _kind(Kind(
    "expenses", WAREHOUSE, "Expenses",
    "Expenses, written to the warehouse (raw.expenses). An expense_id imported again counts "
    "once (the latest import wins); rows without an id are all kept.",
    (
        Column("expense_id", TEXT, False,
               ("reference", "ref", "expense_no", "expense_number", "voucher", "voucher_no"),
               max_len=64, doc="Optional id of the expense.", example="E-2025-031"),
        Column("date", DATE, True, ("expense_date", "paid_on", "payment_date", "day"),
               doc="Date of the expense (not in the future).", example="2025-06-01"),
        Column("category", TEXT, False, ("type", "expense_type", "account"), max_len=100,
               doc="Optional category (Uncategorized if blank).", example="Rent"),
        Column("amount", MONEY, True, ("total", "value", "cost", "sum", "amount_paid"),
               minimum=0, doc="Amount, greater than 0, at most 2 decimals.", example="1200.00"),
        Column("description", TEXT, False, ("details", "label", "memo", "notes"),
               max_len=500, doc="Optional description.", example="June rent"),
        Column("vendor", TEXT, False, ("supplier", "payee", "paid_to"), max_len=200,
               doc="Optional vendor.", example="Acme Property Ltd"),
    ),
    unique=("expense_id",),
    prefixes=("expenses", "expense", "costs"),
))

# the longest lead time a product or category may be given (imports and configuration alike)
MAX_LEAD_TIME_DAYS = 365

LEAD_TIMES = _kind(Kind(
    "lead_times", WAREHOUSE, "Lead times",
    "Days from ordering a product to having it on the shelf, per sku, written to the warehouse "
    "(raw.lead_times) for the reorder list. A sku imported again replaces its earlier lead "
    "time; products without one take their category's lead time "
    "(SALESFLOW_LEAD_TIME_DAYS_BY_CATEGORY) or the default.",
    (
        SKU,
        Column("lead_time_days", INT, True,
               ("lead_time", "lead_days", "lead_time_in_days", "leadtime", "delivery_days",
                "delivery_time", "days_to_deliver", "supplier_lead_time", "replenishment_days"),
               minimum=0, doc=f"Days from order to delivery, a whole number from 0 to "
               f"{MAX_LEAD_TIME_DAYS}.", example="14"),
    ),
    unique=("sku",),
    prefixes=("lead_times", "lead_time", "leadtimes", "leadtime"),
))

# Kinds whose skus go into the core's web addresses (``/products/by-sku/{sku}``).
SKU_IN_PATH = {"products", "stock_counts"}

# Money that must be strictly positive (others only non-negative).
POSITIVE_MONEY = {("expenses", "amount")}

# Columns of another kind that change what a file means: a sales file with a date or a price
# is historical sales, which the core cannot take (it stamps now and charges today's price).
_HISTORY_WHY = ("the core stamps every sale with the time of the import and charges the "
                "product's current price; for dated sales or other prices use a sales_history "
                "file (name it sales_history_*.xlsx)")
REJECTED_FOREIGN: dict[str, dict[str, tuple[str, str]]] = {
    "sales": {
        "date": ("sales_history", _HISTORY_WHY),
        "time": ("sales_history", _HISTORY_WHY),
        "unit_price": ("sales_history", _HISTORY_WHY),
    },
}


def kind_from_filename(name: str) -> Kind | None:
    """The kind a file name's prefix names (longest prefix wins), or None."""
    stem = name.rsplit(".", 1)[0] if "." in name else name
    key = normalize_header(stem)
    best: tuple[int, Kind] | None = None
    for kind in KINDS.values():
        for prefix in kind.prefixes:
            if key == prefix or key.startswith(prefix + "_"):
                if best is None or len(prefix) > best[0]:
                    best = (len(prefix), kind)
    return best[1] if best else None


@dataclass
class HeaderMatch:
    kind: Kind
    columns: dict[int, str]  # cell index → canonical column name
    unknown: list[int]  # header cells no kind knows (ignored)
    foreign: list[tuple[int, str, str]]  # cells another kind knows: (index, kind, its column)
    duplicates: list[tuple[str, list[int]]]  # a canonical column named by several cells
    missing: list[str]  # required columns absent


def match_header(kind: Kind, headers: list[str]) -> HeaderMatch:
    columns: dict[int, str] = {}
    seen: dict[str, list[int]] = {}
    unknown, foreign = [], []
    for i, raw in enumerate(headers):
        key = normalize_header(raw)
        if not key:
            continue
        name = kind.lookup.get(key)
        if name is not None:
            columns[i] = name
            seen.setdefault(name, []).append(i)
            continue
        others = [(k.name, k.lookup[key]) for k in KINDS.values() if k is not kind and key in k.lookup]
        if others:
            foreign.append((i, *others[0]))
        else:
            unknown.append(i)
    duplicates = [(name, idx) for name, idx in seen.items() if len(idx) > 1]
    missing = [c for c in kind.required if c not in seen]
    return HeaderMatch(kind, columns, unknown, foreign, duplicates, missing)


def recognised_cells(headers: list[str]) -> int:
    """How many header cells some kind knows (used to find the header row)."""
    known = set()
    for kind in KINDS.values():
        known.update(kind.lookup)
    return sum(1 for h in headers if normalize_header(h) in known)
