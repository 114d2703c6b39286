"""The core's business rules over the SQLite state, quirks included (JAVA_API.md).

Handlers in :mod:`emulator.server` and the live sales generator call these methods, so a
sale made by ``--live`` goes through exactly the path of ``POST /api/v1/sales``.

Quirks reproduced on purpose:
- creating/updating a product *adds* its ``stockQuantity`` to the inventory item of its sku
  (creating that item with cost 0 and category ``Uncategorized`` when missing);
- every inventory update/adjust *adds* the item's (new) quantity to the product's
  ``stockQuantity`` (creating the product when missing);
- inventory lookups that miss are 400 ``RUNTIME_ERROR``, product lookups that miss are 404;
- a sale takes the product's current price, checks and deducts stock, and is stamped with the
  clock's now; sale items keep the product's name and sku at the time of sale;
- a product referenced by sale items cannot be deleted (the core's foreign key): 400.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Iterable, Iterator

import orjson

from emulator.auth import Account, hash_password, verify_password
from emulator.clock import Clock, java_instant, java_local_datetime
from emulator.dto import (
    AdjustInput,
    InventoryInput,
    ProductInput,
    SaleInput,
    money,
)
from emulator.errors import insufficient_stock, not_found, runtime_error
from emulator.state import State

PRODUCT_COLS = (
    "id, name, sku, price_cents, stock_quantity, description, image_url, low_stock_threshold"
)
ITEM_COLS = (
    "id, sku, name, description, quantity, price_cents, cost_cents, category, created_at, updated_at"
)

# One SaleResponse as JSON text, rendered by SQLite over ``sales AS s``: money as
# ``cents / 100.0`` (at most two decimals), items in line order (the primary key of
# sale_items), ``customerId`` only when the sale has one.
_ITEM_JSON = (
    "json_object('productId', i.product_id, 'productName', i.product_name, 'sku', i.sku, "
    "'quantity', i.quantity, 'unitPrice', i.unit_price_cents / 100.0, "
    "'subtotal', i.subtotal_cents / 100.0)"
)
_SALE_FIELDS = (
    "'id', s.id, 'saleDate', s.sale_date, 'totalAmount', s.total_cents / 100.0, "
    f"'items', json((SELECT json_group_array({_ITEM_JSON}) FROM sale_items AS i "
    "WHERE i.sale_id = s.id))"
)
SALE_JSON = (
    f"CASE WHEN s.customer_id IS NULL THEN json_object({_SALE_FIELDS}) "
    f"ELSE json_object({_SALE_FIELDS}, 'customerId', s.customer_id) END"
)

_BY = {"id": "id", "sku": "sku", "name": "name"}


def product_json(row: sqlite3.Row | tuple) -> dict:
    pid, name, sku, price, stock, description, image_url, threshold = row
    return {
        "id": pid,
        "name": name,
        "sku": sku,
        "price": money(price),
        "stockQuantity": stock,
        "description": description,
        "imageUrl": image_url,
        "lowStockThreshold": threshold,
    }


def item_json(row: tuple) -> dict:
    iid, sku, name, description, quantity, price, cost, category, created, updated = row
    return {
        "id": iid,
        "sku": sku,
        "name": name,
        "description": description,
        "quantity": quantity,
        "price": money(price),
        "cost": money(cost),
        "category": category,
        "createdAt": created,
        "updatedAt": updated,
    }


def _lookup_label(by: str, key) -> str:
    return {"id": "id", "sku": "sku", "name": "name"}[by] + f": {key}"


@dataclass
class SalesQuery:
    """One listing of sales: SQL filter and order over ``sales AS s``."""

    where: str = "1"
    params: tuple = ()
    order: str = "s.id"
    limit: int | None = None


class Core:
    def __init__(self, state: State, clock: Clock):
        self.state = state
        self.clock = clock

    # -- time ----------------------------------------------------------------------------
    def _now_instant(self) -> str:
        return java_instant(self.clock.aware())

    def day_start(self, days_back: int) -> str:
        """``start of (today − days_back days)`` as a sale_date bound."""
        try:
            day = self.clock.today() - timedelta(days=days_back)
        except OverflowError:
            raise runtime_error(f"Invalid value for days: {days_back}") from None
        return java_local_datetime(datetime.combine(day, datetime.min.time()))

    # -- users ---------------------------------------------------------------------------
    def ensure_accounts(self, accounts: Iterable[Account]) -> None:
        """Make the users table hold exactly these accounts (hashes refreshed when needed)."""
        accounts = list(accounts)
        now = java_local_datetime(self.clock.now())
        with self.state.write() as conn:
            phones = [a.phone for a in accounts]
            conn.execute(
                f"DELETE FROM users WHERE phone_number NOT IN ({','.join('?' * len(phones))})",
                phones,
            )
            for acc in accounts:
                row = conn.execute(
                    "SELECT id, password_hash, role, username, email FROM users WHERE phone_number = ?",
                    (acc.phone,),
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO users(phone_number, password_hash, username, email, role, "
                        "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (acc.phone, hash_password(acc.password), acc.username, acc.email, acc.role, now, now),
                    )
                    continue
                uid, stored, role, username, email = row
                if not verify_password(acc.password, stored):
                    stored = hash_password(acc.password)
                if (stored, role, username, email) != (row[1], acc.role, acc.username, acc.email):
                    conn.execute(
                        "UPDATE users SET password_hash = ?, role = ?, username = ?, email = ?, "
                        "updated_at = ? WHERE id = ?",
                        (stored, acc.role, acc.username, acc.email, now, uid),
                    )

    def user_by_phone(self, phone: str) -> dict | None:
        with self.state.read() as conn:
            row = conn.execute(
                "SELECT id, phone_number, username, email, role, created_at, updated_at, password_hash "
                "FROM users WHERE phone_number = ?",
                (phone,),
            ).fetchone()
        if row is None:
            return None
        keys = ("id", "phoneNumber", "username", "email", "role", "createdAt", "updatedAt", "_hash")
        return dict(zip(keys, row))

    def authenticate(self, phone: str, password: str) -> dict | None:
        user = self.user_by_phone(phone)
        if user is None or not verify_password(password, user["_hash"]):
            return None
        return user

    # -- products ------------------------------------------------------------------------
    def list_products(self) -> list[dict]:
        with self.state.read() as conn:
            rows = conn.execute(f"SELECT {PRODUCT_COLS} FROM products ORDER BY id").fetchall()
        return [product_json(r) for r in rows]

    def low_stock_products(self) -> list[dict]:
        with self.state.read() as conn:
            rows = conn.execute(
                f"SELECT {PRODUCT_COLS} FROM products "
                "WHERE stock_quantity < low_stock_threshold ORDER BY id"
            ).fetchall()
        return [product_json(r) for r in rows]

    def _product_row(self, conn, by: str, key) -> tuple:
        row = conn.execute(
            f"SELECT {PRODUCT_COLS} FROM products WHERE {_BY[by]} = ?", (key,)
        ).fetchone()
        if row is None:
            raise not_found(f"Product not found with {_lookup_label(by, key)}")
        return row

    def get_product(self, by: str, key) -> dict:
        with self.state.read() as conn:
            return product_json(self._product_row(conn, by, key))

    def _check_unique_product(self, conn, p: ProductInput, own_id: int | None) -> None:
        for col, value in (("sku", p.sku), ("name", p.name)):
            row = conn.execute(f"SELECT id FROM products WHERE {col} = ?", (value,)).fetchone()
            if row is not None and row[0] != own_id:
                raise runtime_error(
                    f"could not execute statement: duplicate key value violates unique "
                    f"constraint on products.{col}: ({value}) already exists"
                )

    def _sync_product_to_inventory(self, conn, product_id: int) -> None:
        """The core's ``syncProductToInventory``: add the product's stock to its inventory item."""
        pid, name, sku, price, stock, description, _img, _thr = self._product_row(conn, "id", product_id)
        now = self._now_instant()
        found = conn.execute("SELECT id FROM inventory_items WHERE sku = ?", (sku,)).fetchone()
        if found is None:
            conn.execute(
                "INSERT INTO inventory_items(sku, name, description, quantity, price_cents, "
                "cost_cents, category, created_at, updated_at) "
                "VALUES (?, ?, ?, 0, ?, 0, 'Uncategorized', ?, ?)",
                (sku, name, description, price, now, now),
            )
        conn.execute(
            "UPDATE inventory_items SET quantity = quantity + ?, updated_at = ? WHERE sku = ?",
            (stock, now, sku),
        )

    def _product_values(self, p: ProductInput) -> tuple:
        """Column values of a product write, in the order both INSERT and UPDATE use."""
        return (p.name, p.sku, p.price_cents, p.stock_quantity, p.description, p.image_url,
                p.low_stock_threshold, self.clock.epoch_ms())

    def create_product(self, p: ProductInput) -> dict:
        with self.state.write() as conn:
            self._check_unique_product(conn, p, None)
            cur = conn.execute(
                "INSERT INTO products(name, sku, price_cents, stock_quantity, description, image_url, "
                "low_stock_threshold, last_updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                self._product_values(p),
            )
            pid = cur.lastrowid
            self._sync_product_to_inventory(conn, pid)
            return product_json(self._product_row(conn, "id", pid))

    def update_product(self, by: str, key, p: ProductInput) -> dict:
        """Full replace (``PUT /by-sku|by-name``)."""
        with self.state.write() as conn:
            pid = self._product_row(conn, by, key)[0]
            self._check_unique_product(conn, p, pid)
            conn.execute(
                "UPDATE products SET name = ?, sku = ?, price_cents = ?, stock_quantity = ?, "
                "description = ?, image_url = ?, low_stock_threshold = ?, last_updated_ms = ? "
                "WHERE id = ?",
                (*self._product_values(p), pid),
            )
            self._sync_product_to_inventory(conn, pid)
            return product_json(self._product_row(conn, "id", pid))

    def delete_product(self, by: str, key) -> None:
        with self.state.write() as conn:
            pid = self._product_row(conn, by, key)[0]
            if conn.execute("SELECT 1 FROM sale_items WHERE product_id = ? LIMIT 1", (pid,)).fetchone():
                raise runtime_error(
                    "could not execute statement: update or delete on table \"products\" violates "
                    "foreign key constraint on table \"sale_items\": the product has sales"
                )
            conn.execute("DELETE FROM products WHERE id = ?", (pid,))

    # -- inventory -----------------------------------------------------------------------
    def list_inventory(self) -> list[dict]:
        with self.state.read() as conn:
            rows = conn.execute(f"SELECT {ITEM_COLS} FROM inventory_items ORDER BY id").fetchall()
        return [item_json(r) for r in rows]

    def _item_row(self, conn, by: str, key) -> tuple:
        labels = {"id": "ID", "sku": "SKU", "name": "name"}
        rows = conn.execute(
            f"SELECT {ITEM_COLS} FROM inventory_items WHERE {_BY[by]} = ? LIMIT 2", (key,)
        ).fetchall()
        if not rows:
            raise runtime_error(f"Item not found with {labels[by]}: {key}")
        if len(rows) > 1:
            raise runtime_error("Query did not return a unique result: 2 results were returned")
        return rows[0]

    def get_item(self, by: str, key) -> dict:
        with self.state.read() as conn:
            return item_json(self._item_row(conn, by, key))

    def _sync_inventory_to_product(self, conn, item_id: int) -> None:
        """The core's ``syncInventoryToProduct``: add the item's quantity to its product's stock."""
        row = self._item_row(conn, "id", item_id)
        _iid, sku, name, description, quantity, price, _cost, _cat, _c, _u = row
        now_ms = self.clock.epoch_ms()
        found = conn.execute("SELECT id FROM products WHERE sku = ?", (sku,)).fetchone()
        if found is None:
            if conn.execute("SELECT 1 FROM products WHERE name = ?", (name,)).fetchone():
                raise runtime_error(
                    "could not execute statement: duplicate key value violates unique "
                    f"constraint on products.name: ({name}) already exists"
                )
            conn.execute(
                "INSERT INTO products(name, sku, price_cents, stock_quantity, description, image_url, "
                "low_stock_threshold, last_updated_ms) VALUES (?, ?, ?, 0, ?, NULL, 10, ?)",
                (name, sku, price, description, now_ms),
            )
        conn.execute(
            "UPDATE products SET stock_quantity = stock_quantity + ?, last_updated_ms = ? WHERE sku = ?",
            (quantity, now_ms, sku),
        )

    def update_item(self, by: str, key, req: InventoryInput) -> dict:
        with self.state.write() as conn:
            iid = self._item_row(conn, by, key)[0]
            clash = conn.execute(
                "SELECT id FROM inventory_items WHERE sku = ? AND id != ?", (req.sku, iid)
            ).fetchone()
            if clash:
                raise runtime_error(
                    "could not execute statement: duplicate key value violates unique "
                    f"constraint on inventory_items.sku: ({req.sku}) already exists"
                )
            conn.execute(
                "UPDATE inventory_items SET sku = ?, name = ?, description = ?, quantity = ?, "
                "price_cents = ?, cost_cents = ?, category = ?, updated_at = ? WHERE id = ?",
                (
                    req.sku,
                    req.name,
                    req.description,
                    req.quantity,
                    req.price_cents,
                    req.cost_cents,
                    req.category,
                    self._now_instant(),
                    iid,
                ),
            )
            self._sync_inventory_to_product(conn, iid)
            return item_json(self._item_row(conn, "id", iid))

    def adjust_item(self, by: str, key, req: AdjustInput) -> dict:
        with self.state.write() as conn:
            row = self._item_row(conn, by, key)
            iid = row[0]
            quantity = row[4] if req.quantity is None else req.quantity
            cost = row[6] if req.cost_cents is None else req.cost_cents
            conn.execute(
                "UPDATE inventory_items SET quantity = ?, cost_cents = ?, updated_at = ? WHERE id = ?",
                (quantity, cost, self._now_instant(), iid),
            )
            self._sync_inventory_to_product(conn, iid)
            return item_json(self._item_row(conn, "id", iid))

    def delete_item(self, by: str, key) -> None:
        with self.state.write() as conn:
            iid = self._item_row(conn, by, key)[0]
            conn.execute("DELETE FROM inventory_items WHERE id = ?", (iid,))

    # -- sales: writes -------------------------------------------------------------------
    def _insert_sale(self, conn, sale: SaleInput) -> int:
        sale_date = java_local_datetime(self.clock.now())
        now_ms = self.clock.epoch_ms()
        lines = []
        total = 0
        for line_no, item in enumerate(sale.items, start=1):
            if item.product_id is not None:
                row = self._product_row(conn, "id", item.product_id)
                if item.sku is not None and row[2] != item.sku:
                    raise runtime_error(
                        f"productId {item.product_id} does not match sku {item.sku}"
                    )
            else:
                row = self._product_row(conn, "sku", item.sku)
            pid, name, sku, price, stock, *_ = row
            if stock < item.quantity:
                raise insufficient_stock(sku)
            conn.execute(
                "UPDATE products SET stock_quantity = stock_quantity - ?, last_updated_ms = ? WHERE id = ?",
                (item.quantity, now_ms, pid),
            )
            subtotal = price * item.quantity
            total += subtotal
            lines.append((line_no, pid, name, sku, item.quantity, price, subtotal))
        cur = conn.execute(
            "INSERT INTO sales(sale_date, total_cents, customer_id) VALUES (?, ?, ?)",
            (sale_date, total, sale.customer_id),
        )
        sale_id = cur.lastrowid
        conn.executemany(
            "INSERT INTO sale_items(sale_id, line_no, product_id, product_name, sku, quantity, "
            "unit_price_cents, subtotal_cents) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(sale_id, *line) for line in lines],
        )
        return sale_id

    def create_sale(self, sale: SaleInput) -> dict:
        with self.state.write() as conn:
            sale_id = self._insert_sale(conn, sale)
            return self._sales_list(conn, SalesQuery("s.id = ?", (sale_id,)))[0]

    def bulk_create_sales(self, sales: list[SaleInput]) -> int:
        """All-or-nothing: one failing sale rolls back the whole batch."""
        with self.state.write() as conn:
            for sale in sales:
                self._insert_sale(conn, sale)
        return len(sales)

    # -- sales: reads --------------------------------------------------------------------
    @staticmethod
    def _sales_sql(q: SalesQuery) -> tuple[str, tuple]:
        sql = f"SELECT {SALE_JSON} FROM sales AS s WHERE {q.where} ORDER BY {q.order}"
        if q.limit is not None:
            return sql + " LIMIT ?", (*q.params, q.limit)
        return sql, q.params

    def _sales_list(self, conn, q: SalesQuery) -> list[dict]:
        sql, params = self._sales_sql(q)
        return [orjson.loads(row[0]) for row in conn.execute(sql, params)]

    def sales_list(self, q: SalesQuery) -> list[dict]:
        with self.state.read() as conn:
            return self._sales_list(conn, q)

    def stream_sales_json(self, q: SalesQuery, chunk_bytes: int = 1 << 18) -> Iterator[bytes]:
        """The JSON array of a listing, in chunks of about ``chunk_bytes``, from its own
        connection and snapshot; each sale is rendered by SQLite (see ``SALE_JSON``)."""
        conn = self.state.connect()
        try:
            conn.execute("BEGIN")
            sql, params = self._sales_sql(q)
            cursor = conn.execute(sql, params)
            pending: list[str] = []
            size = 0
            opened = False
            while True:
                rows = cursor.fetchmany(2048)
                if not rows:
                    break
                text = ",".join([r[0] for r in rows])
                pending.append(("," if opened else "[") + text)
                opened = True
                size += len(text)
                if size >= chunk_bytes:
                    yield "".join(pending).encode("utf-8")
                    pending, size = [], 0
            pending.append("]" if opened else "[]")
            yield "".join(pending).encode("utf-8")
        finally:
            try:
                conn.close()
            except sqlite3.Error:
                pass

    def all_sales_query(self) -> SalesQuery:
        return SalesQuery()

    def history_query(self, days: int) -> SalesQuery:
        return SalesQuery("s.sale_date >= ?", (self.day_start(days),), "s.sale_date DESC, s.id DESC")

    def today_query(self) -> SalesQuery:
        return SalesQuery(
            "s.sale_date >= ? AND s.sale_date < ?",
            (self.day_start(0), self.day_start(-1)),
            "s.sale_date DESC, s.id DESC",
        )

    def recent_query(self, limit: int) -> SalesQuery:
        if limit < 1:
            raise runtime_error("Page size must not be less than one")
        return SalesQuery(order="s.sale_date DESC, s.id DESC", limit=limit)

    def product_sales_history(self, sku: str, days: int) -> list[dict]:
        start = self.day_start(days)
        with self.state.read() as conn:
            pid = self._product_row(conn, "sku", sku)[0]
            rows = conn.execute(
                "SELECT substr(s.sale_date, 1, 10) AS day, SUM(i.quantity) "
                "FROM sale_items AS i JOIN sales AS s ON s.id = i.sale_id "
                "WHERE i.product_id = ? AND s.sale_date >= ? GROUP BY day ORDER BY day",
                (pid, start),
            ).fetchall()
        return [{"date": d, "quantity": q} for d, q in rows]

    # -- sync ----------------------------------------------------------------------------
    def sync_download(self, last_sync_ms: int | None) -> dict:
        # Under the writers' lock no write is in flight; every later write is stamped
        # at or after now, so ``now - 1`` is a cursor that cannot miss a change.
        with self.state.write() as conn:
            cursor = self.clock.epoch_ms() - 1
            if last_sync_ms is None or last_sync_ms <= 0:
                rows = conn.execute(f"SELECT {PRODUCT_COLS} FROM products ORDER BY id").fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {PRODUCT_COLS} FROM products WHERE last_updated_ms > ? ORDER BY id",
                    (last_sync_ms,),
                ).fetchall()
        return {
            "successes": [],
            "conflicts": [],
            "newSyncTimestamp": cursor,
            "updatedProducts": [product_json(r) for r in rows],
            "updatedSales": [],
        }

    # -- helpers for the live generator ---------------------------------------------------
    def product_popularity(self) -> list[tuple[int, str, int]]:
        """``(product_id, sku, units_sold)`` for every current product."""
        with self.state.read() as conn:
            rows = conn.execute(
                "SELECT p.id, p.sku, COALESCE(u.units, 0) FROM products AS p "
                "LEFT JOIN (SELECT product_id, SUM(quantity) AS units FROM sale_items "
                "GROUP BY product_id) AS u ON u.product_id = p.id ORDER BY p.id"
            ).fetchall()
        return [tuple(r) for r in rows]

    def known_customers(self, limit: int = 5000) -> list[str]:
        with self.state.read() as conn:
            rows = conn.execute(
                "SELECT DISTINCT customer_id FROM sales WHERE customer_id IS NOT NULL LIMIT ?",
                (limit,),
            ).fetchall()
        return [r[0] for r in rows]

    def today(self) -> date:
        return self.clock.today()
