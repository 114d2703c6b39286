"""Live trading: sales arriving in real time while the emulator runs (``--live``).

A background thread makes sales at ``rate`` per minute (exponential gaps) through
:meth:`Core.create_sale`, the code path of ``POST /api/v1/sales``: products are drawn in
proportion to their past units sold (plus one, so new products sell too), baskets hold one to
three products, some sales carry a customer id. Before a product would run short it is
restocked with a full replace through :meth:`Core.update_product`, the path of
``PUT /api/v1/products/by-sku/{sku}``, so live sales never stall on stock.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import random
import threading

from emulator.core import Core
from emulator.dto import ProductInput, SaleInput, SaleItemInput
from emulator.errors import CoreError

log = logging.getLogger("emulator.live")


class LiveSales:
    REFRESH_EVERY = 200  # sales between two reloads of the popularity weights

    def __init__(self, core: Core, rate_per_min: float, *, seed: int | None = None):
        if rate_per_min <= 0:
            raise ValueError("live rate must be positive (sales per minute)")
        self.core = core
        self.rate = rate_per_min
        self.rng = random.Random(seed)
        self.made = 0
        self.restocks = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="emulator-live-sales", daemon=True)
        self._skus: list[str] = []
        self._cum: list[float] = []
        self._customers: list[str] = []
        self._next_customer = itertools.count(1)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    # -- loop ----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._reload()
            self._customers = self.core.known_customers()
        except Exception:  # noqa: BLE001 - a broken generator must not take the server down
            log.exception("live sales: cannot read the catalogue")
        while not self._stop.wait(self.rng.expovariate(self.rate / 60.0)):
            try:
                self.step()
            except Exception:  # noqa: BLE001
                log.exception("live sales: step failed")

    def _reload(self) -> None:
        rows = self.core.product_popularity()
        self._skus = [sku for _pid, sku, _units in rows]
        self._cum = list(itertools.accumulate(units + 1.0 for _pid, _sku, units in rows))

    def _pick_skus(self, n: int) -> list[str]:
        chosen: list[str] = []
        for _ in range(n * 4):
            if len(chosen) == n:
                break
            i = bisect.bisect_left(self._cum, self.rng.random() * self._cum[-1])
            sku = self._skus[min(i, len(self._skus) - 1)]
            if sku not in chosen:
                chosen.append(sku)
        return chosen

    def _customer(self) -> str | None:
        if self.rng.random() >= 0.35:
            return None
        if self._customers and self.rng.random() < 0.7:
            return self.rng.choice(self._customers)
        customer = f"LIVE-{self.rng.randrange(16**6):06X}-{next(self._next_customer)}"
        self._customers.append(customer)
        return customer

    def step(self) -> dict | None:
        """Make one sale now (restocking first where needed); returns the SaleResponse."""
        if self.made % self.REFRESH_EVERY == 0 or not self._skus:
            self._reload()
        if not self._skus:
            return None
        basket = self._pick_skus(self.rng.choices((1, 2, 3), weights=(70, 22, 8))[0])
        items = []
        for sku in basket:
            qty = self.rng.choices((1, 2, 3, 4), weights=(72, 18, 7, 3))[0]
            try:
                self._restock_if_low(sku, qty)
            except CoreError:
                self._skus = []  # catalogue changed under us; reload next time
                continue
            items.append(SaleItemInput(product_id=None, sku=sku, quantity=qty))
        if not items:
            return None
        try:
            sale = self.core.create_sale(SaleInput(tuple(items), self._customer()))
        except CoreError as err:
            log.info("live sale refused (%s): %s", err.code, err.message)
            self._skus = []
            return None
        self.made += 1
        return sale

    def _restock_if_low(self, sku: str, qty: int) -> None:
        p = self.core.get_product("sku", sku)
        threshold = p["lowStockThreshold"] or 10
        if p["stockQuantity"] - qty >= threshold:
            return
        refill = max(threshold * 4, 25, qty * 2)
        self.core.update_product(
            "sku",
            sku,
            ProductInput(
                name=p["name"],
                sku=p["sku"],
                price_cents=round(p["price"] * 100),
                stock_quantity=p["stockQuantity"] + refill,
                description=p["description"],
                image_url=p["imageUrl"],
                low_stock_threshold=threshold,
            ),
        )
        self.restocks += 1
