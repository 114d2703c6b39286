"""Demo shop for the SalesFlow core emulator.

``generate_demo`` builds a reproducible small shop (catalogue, sales history, today's stock)
and ``write_demo_csvs`` writes it in the emulator's canonical seeding format:

``products.csv``  ``sku,name,price,cost,category,stock_quantity,low_stock_threshold``
    ``price``/``cost`` have two decimals; about 3% of products have an unknown cost and no
    category (both cells empty), which the core shows as "Uncategorized" with cost 0.
    ``stock_quantity`` is the stock at the end of the last day of the period ("today").
``sales.csv``  ``sale_id,sale_ts,sku,quantity,unit_price,customer_id``
    One row per line item, rows of one sale share ``sale_id`` (``S0000001`` ... in time
    order) and are contiguous; ``sale_ts`` is the shop's local wall-clock time
    (``YYYY-MM-DDTHH:MM:SS``, no zone) inside opening hours; ``unit_price`` is the price
    charged at the time (price rises and promotion discounts included); ``customer_id`` is
    ``C00042``-style, or empty for anonymous sales (about 35%).
``demo_truth.csv``  ``date,series_id,kind,direction,magnitude,note``
    The planted anomalies, ground truth for anomaly detection (see below).

What the history contains
-------------------------
* Eight categories with plausible names, ``.x9`` prices, margins of 15-60%; popularity is
  long-tailed: a few top sellers, a mass of mid sellers and slow intermittent sellers
  (products that sell on fewer than half of the days, Croston-type demand).
* Daily orders with a weekly cycle (Saturday peak, Monday low), a yearly cycle (December
  peak, summer for beverages, produce and sunscreen, back-to-school for stationery,
  Christmas-only items), a mild growth trend and day-level noise.
* A recurring holiday calendar (``holiday_calendar``): closed on 25 December and 1 January,
  short days (closing 14:00) on 24 and 31 December, Black Friday and pre-Christmas
  uplift, a January lull. These recur every year and are *not* anomalies.
* Promotions: a product discounted 10-30% for 1-2 weeks with a 1.4-2.4x demand uplift
  (visible in ``unit_price``). Price rises: many products got one or two increases.
* Product launches during the history (ramping up) and discontinued products (no sales
  after a date, stock 0 or a few leftovers today).
* Stockouts: a product sells nothing for 3-18 days, then is restocked; some products are
  out of stock today (``stock_quantity`` 0, no sales in their last days). Stockouts are
  ordinary business events, not planted anomalies; they never touch the top 10% of sellers.
* Customers: a base that existed before the period plus new customers over time, with
  heavy-tailed loyalty (some customers buy several times a week, most once or twice) and
  churn.

The truth file
--------------
One row per planted anomaly, sorted by date. ``magnitude`` is always a ratio of what
happened to what would have happened without the anomaly; ``note`` gives the cause and the
observed against the expected level.

* ``spike`` / ``up`` on ``TOTAL``: the day's orders multiplied by 3-4.
* ``drop`` / ``down`` on ``TOTAL``: the day's orders multiplied by 0.2-0.3.
* ``outage`` / ``down`` on ``TOTAL``: a day with almost no sales (x0.02-0.05).
* ``spike`` / ``up`` and ``drop`` / ``down`` on a sku: that product's demand on the day
  multiplied by 4-6 or by 0.1-0.2; chosen among products selling several units a day,
  away from its promotions, stockouts, launch and discontinuation.
* ``stock_shrinkage`` / ``down`` on a sku: units written off (breakage, theft) during the
  last week. It is invisible in ``sales.csv``; ``stock_quantity`` in ``products.csv``
  already reflects it, so the product looks low on stock without the sales to explain it.
  ``magnitude`` is stock after the loss over stock before.

Sales anomalies fall outside the first 60 days, the last week and the holiday season
(20 November to 7 January), one per stretch of the history so they are spread out (three
weeks apart at least): about one per 55 eligible days, at most 14 (11 for the default two
years), plus one shrinkage when the period is longer than 66 days.
A ``TOTAL`` anomaly also moves every product's sales on that day; only the ``TOTAL`` row is
listed.

Everything derives from ``seed``: the same arguments give byte-identical CSV files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

__all__ = [
    "DemoShop",
    "PRODUCT_COLUMNS",
    "SALES_COLUMNS",
    "TRUTH_COLUMNS",
    "OPENING_HOURS",
    "generate_demo",
    "holiday_calendar",
    "write_demo_csvs",
]

PRODUCT_COLUMNS = ["sku", "name", "price", "cost", "category", "stock_quantity", "low_stock_threshold"]
SALES_COLUMNS = ["sale_id", "sale_ts", "sku", "quantity", "unit_price", "customer_id"]
TRUTH_COLUMNS = ["date", "series_id", "kind", "direction", "magnitude", "note"]

# Opening hours (local time, minutes after midnight) by kind of day.
OPENING_HOURS = {
    "weekday": (8 * 60, 20 * 60),
    "saturday": (8 * 60, 20 * 60),
    "sunday": (9 * 60, 18 * 60),
    "short": (8 * 60, 14 * 60),
}


@dataclass
class DemoShop:
    """A generated shop.

    ``products`` and ``sales`` have the canonical CSV columns in order; money columns are
    floats holding exact cents (``cost`` NaN when unknown, ``category`` missing then too),
    ``sale_ts`` is ``datetime64[s]`` (naive local time), ``customer_id`` missing for
    anonymous sales. ``truth`` holds the planted anomalies; its ``date`` holds
    ``datetime.date`` values.
    """

    products: pd.DataFrame
    sales: pd.DataFrame
    truth: pd.DataFrame


# --------------------------------------------------------------------------- catalogue

@dataclass(frozen=True)
class _Category:
    name: str
    code: str
    share: float  # share of the catalogue
    demand: float  # relative popularity of its products
    margin: tuple[float, float]
    season: tuple[float, float, float]  # strength of (summer, christmas, back-to-school)
    multibuy: bool  # cheap items of this category are often bought several at a time
    brands: tuple[str, ...]
    variants: tuple[str, ...]
    items: tuple[tuple[str, float, tuple[tuple[str, float], ...], str], ...]


_VARIANT_PRICE = {
    "Organic": 1.25, "Premium": 1.35, "Value": 0.8, "Eco": 1.15, "Sensitive": 1.1,
    "Natural": 1.15, "Recycled": 1.05, "Local": 1.1, "Rustic": 1.1, "Wholegrain": 1.05,
    "Lactose-Free": 1.2, "Low-Fat": 1.0, "Classic": 1.0, "Fresh": 1.0, "Family": 1.4,
}

# Item seasonal tags -> (base, summer, christmas, school) of the item's own factor.
_TAGS = {
    "": (1.0, 0.0, 0.0, 0.0),
    "summer": (1.0, 0.5, 0.0, 0.0),
    "summer+": (0.35, 1.8, 0.0, 0.0),
    "xmas": (1.0, 0.0, 0.7, 0.0),
    "xmas+": (0.9, 0.0, 1.8, 0.0),
    "xmas!": (0.04, 0.0, 4.0, 0.0),
    "school": (0.9, 0.0, 0.0, 1.6),
}
_TAG_NAMES = list(_TAGS)

_S1 = (("1 L", 1.0), ("2 L", 1.7))
_SM = (("500 ml", 1.0), ("1.5 L", 1.6))

_CATEGORIES: tuple[_Category, ...] = (
    _Category(
        "Beverages", "BEV", 0.15, 1.3, (0.20, 0.45), (0.30, 0.05, 0.0), True,
        ("Alpine Spring", "Sunvale", "Bluecrest", "Riverside", "Golden Bean", "Fresh Orchard",
         "Northbrook", "Casa Verde"),
        ("", "Organic", "Premium", "Value"),
        (
            ("Sparkling Water", 0.69, _SM, "summer"),
            ("Still Mineral Water", 0.59, _SM, "summer"),
            ("Orange Juice", 1.89, _S1, ""),
            ("Apple Juice", 1.69, _S1, ""),
            ("Cola", 1.29, _SM, "summer"),
            ("Peach Iced Tea", 1.39, _SM, "summer+"),
            ("Lemonade", 1.49, (("330 ml", 1.0), ("1 L", 2.0)), "summer+"),
            ("Ground Coffee", 4.99, (("250 g", 1.0), ("500 g", 1.8)), ""),
            ("Coffee Beans", 7.49, (("500 g", 1.0), ("1 kg", 1.8)), ""),
            ("Green Tea", 2.49, (("20 bags", 1.0), ("40 bags", 1.7)), ""),
            ("Hot Chocolate", 3.29, (("250 g", 1.0), ("500 g", 1.8)), "xmas"),
            ("Energy Drink", 1.59, (("250 ml", 1.0), ("500 ml", 1.6)), ""),
        ),
    ),
    _Category(
        "Snacks", "SNK", 0.14, 1.1, (0.25, 0.50), (0.05, 0.35, 0.0), True,
        ("Crunchwell", "Happy Harvest", "Nutty Nook", "Sweet Meadow", "Oakridge", "Snackster",
         "Bramble & Co", "Goldleaf"),
        ("", "Organic", "Classic", "Family"),
        (
            ("Potato Chips", 1.99, (("150 g", 1.0), ("300 g", 1.7)), ""),
            ("Tortilla Chips", 2.29, (("200 g", 1.0), ("400 g", 1.7)), ""),
            ("Salted Pretzels", 1.49, (("125 g", 1.0), ("250 g", 1.7)), ""),
            ("Milk Chocolate Bar", 1.29, (("100 g", 1.0), ("200 g", 1.8)), "xmas"),
            ("Dark Chocolate Bar", 1.79, (("100 g", 1.0), ("200 g", 1.8)), ""),
            ("Granola Bars", 2.49, (("4-pack", 1.0), ("8-pack", 1.8)), ""),
            ("Mixed Nuts", 3.99, (("200 g", 1.0), ("400 g", 1.8)), "xmas"),
            ("Popcorn", 1.69, (("90 g", 1.0), ("180 g", 1.7)), ""),
            ("Rice Crackers", 1.99, (("100 g", 1.0), ("200 g", 1.7)), ""),
            ("Gummy Bears", 1.19, (("200 g", 1.0), ("500 g", 2.1)), ""),
            ("Butter Cookies", 2.49, (("200 g", 1.0), ("400 g", 1.8)), "xmas+"),
            ("Gingerbread Hearts", 2.99, (("200 g", 1.0), ("500 g", 2.2)), "xmas!"),
        ),
    ),
    _Category(
        "Dairy", "DAI", 0.12, 1.5, (0.15, 0.30), (0.0, 0.15, 0.0), True,
        ("Green Meadow", "Alpenhof", "Clover Hill", "Dairy Lane", "Sunny Farm", "Valley Fresh",
         "Brookside", "Nordic Cow"),
        ("", "Organic", "Low-Fat", "Lactose-Free"),
        (
            ("Whole Milk", 1.09, _S1, ""),
            ("Semi-Skimmed Milk", 0.99, _S1, ""),
            ("Greek Yogurt", 1.79, (("500 g", 1.0), ("1 kg", 1.8)), ""),
            ("Butter", 2.49, (("250 g", 1.0), ("500 g", 1.9)), "xmas"),
            ("Mature Cheddar", 3.49, (("200 g", 1.0), ("400 g", 1.8)), ""),
            ("Mozzarella", 1.29, (("125 g", 1.0), ("250 g", 1.8)), "summer"),
            ("Cream Cheese", 1.69, (("150 g", 1.0), ("300 g", 1.8)), ""),
            ("Skyr", 1.99, (("450 g", 1.0), ("900 g", 1.8)), ""),
            ("Cottage Cheese", 1.49, (("200 g", 1.0), ("400 g", 1.8)), ""),
            ("Double Cream", 1.59, (("250 ml", 1.0), ("500 ml", 1.8)), "xmas+"),
            ("Feta", 2.29, (("200 g", 1.0), ("400 g", 1.8)), "summer"),
            ("Free-Range Eggs", 2.99, (("6-pack", 1.0), ("12-pack", 1.8)), ""),
        ),
    ),
    _Category(
        "Household", "HOU", 0.12, 0.7, (0.25, 0.45), (0.0, 0.10, 0.0), False,
        ("Sparkle", "HomeBright", "Clearway", "Evergreen", "PureNest", "Tidy Co", "Brightside",
         "EcoLeaf"),
        ("", "Eco", "Value", "Premium"),
        (
            ("Dish Soap", 1.99, (("500 ml", 1.0), ("1 L", 1.8)), ""),
            ("Laundry Detergent", 7.99, (("20 washes", 1.0), ("40 washes", 1.8)), ""),
            ("Paper Towels", 2.99, (("2 rolls", 1.0), ("4 rolls", 1.8)), ""),
            ("Toilet Paper", 3.49, (("8 rolls", 1.0), ("16 rolls", 1.8)), ""),
            ("Trash Bags", 2.49, (("20 bags", 1.0), ("50 bags", 2.1)), ""),
            ("All-Purpose Cleaner", 2.79, (("750 ml", 1.0), ("1.5 L", 1.7)), ""),
            ("Kitchen Sponges", 1.49, (("3-pack", 1.0), ("6-pack", 1.8)), ""),
            ("Aluminium Foil", 2.19, (("10 m", 1.0), ("30 m", 2.3)), "xmas"),
            ("Cling Film", 1.99, (("20 m", 1.0), ("50 m", 2.0)), ""),
            ("LED Light Bulb", 4.99, (("1-pack", 1.0), ("3-pack", 2.5)), ""),
            ("AA Batteries", 4.49, (("4-pack", 1.0), ("8-pack", 1.8)), "xmas"),
            ("Scented Candle", 5.99, (("Small", 1.0), ("Large", 1.9)), "xmas+"),
        ),
    ),
    _Category(
        "Personal Care", "PER", 0.12, 0.6, (0.35, 0.60), (0.10, 0.10, 0.0), False,
        ("Lumina", "Silkwood", "Fresh Bloom", "Nordic Pure", "Calmora", "Verdant", "Oceanis",
         "Softleaf"),
        ("", "Sensitive", "Fresh", "Natural"),
        (
            ("Shampoo", 3.49, (("250 ml", 1.0), ("500 ml", 1.7)), ""),
            ("Conditioner", 3.49, (("250 ml", 1.0), ("500 ml", 1.7)), ""),
            ("Toothpaste", 1.99, (("75 ml", 1.0), ("2 x 75 ml", 1.8)), ""),
            ("Toothbrush", 2.49, (("1-pack", 1.0), ("3-pack", 2.4)), ""),
            ("Shower Gel", 2.29, (("250 ml", 1.0), ("500 ml", 1.7)), ""),
            ("Deodorant", 2.99, (("50 ml", 1.0), ("2 x 50 ml", 1.8)), "summer"),
            ("Liquid Hand Soap", 1.79, (("300 ml", 1.0), ("1 L refill", 2.2)), ""),
            ("Body Lotion", 4.49, (("200 ml", 1.0), ("400 ml", 1.7)), ""),
            ("Lip Balm", 1.99, (("4.8 g", 1.0), ("2-pack", 1.8)), "xmas"),
            ("Razor Blades", 8.99, (("4-pack", 1.0), ("8-pack", 1.8)), ""),
            ("Sunscreen SPF 30", 7.99, (("100 ml", 1.0), ("200 ml", 1.7)), "summer+"),
            ("Cotton Pads", 1.49, (("80 pads", 1.0), ("160 pads", 1.7)), ""),
        ),
    ),
    _Category(
        "Bakery", "BAK", 0.10, 1.4, (0.40, 0.60), (0.0, 0.25, 0.0), True,
        ("Golden Crust", "Baker's Mill", "Stonebridge", "Hearth & Home", "Rye Valley",
         "Morning Oven", "Old Town", "Farmhouse"),
        ("", "Organic", "Rustic", "Wholegrain"),
        (
            ("Sourdough Loaf", 3.49, (("500 g", 1.0), ("1 kg", 1.8)), ""),
            ("Baguette", 1.29, (("Single", 1.0), ("Twin", 1.8)), ""),
            ("Butter Croissant", 0.99, (("Single", 1.0), ("4-pack", 3.3)), ""),
            ("Whole Wheat Bread", 2.29, (("500 g", 1.0), ("750 g", 1.4)), ""),
            ("Plain Bagels", 2.49, (("4-pack", 1.0), ("6-pack", 1.4)), ""),
            ("Cinnamon Roll", 1.49, (("Single", 1.0), ("4-pack", 3.2)), "xmas"),
            ("Rye Bread", 2.59, (("500 g", 1.0), ("1 kg", 1.8)), ""),
            ("Blueberry Muffin", 1.69, (("Single", 1.0), ("4-pack", 3.3)), ""),
            ("Brioche", 2.99, (("400 g", 1.0), ("800 g", 1.8)), ""),
            ("Pretzel Roll", 0.79, (("Single", 1.0), ("6-pack", 4.5)), ""),
            ("Ciabatta", 1.99, (("Single", 1.0), ("Twin", 1.8)), "summer"),
            ("Christmas Stollen", 8.99, (("500 g", 1.0), ("1 kg", 1.8)), "xmas!"),
        ),
    ),
    _Category(
        "Produce", "PRO", 0.12, 1.4, (0.25, 0.45), (0.15, 0.0, 0.0), True,
        ("Fresh Fields", "Sunny Acres", "Green Valley", "Orchard Hill", "Hillside Farm",
         "Riverbend", "Wild Grove", "Local Harvest"),
        ("", "Organic", "Local", "Premium"),
        (
            ("Bananas", 1.49, (("1 kg", 1.0), ("Bunch of 6", 1.1)), ""),
            ("Apples", 2.49, (("1 kg", 1.0), ("2 kg", 1.8)), ""),
            ("Vine Tomatoes", 2.79, (("500 g", 1.0), ("1 kg", 1.8)), "summer"),
            ("Avocados", 1.99, (("2-pack", 1.0), ("4-pack", 1.8)), ""),
            ("Strawberries", 2.99, (("250 g", 1.0), ("500 g", 1.8)), "summer+"),
            ("Lemons", 1.79, (("4-pack", 1.0), ("1 kg", 1.6)), ""),
            ("Carrots", 0.99, (("1 kg", 1.0), ("2 kg", 1.7)), ""),
            ("Potatoes", 2.49, (("2 kg", 1.0), ("5 kg", 2.2)), ""),
            ("Red Onions", 1.29, (("1 kg", 1.0), ("2 kg", 1.7)), ""),
            ("Cucumber", 0.79, (("Single", 1.0), ("2-pack", 1.8)), "summer"),
            ("Blueberries", 3.49, (("125 g", 1.0), ("250 g", 1.8)), "summer"),
            ("Baby Spinach", 1.99, (("150 g", 1.0), ("300 g", 1.8)), ""),
        ),
    ),
    _Category(
        "Stationery", "STA", 0.13, 0.4, (0.40, 0.60), (0.0, 0.15, 0.8), False,
        ("Papyra", "Inkwell", "Notewise", "Brightline", "Quillson", "Folio & Co", "Scribo",
         "Ledger Lane"),
        ("", "Recycled", "Premium", "Value"),
        (
            ("A5 Notebook", 2.99, (("80 sheets", 1.0), ("160 sheets", 1.7)), "school"),
            ("Ballpoint Pens", 2.49, (("5-pack", 1.0), ("10-pack", 1.8)), "school"),
            ("HB Pencils", 1.99, (("6-pack", 1.0), ("12-pack", 1.8)), "school"),
            ("Sticky Notes", 2.79, (("4 pads", 1.0), ("8 pads", 1.8)), ""),
            ("Highlighters", 3.49, (("4-pack", 1.0), ("6-pack", 1.4)), "school"),
            ("Envelopes", 2.49, (("25 pcs", 1.0), ("50 pcs", 1.8)), "xmas"),
            ("Printer Paper", 5.99, (("500 sheets", 1.0), ("2500 sheets", 4.2)), ""),
            ("Glue Stick", 1.29, (("Single", 1.0), ("3-pack", 2.6)), "school"),
            ("Scissors", 3.99, (("13 cm", 1.0), ("21 cm", 1.4)), "school"),
            ("Stapler", 6.99, (("Mini", 1.0), ("Desk", 1.8)), ""),
            ("Greeting Card", 2.99, (("Single", 1.0), ("5-pack", 3.5)), "xmas+"),
            ("Gift Wrap", 3.49, (("3 m", 1.0), ("5 m", 1.5)), "xmas!"),
        ),
    ),
)

# Lines per basket (1..6) and quantity per line (1..6).
_BASKET_P = np.array([0.34, 0.26, 0.18, 0.11, 0.07, 0.04])
_QTY_P = np.array([0.66, 0.22, 0.08, 0.025, 0.01, 0.005])
_QTY_MULTIBUY_P = np.array([0.50, 0.28, 0.12, 0.06, 0.025, 0.015])
_WEEKDAY = np.array([0.86, 0.88, 0.92, 0.97, 1.12, 1.38, 1.05])  # Monday..Sunday
_ANON_SHARE = 0.35
_UNKNOWN_COST_SHARE = 0.03

_ANOMALY_MIX = (
    ("spike", "TOTAL"), ("drop", "SKU"), ("spike", "SKU"), ("drop", "TOTAL"),
    ("outage", "TOTAL"), ("spike", "SKU"), ("spike", "TOTAL"), ("drop", "SKU"),
    ("spike", "SKU"), ("drop", "TOTAL"), ("spike", "TOTAL"), ("drop", "SKU"),
    ("spike", "SKU"), ("outage", "TOTAL"),
)

_NOTES = {
    ("spike", "TOTAL"): "street festival next door",
    ("drop", "TOTAL"): "road works blocked the entrance",
    ("outage", "TOTAL"): "till system outage for most of the day",
    ("spike", "SKU"): "bulk buying after a social-media mention",
    ("drop", "SKU"): "wrong shelf price label put customers off",
}


def _snap_price(euros: np.ndarray) -> np.ndarray:
    """Euros -> cents on a shop-like ending (.x9 below 10, .49/.99 above)."""
    x = np.maximum(np.asarray(euros, dtype=float), 0.25)
    small = np.floor(x * 10.0) * 10 + 9
    large = np.floor(x * 2.0) * 50 + 49
    return np.where(x < 10.0, small, large).astype(np.int64)


def _split_counts(n: int, shares: np.ndarray) -> np.ndarray:
    raw = shares / shares.sum() * n
    counts = np.floor(raw).astype(np.int64)
    rest = n - int(counts.sum())
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


def _catalogue(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    counts = _split_counts(n, np.array([c.share for c in _CATEGORIES]))
    width = max(5, len(str(int(counts.max()))))
    skus, names, cats, tags, base, margin, multibuy_cat = [], [], [], [], [], [], []
    for ci, (cat, k) in enumerate(zip(_CATEGORIES, counts)):
        brand_mult = rng.uniform(0.85, 1.3, len(cat.brands))
        combos = [
            (b, v, it, sz)
            for it, item in enumerate(cat.items)
            for sz in range(len(item[2]))
            for b in range(len(cat.brands))
            for v in range(len(cat.variants))
        ]
        order = rng.permutation(len(combos))
        lo, hi = cat.margin
        for j in range(int(k)):
            b, v, it, sz = combos[order[j % len(combos)]]
            item, item_price, sizes, tag = cat.items[it]
            size_label, size_mult = sizes[sz]
            variant = cat.variants[v]
            name = f"{cat.brands[b]} {variant + ' ' if variant else ''}{item} {size_label}"
            if j >= len(combos):
                name += f" No. {j // len(combos) + 1}"
            skus.append(f"{cat.code}-{j + 1:0{width}d}")
            names.append(name)
            cats.append(ci)
            tags.append(_TAG_NAMES.index(tag))
            base.append(item_price * size_mult * brand_mult[b] * _VARIANT_PRICE.get(variant, 1.0))
            margin.append(rng.uniform(lo, hi))
            multibuy_cat.append(cat.multibuy)
    base_arr = np.array(base) * rng.lognormal(0.0, 0.08, n)
    price = _snap_price(base_arr)
    margin_arr = np.array(margin)
    cost = np.rint(price * (1.0 - margin_arr)).astype(np.int64)
    cost = np.clip(cost, np.ceil(price * 0.40), np.floor(price * 0.85)).astype(np.int64)
    sku_arr = np.array(skus, dtype=object)
    order = np.argsort(sku_arr, kind="stable")
    out = {
        "sku": sku_arr,
        "name": np.array(names, dtype=object),
        "cat": np.array(cats, dtype=np.int64),
        "tag": np.array(tags, dtype=np.int64),
        "price": price,
        "cost": cost,
        "multibuy": np.array(multibuy_cat) & (price < 300),
    }
    return {key: val[order] for key, val in out.items()}


# --------------------------------------------------------------------------- calendar

def _black_friday(year: int) -> date:
    nov1 = date(year, 11, 1)
    first_thursday = 1 + (3 - nov1.weekday()) % 7
    return date(year, 11, first_thursday + 21 + 1)


def _calendar(days: pd.DatetimeIndex) -> dict[str, np.ndarray]:
    month = days.month.to_numpy()
    day = days.day.to_numpy()
    doy = days.day_of_year.to_numpy().astype(float)
    dow = days.day_of_week.to_numpy()
    n = len(days)
    factor = np.ones(n)
    names = np.full(n, "", dtype=object)
    kind = np.where(dow == 5, 1, np.where(dow == 6, 2, 0))

    pre = (month == 12) & (day <= 23)
    factor[pre] = 1.0 + 0.55 * ((day[pre] - 1) / 22.0) ** 1.5
    names[pre] = "Christmas shopping"
    lull = (month == 1) & (day >= 2) & (day <= 14)
    factor[lull] = 0.88
    names[lull] = "January lull"
    between = (month == 12) & (day >= 27) & (day <= 30)
    factor[between] = 1.05
    names[between] = "Between the holidays"
    for m, d, f, label, k in (
        (12, 24, 0.9, "Christmas Eve (closes 14:00)", 3),
        (12, 31, 0.85, "New Year's Eve (closes 14:00)", 3),
        (12, 25, 0.0, "Christmas Day (closed)", -1),
        (1, 1, 0.0, "New Year's Day (closed)", -1),
        (12, 26, 0.8, "Boxing Day", None),
    ):
        sel = (month == m) & (day == d)
        factor[sel] = f
        names[sel] = label
        if k is not None:
            kind[sel] = k
    bf_dates = {_black_friday(y) for y in range(days[0].year, days[-1].year + 1)}
    py_days = days.date
    for i, d in enumerate(py_days):
        if d in bf_dates:
            factor[i] = 2.0
            names[i] = "Black Friday"
        elif d - timedelta(days=1) in bf_dates:
            factor[i] = 1.25
            names[i] = "Black Friday weekend"

    summer = np.exp(-0.5 * ((doy - 196.0) / 32.0) ** 2)
    to_eve = np.array([(date(d.year, 12, 24) - d).days for d in py_days])
    xmas = np.where((to_eve >= 0) & (to_eve <= 34), 1.0 - to_eve / 34.0, 0.0)
    school = np.exp(-0.5 * ((doy - 243.0) / 14.0) ** 2)
    yearly = 1.0 + 0.05 * np.cos(2 * np.pi * (doy - 340.0) / 365.25) + 0.03 * summer
    season_window = ((month == 11) & (day >= 20)) | (month == 12) | ((month == 1) & (day <= 7))
    return {
        "dow": dow,
        "factor": factor,
        "names": names,
        "kind": kind,  # 0 weekday, 1 saturday, 2 sunday, 3 short day, -1 closed
        "summer": summer,
        "xmas": xmas,
        "school": school,
        "yearly": yearly,
        "holiday_season": season_window,
    }


def holiday_calendar(start: date, end: date) -> pd.DataFrame:
    """The demo shop's recurring calendar effects between ``start`` and ``end``.

    Columns: ``date`` (``datetime.date``), ``name``, ``factor`` (multiplier on the usual
    number of orders), ``closed`` (bool). Forecasting code can use it as known holidays.
    """
    days = pd.date_range(start, end, freq="D")
    cal = _calendar(days)
    sel = cal["names"] != ""
    return pd.DataFrame(
        {
            "date": list(days.date[sel]),
            "name": cal["names"][sel].tolist(),
            "factor": cal["factor"][sel],
            "closed": cal["kind"][sel] == -1,
        }
    )


def _intraday_cdfs() -> np.ndarray:
    minutes = np.arange(1440, dtype=float)

    def bump(center_h: float, sd_min: float) -> np.ndarray:
        return np.exp(-0.5 * ((minutes - center_h * 60) / sd_min) ** 2)

    shapes = {
        "weekday": 0.35 + 1.0 * bump(12.25, 70) + 1.4 * bump(17.75, 80),
        "saturday": 0.30 + 1.3 * bump(11.0, 110) + 1.0 * bump(15.0, 120),
        "sunday": 0.35 + 1.2 * bump(11.5, 90) + 0.9 * bump(16.0, 90),
        "short": 0.40 + 1.2 * bump(10.5, 80),
    }
    cdfs = np.zeros((4, 1440))
    for i, key in enumerate(("weekday", "saturday", "sunday", "short")):
        open_m, close_m = OPENING_HOURS[key]
        pdf = np.where((minutes >= open_m) & (minutes < close_m), shapes[key], 0.0)
        cdf = np.cumsum(pdf)
        cdfs[i] = cdf / cdf[-1]
        cdfs[i, -1] = 1.0
    return cdfs


def _rows_search(cum: np.ndarray, row: np.ndarray, u: np.ndarray) -> np.ndarray:
    """For each (row, u) the column whose cumulative interval in ``cum[row]`` holds ``u``.

    ``cum`` rows are non-decreasing and end at exactly 1; zero-width columns are never chosen.
    """
    n_rows, n_cols = cum.shape
    flat = (cum + np.arange(n_rows, dtype=float)[:, None]).ravel()
    pos = np.searchsorted(flat, row + u, side="right")
    col = pos - row * n_cols
    return np.clip(col, 0, n_cols - 1)


def _draw(rng: np.random.Generator, probs: np.ndarray, size: int) -> np.ndarray:
    cdf = np.cumsum(probs / probs.sum())
    cdf[-1] = 1.0
    return np.searchsorted(cdf, rng.random(size), side="right")


def _windows_mask(n_days: int, n_products: int, prod, start, stop) -> np.ndarray:
    delta = np.zeros((n_days + 1, n_products), dtype=np.int32)
    prod = np.asarray(prod, dtype=np.int64)
    np.add.at(delta, (np.asarray(start, dtype=np.int64), prod), 1)
    np.add.at(delta, (np.asarray(stop, dtype=np.int64), prod), -1)
    return np.cumsum(delta, axis=0)[:n_days] > 0


# --------------------------------------------------------------------------- generator

def generate_demo(
    seed: int,
    start: date,
    end: date,
    *,
    n_products: int = 300,
    orders_per_day: float = 120.0,
    tz: str = "UTC",
) -> DemoShop:
    """Generate the demo shop for the days ``start`` .. ``end`` (both included).

    ``orders_per_day`` is the average number of sales per calendar day over the period;
    ``tz`` is the shop's time zone (``sale_ts`` is wall-clock time there; a time skipped by
    a daylight-saving change is moved past the gap). ``end`` is "today": product stock is
    the stock at the end of that day.
    """
    if end < start:
        raise ValueError("end must not be before start")
    if n_products < 1:
        raise ValueError("n_products must be at least 1")
    if not orders_per_day > 0:
        raise ValueError("orders_per_day must be positive")
    zone = ZoneInfo(tz)
    rngs = [np.random.default_rng(s) for s in np.random.SeedSequence(int(seed)).spawn(12)]
    (r_cat, r_pop, r_life, r_stock, r_promo, r_price, r_anom, r_orders, r_lines, r_time,
     r_cust, r_end) = rngs

    days = pd.date_range(start, end, freq="D")
    n_days = len(days)
    cal = _calendar(days)
    cat = _catalogue(r_cat, n_products)

    pop, tier, top = _popularity(r_pop, cat)
    launch, disc, life = _lifecycle(r_life, n_days, top)
    out_mask = _stockouts(r_stock, n_days, top, launch, disc)
    price_cents = _price_history(r_price, cat["price"], launch, n_days)
    uplift, promo_mask = _promotions(r_promo, cat, pop, tier, launch, disc, out_mask, price_cents)

    clean = pop[None, :] * _season(cal, cat) * life * ~out_mask * uplift
    weights = clean * r_lines.lognormal(0.0, 0.25, (n_days, n_products))
    lam = _expected_orders(r_orders, cal, orders_per_day)
    lam[weights.sum(axis=1) <= 0] = 0.0
    planned, day_mult = _plant_anomalies(
        r_anom, cal, cat, lam, clean, weights, out_mask, promo_mask, launch, disc
    )

    # orders, in time order
    n_orders_day = r_orders.poisson(lam * r_orders.lognormal(0.0, 0.06, n_days) * day_mult)
    n_orders = int(n_orders_day.sum())
    order_day = np.repeat(np.arange(n_days), n_orders_day)
    day_kind = np.maximum(cal["kind"], 0)[order_day]
    minute = _rows_search(_intraday_cdfs(), day_kind, r_time.random(n_orders))
    second = minute * 60 + r_time.integers(0, 60, n_orders)
    order_rank = np.empty(n_orders, dtype=np.int64)
    order_rank[np.lexsort((second, order_day))] = np.arange(n_orders)
    sale_day = np.empty(n_orders, dtype=np.int64)
    sale_day[order_rank] = order_day
    sale_sec = np.empty(n_orders, dtype=np.int64)
    sale_sec[order_rank] = second

    # line items
    l_sale, l_prod, l_qty = _line_items(r_lines, r_anom, weights, cat, planned, order_day, order_rank)
    l_day = sale_day[l_sale]
    units_day = np.zeros((n_days, n_products))
    np.add.at(units_day, (l_day, l_prod), l_qty)

    day0 = days.to_numpy().astype("datetime64[s]")
    sale_ts = day0[sale_day] + sale_sec.astype("timedelta64[s]")
    sale_ts = _skip_dst_gaps(sale_ts, sale_day, days, zone)
    customers = _customers(r_cust, sale_day, orders_per_day)
    stock, threshold, shrink = _end_stock(r_end, units_day, out_mask, launch, disc, top)

    unknown = np.zeros(n_products, dtype=bool)
    n_unknown = int(round(_UNKNOWN_COST_SHARE * n_products))
    if n_unknown:
        unknown[r_end.choice(n_products, n_unknown, replace=False)] = True
    category_names = np.array([c.name for c in _CATEGORIES], dtype=object)[cat["cat"]]
    products = pd.DataFrame(
        {
            "sku": cat["sku"],
            "name": cat["name"],
            "price": cat["price"] / 100.0,
            "cost": np.where(unknown, np.nan, cat["cost"] / 100.0),
            "category": np.where(unknown, None, category_names),
            "stock_quantity": stock.astype(np.int64),
            "low_stock_threshold": threshold.astype(np.int64),
        }
    )
    width = max(7, len(str(n_orders)))
    sale_ids = np.array([f"S{i:0{width}d}" for i in range(1, n_orders + 1)], dtype=object)
    sales = pd.DataFrame(
        {
            "sale_id": sale_ids[l_sale],
            "sale_ts": sale_ts[l_sale],
            "sku": cat["sku"][l_prod],
            "quantity": l_qty,
            "unit_price": price_cents[l_day, l_prod] / 100.0,
            "customer_id": customers[l_sale],
        }
    )
    truth = _truth(days, cat["sku"], planned, n_orders_day, units_day, shrink)
    return DemoShop(products=products, sales=sales, truth=truth)


def _popularity(rng: np.random.Generator, cat: dict[str, np.ndarray]):
    """Long-tailed popularity in three tiers (top, mid, slow); ``top`` marks the best 10%."""
    n = len(cat["sku"])
    u = rng.random(n)
    tier = np.where(u < 0.05, 0, np.where(u < 0.75, 1, 2))
    tier_mult = np.array([4.5, 1.0, 0.12])[tier]
    demand = np.array([c.demand for c in _CATEGORIES])[cat["cat"]]
    rel_price = cat["price"] / np.median(cat["price"])
    pop = demand ** 0.7 * tier_mult * rng.lognormal(0.0, 0.4, n) * rel_price ** -0.25
    rank = np.empty(n, dtype=np.int64)
    rank[np.argsort(-pop, kind="stable")] = np.arange(n)
    top = rank < max(1, int(round(0.10 * n)))
    return pop, tier, top


def _season(cal: dict[str, np.ndarray], cat: dict[str, np.ndarray]) -> np.ndarray:
    """Seasonal factor per (day, product): category curve times the item's own tag."""
    curves = np.stack([cal["summer"], cal["xmas"], cal["school"]], axis=1)
    cat_season = 1.0 + curves @ np.array([c.season for c in _CATEGORIES]).T
    tag_coef = np.array(list(_TAGS.values()))
    tag_season = tag_coef[:, 0][None, :] + curves @ tag_coef[:, 1:].T
    return cat_season[:, cat["cat"]] * tag_season[:, cat["tag"]]


def _lifecycle(rng: np.random.Generator, n_days: int, top: np.ndarray):
    """Launch and discontinuation days and the resulting demand factor per (day, product)."""
    n = len(top)
    launch = np.zeros(n, dtype=np.int64)
    disc = np.full(n, n_days, dtype=np.int64)
    if n_days >= 90:
        is_new = (rng.random(n) < 0.12) & ~top
        launch[is_new] = rng.integers(30, n_days - 14, is_new.sum())
        is_disc = ~is_new & ~top & (rng.random(n) < 0.06)
        if n_days >= 120:
            disc[is_disc] = rng.integers(60, n_days - 30, is_disc.sum())
    day = np.arange(n_days)[:, None]
    since = day - launch[None, :]
    ramp = np.where(launch[None, :] > 0, 1.0 - np.exp(-(since + 1) / 10.0), 1.0)
    life = np.where(since < 0, 0.0, ramp)
    life = np.where(day >= disc[None, :], 0.0, np.where(day >= disc[None, :] - 28, 0.6 * life, life))
    return launch, disc, life


def _stockouts(rng, n_days: int, top: np.ndarray, launch: np.ndarray, disc: np.ndarray) -> np.ndarray:
    """Out-of-stock mask per (day, product): past stretches plus some products out today."""
    n = len(top)
    can_out = ~top
    k_out = np.where(can_out, rng.poisson(0.7 * n_days / 365.0, n), 0)
    prod = np.repeat(np.arange(n), k_out)
    lo = launch[prod] + 7
    hi = np.minimum(disc[prod], n_days)
    start = lo + np.floor(rng.random(len(prod)) * np.maximum(hi - lo, 1)).astype(np.int64)
    stop = np.minimum(start + rng.integers(3, 19, len(prod)), hi)
    ok = start < stop
    current = can_out & (disc == n_days) & (launch < n_days - 30) & (rng.random(n) < 0.03)
    cur = np.flatnonzero(current)
    cur_start = np.maximum(n_days - rng.integers(2, 13, len(cur)), launch[cur])
    return _windows_mask(
        n_days, n,
        np.concatenate([prod[ok], cur]),
        np.concatenate([start[ok], cur_start]),
        np.concatenate([stop[ok], np.full(len(cur), n_days)]),
    )


def _price_history(rng, price_now: np.ndarray, launch: np.ndarray, n_days: int) -> np.ndarray:
    """Shelf price in cents per (day, product): zero to two rises ending at today's price."""
    n = len(price_now)
    k_rise = _draw(rng, np.array([0.45, 0.40, 0.15]), n)
    first = launch + 1
    c1 = first + (rng.random(n) * np.maximum(n_days - first, 1)).astype(np.int64)
    c1 = np.where(k_rise >= 1, c1, -1)
    c2 = first + (rng.random(n) * np.maximum(c1 - first, 1)).astype(np.int64)
    c2 = np.where(k_rise >= 2, c2, -1)
    rise1 = 1.0 + rng.uniform(0.04, 0.14, n)
    lvl1 = np.minimum(_snap_price(price_now / 100.0 / rise1 - 0.005), price_now)
    rise2 = 1.0 + rng.uniform(0.04, 0.14, n)
    lvl2 = np.minimum(_snap_price(lvl1 / 100.0 / rise2 - 0.005), lvl1)
    day = np.arange(n_days)[:, None]
    price = np.where(day < c1[None, :], lvl1[None, :], price_now[None, :])
    return np.where(day < c2[None, :], lvl2[None, :], price)


def _promotions(rng, cat, pop, tier, launch, disc, out_mask, price_cents):
    """Discount windows of 1-2 weeks; returns the demand uplift and the promotion mask.

    ``price_cents`` is discounted in place.
    """
    n_days, n = out_mask.shape
    uplift = np.ones((n_days, n))
    promo_mask = np.zeros((n_days, n), dtype=bool)
    margin = 1.0 - cat["cost"] / cat["price"]
    n_promo = int(round(n_days / 365.0 * max(12, 0.1 * n)))
    cand_w = np.where(tier < 2, np.sqrt(pop), 0.0)
    if n_days < 30 or cand_w.sum() <= 0:
        return uplift, promo_mask
    for p in _draw(rng, cand_w, n_promo):
        dur = int(rng.integers(7, 15))
        lo, hi = int(launch[p]) + 14, int(min(disc[p], n_days)) - 28 - dur
        if hi <= lo:
            continue
        s = int(rng.integers(lo, hi))
        e = s + dur
        if out_mask[max(0, s - 3):e + 3, p].any() or promo_mask[max(0, s - 10):e + 10, p].any():
            continue
        pct = float(rng.choice([0.10, 0.15, 0.20, 0.25, 0.30]))
        pct = min(pct, max(0.10, float(margin[p]) - 0.05))
        promo_mask[s:e, p] = True
        uplift[s:e, p] = min(2.4, 1.0 + pct * rng.uniform(4.0, 6.0))
        price_cents[s:e, p] = np.rint(price_cents[s:e, p] * (1.0 - pct)).astype(np.int64)
    return uplift, promo_mask


def _expected_orders(rng, cal: dict[str, np.ndarray], orders_per_day: float) -> np.ndarray:
    """Expected orders per day: weekday x yearly x holidays x growth, averaging ``orders_per_day``."""
    years = np.arange(len(cal["dow"])) / 365.25
    growth = rng.uniform(0.03, 0.10)
    shape = _WEEKDAY[cal["dow"]] * cal["yearly"] * cal["factor"] * (1.0 + growth) ** years
    if shape.sum() <= 0:
        return np.zeros(len(shape))
    return orders_per_day * shape / shape.mean()


def _plant_anomalies(rng, cal, cat, lam, clean, weights, out_mask, promo_mask, launch, disc):
    """Choose the anomaly days and series; ``weights`` is changed in place for sku anomalies.

    Returns the planned anomalies ``(day, kind, series, product, multiplier, expected)``
    (``expected`` is orders for ``TOTAL``, units for a sku) and a multiplier on each day's orders.
    """
    n_days, n = clean.shape
    day_idx = np.arange(n_days)
    mean_basket = float((np.arange(1, 7) * _BASKET_P).sum())
    sizes = np.arange(1, 7)
    mean_qty = np.where(cat["multibuy"], (sizes * _QTY_MULTIBUY_P).sum(), (sizes * _QTY_P).sum())
    day_mult = np.ones(n_days)
    planned: list[tuple[int, str, str, int, float, float]] = []
    eligible = np.flatnonzero(
        (day_idx >= 60) & (day_idx < n_days - 7) & ~cal["holiday_season"] & (cal["kind"] >= 0)
    )
    n_anom = min(len(_ANOMALY_MIX), len(eligible) // 55)
    if n_anom == 0 and len(eligible) >= 14:
        n_anom = 1
    if n_anom == 0:
        return planned, day_mult
    kinds = [_ANOMALY_MIX[i] for i in rng.permutation(n_anom)]
    clean_sum = clean.sum(axis=1)
    share = clean / np.where(clean_sum > 0, clean_sum, 1.0)[:, None]
    expected_lines = (lam * mean_basket)[:, None] * share
    used: set[int] = set()
    for (kind, series), chunk in zip(kinds, np.array_split(eligible, n_anom)):
        m = len(chunk)
        d = int(chunk[int(m * 0.2 + rng.random() * m * 0.6)])
        if series == "TOTAL":
            lo_hi = {"spike": (3.0, 4.0), "drop": (0.2, 0.3), "outage": (0.02, 0.05)}[kind]
            mult = round(float(rng.uniform(*lo_hi)), 2)
            planned.append((d, kind, "TOTAL", -1, mult, float(lam[d])))
            day_mult[d] *= mult
            continue
        w0, w1 = max(0, d - 28), min(n_days, d + 29)
        calm = (
            ~out_mask[w0:w1].any(axis=0) & ~promo_mask[w0:w1].any(axis=0)
            & (launch < d - 60) & (disc >= min(n_days, d + 60))
        )
        units = expected_lines[d] * mean_qty
        need = 15.0 if kind == "drop" else 5.0
        free = calm & ~np.isin(np.arange(n), list(used))
        cand = np.flatnonzero(free & (units >= need))
        if len(cand) == 0:
            cand = np.flatnonzero(free & (units > 0))
            if len(cand) == 0:
                continue
            cand = cand[np.argsort(-units[cand], kind="stable")[:3]]
        p = int(cand[rng.integers(len(cand))])
        used.add(p)
        mult = round(float(rng.uniform(4.0, 6.0) if kind == "spike" else rng.uniform(0.1, 0.2)), 2)
        before = weights[d].sum()
        weights[d, p] = mult * clean[d, p] * before / clean_sum[d]
        day_mult[d] *= weights[d].sum() / before
        planned.append((d, kind, "SKU", p, mult, float(units[p])))
    return planned, day_mult


def _line_items(rng, r_anom, weights, cat, planned, order_day, order_rank):
    """Baskets of 1-6 distinct products; returns (sale index, product, quantity) per line.

    Lines come sorted by sale, then product.
    """
    n_orders = len(order_day)
    n = weights.shape[1]
    basket = 1 + _draw(rng, _BASKET_P, n_orders)
    line_order = np.repeat(np.arange(n_orders), basket)
    line_day = order_day[line_order]
    cum = np.cumsum(weights, axis=1)
    totals = cum[:, -1].copy()
    totals[totals <= 0] = 1.0
    cum /= totals[:, None]
    cum[:, -1] = 1.0
    line_prod = _rows_search(cum, line_day, rng.random(len(line_order)))
    u_q = rng.random(len(line_order))
    q_std = np.searchsorted(np.cumsum(_QTY_P), u_q, side="right")
    q_mb = np.searchsorted(np.cumsum(_QTY_MULTIBUY_P), u_q, side="right")
    qty = 1 + np.minimum(np.where(cat["multibuy"][line_prod], q_mb, q_std), 5)
    for d, kind, series, p, _mult, expected in planned:
        if series == "SKU":
            _enforce_sku_anomaly(
                r_anom, line_day, line_prod, qty, weights[d], cat["cat"], d, p, kind, expected
            )
    key = order_rank[line_order] * n + line_prod
    ukey, inverse = np.unique(key, return_inverse=True)
    l_qty = np.bincount(inverse, weights=qty, minlength=len(ukey)).astype(np.int64)
    return ukey // n, ukey % n, l_qty


def _truth(days, skus, planned, n_orders_day, units_day, shrink) -> pd.DataFrame:
    rows = []
    for d, kind, series, p, mult, expected in planned:
        direction = "up" if kind == "spike" else "down"
        if series == "TOTAL":
            series_id = "TOTAL"
            count, unit, fmt = int(n_orders_day[d]), "order", ".0f"
        else:
            series_id = str(skus[p])
            count, unit, fmt = int(units_day[d, p]), "unit", ".1f"
        observed = f"{count} {unit}{'' if count == 1 else 's'} vs ~{expected:{fmt}} expected"
        note = f"{_NOTES[(kind, series)]}: {observed}"
        rows.append((days[d].date(), series_id, kind, direction, mult, note))
    for d, p, before, lost in shrink:
        note = (
            f"{lost} of {before} units written off (breakage/theft); not in sales, "
            f"stock_quantity already reflects it"
        )
        ratio = round((before - lost) / before, 2)
        rows.append((days[d].date(), str(skus[p]), "stock_shrinkage", "down", ratio, note))
    rows.sort(key=lambda r: (r[0], r[1]))
    truth = pd.DataFrame(rows, columns=TRUTH_COLUMNS)
    truth["magnitude"] = truth["magnitude"].astype(float)
    truth["date"] = truth["date"].astype(object)
    return truth


def _enforce_sku_anomaly(rng, line_day, line_prod, qty, day_weights, cat_of, d, p, kind, expected):
    """Make a planted sku anomaly unmistakable in units (in place on the raw lines).

    A spike reaches at least 3.5x the expected units (other lines of the day switch to the
    product); a drop stays at most 0.2x (surplus lines switch to a substitute of the
    same category, kept lines buy one unit each).
    """
    on_day = np.flatnonzero(line_day == d)
    mine = on_day[line_prod[on_day] == p]
    if kind == "spike":
        need = int(np.ceil(3.5 * expected)) - int(qty[mine].sum())
        if need <= 0:
            return
        others = rng.permutation(on_day[line_prod[on_day] != p])
        extra_qty = 1 + _draw(rng, _QTY_P[:3], len(others))
        take = int(np.searchsorted(np.cumsum(extra_qty), need)) + 1
        chosen = others[:take]
        line_prod[chosen] = p
        qty[chosen] = extra_qty[:take]
        return
    cap = int(np.floor(0.2 * expected))
    qty[mine] = 1
    if len(mine) <= cap:
        return
    surplus = rng.permutation(mine)[cap:]
    subst_w = np.where((cat_of == cat_of[p]) & (np.arange(len(cat_of)) != p), day_weights, 0.0)
    if subst_w.sum() <= 0:
        subst_w = np.where(np.arange(len(cat_of)) != p, day_weights + 1e-12, 0.0)
    if subst_w.sum() <= 0:
        return
    line_prod[surplus] = _draw(rng, subst_w, len(surplus))


def _skip_dst_gaps(
    ts: np.ndarray, sale_day: np.ndarray, days: pd.DatetimeIndex, zone: ZoneInfo
) -> np.ndarray:
    """Move local times that do not exist in ``zone`` (spring-forward gap) past the gap."""
    if not len(ts):
        return ts
    midnights = list(days.date) + [days[-1].date() + timedelta(days=1)]
    offsets = [datetime(d.year, d.month, d.day, tzinfo=zone).utcoffset() for d in midnights]
    change = [i for i in range(len(days)) if offsets[i + 1] > offsets[i]]
    if not change:
        return ts
    ts = ts.copy()
    for i in change:
        gap = np.timedelta64(int((offsets[i + 1] - offsets[i]).total_seconds()), "s")
        for j in np.flatnonzero(sale_day == i):
            naive = ts[j].astype(datetime)
            back = (
                naive.replace(tzinfo=zone).astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
            )
            if back != naive:
                ts[j] = ts[j] + gap
    return ts


def _customers(rng: np.random.Generator, sale_day: np.ndarray, orders_per_day: float) -> np.ndarray:
    """Customer id per sale (sales in time order), ``None`` for anonymous sales."""
    n_sales = len(sale_day)
    out = np.full(n_sales, None, dtype=object)
    ident = np.flatnonzero(rng.random(n_sales) >= _ANON_SHARE)
    m = len(ident)
    if m == 0:
        return out
    t = sale_day[ident].astype(float)
    pool = max(1, int(round(orders_per_day * (1 - _ANON_SHARE) * 25)))
    is_new = rng.random(m) < 0.15
    n_new = int(is_new.sum())
    total = pool + n_new
    weight = np.minimum(rng.lognormal(0.0, 1.5, total), 60.0)
    cw = np.cumsum(weight)
    until = np.empty(total)
    until[:pool] = rng.exponential(450.0, pool)
    first_t = t[is_new]
    life = np.where(rng.random(n_new) < 0.4, rng.exponential(20.0, n_new), rng.exponential(700.0, n_new))
    until[pool:] = first_t + life
    assigned = np.full(m, -1, dtype=np.int64)
    assigned[is_new] = pool + np.arange(n_new)
    bound = pool + np.cumsum(is_new) - is_new
    pending = np.flatnonzero(~is_new)
    for _ in range(8):
        if not len(pending):
            break
        k = np.searchsorted(cw, rng.random(len(pending)) * cw[bound[pending] - 1], side="right")
        k = np.minimum(k, bound[pending] - 1)
        ok = t[pending] <= until[k]
        assigned[pending[ok]] = k[ok]
        pending = pending[~ok]
    assigned[pending] = total + np.arange(len(pending))
    codes, _ = pd.factorize(assigned)
    width = max(5, len(str(int(codes.max()) + 1)))
    labels = np.array([f"C{i:0{width}d}" for i in range(1, int(codes.max()) + 2)], dtype=object)
    out[ident] = labels[codes]
    return out


def _end_stock(rng, units_day, out_mask, launch, disc, top):
    """Today's stock and reorder thresholds; plants stock shrinkage."""
    n_days, n = units_day.shape
    out_now = out_mask[-1]
    look = min(90, n_days)
    avail_days = (~out_mask[-look:]).sum(axis=0)
    active_days = np.clip(n_days - np.maximum(launch, n_days - look), 0, None)
    sell_days = np.maximum(np.minimum(avail_days, active_days), 1)
    rate = units_day[-look:].sum(axis=0) / sell_days
    lead = rng.uniform(4.0, 10.0, n)
    threshold = np.maximum(1, np.ceil(rate * lead)).astype(np.int64)
    threshold = np.where(threshold >= 20, (np.ceil(threshold / 5.0) * 5).astype(np.int64), threshold)
    short_cover = rng.random(n) < 0.07
    cover = np.where(short_cover, rng.uniform(0.2, 0.95, n) * lead, rng.lognormal(np.log(20.0), 0.5, n))
    stock = np.rint(rate * cover).astype(np.int64)
    slow = rate < 0.3
    stock = np.where(slow, rng.integers(1, 13, n), np.maximum(stock, 1))
    stock = np.where(out_now, 0, stock)
    gone = disc < n_days
    leftovers = np.where(rng.random(n) < 0.3, rng.integers(1, 5, n), 0)
    stock = np.where(gone, leftovers, stock)
    threshold = np.where(gone, 1, threshold)

    shrink = []
    steady = ~gone & ~out_now & ~top & (launch < n_days - 60)
    cand = np.flatnonzero(steady & (stock >= 10) & (rate >= 0.5))
    if n_days >= 67 and len(cand):
        p = int(cand[rng.integers(len(cand))])
        before = int(stock[p])
        lost = int(round(before * rng.uniform(0.55, 0.8)))
        stock[p] = before - lost
        shrink.append((n_days - 1 - int(rng.integers(0, 7)), p, before, lost))
    return stock, threshold, shrink


# --------------------------------------------------------------------------- output

def _money(values: pd.Series) -> np.ndarray:
    cents = np.rint(values.to_numpy(dtype=float) * 100.0)
    out = np.empty(len(cents), dtype=object)
    known = ~np.isnan(cents)
    c = cents[known].astype(np.int64)
    uniq, inv = np.unique(c, return_inverse=True)
    text = np.array([f"{v // 100}.{v % 100:02d}" for v in uniq], dtype=object)
    out[known] = text[inv]
    out[~known] = ""
    return out


def write_demo_csvs(shop: DemoShop, folder: Path) -> tuple[Path, Path, Path]:
    """Write ``products.csv``, ``sales.csv`` and ``demo_truth.csv`` into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = (folder / "products.csv", folder / "sales.csv", folder / "demo_truth.csv")

    p = shop.products
    products = pd.DataFrame(
        {
            "sku": p["sku"].astype(object),
            "name": p["name"].astype(object),
            "price": _money(p["price"]),
            "cost": _money(p["cost"]),
            "category": p["category"].astype(object).where(p["category"].notna(), ""),
            "stock_quantity": p["stock_quantity"].astype(np.int64),
            "low_stock_threshold": p["low_stock_threshold"].astype(np.int64),
        }
    )
    products.to_csv(paths[0], index=False, lineterminator="\n")

    s = shop.sales
    ts = np.datetime_as_string(s["sale_ts"].to_numpy().astype("datetime64[s]"), unit="s")
    sales = pd.DataFrame(
        {
            "sale_id": s["sale_id"].astype(object),
            "sale_ts": ts.astype(object),
            "sku": s["sku"].astype(object),
            "quantity": s["quantity"].astype(np.int64),
            "unit_price": _money(s["unit_price"]),
            "customer_id": s["customer_id"].astype(object).where(s["customer_id"].notna(), ""),
        }
    )
    sales.to_csv(paths[1], index=False, lineterminator="\n")

    t = shop.truth
    truth = pd.DataFrame(
        {
            "date": [d.isoformat() for d in pd.to_datetime(t["date"]).dt.date] if len(t) else [],
            "series_id": t["series_id"].astype(object),
            "kind": t["kind"].astype(object),
            "direction": t["direction"].astype(object),
            "magnitude": [f"{v:.2f}" for v in t["magnitude"]],
            "note": t["note"].astype(object),
        },
        columns=TRUTH_COLUMNS,
    )
    truth.to_csv(paths[2], index=False, lineterminator="\n")
    return paths
