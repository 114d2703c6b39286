"""Request bodies of the core, parsed and validated the way Spring/Jackson/Jakarta do it.

Order of checks, as in Spring: the body must be JSON of the right shape and types (else 400
``RUNTIME_ERROR``, Jackson's ``HttpMessageNotReadableException``), then bean validation (400
``VALIDATION_ERROR`` with ``details`` ``{field: message}``), then the service itself.
Where Jackson would coerce oddities (``"5"`` for an integer, ``1.5`` truncated to ``1``) the
emulator refuses them: a client that passes here passes against the real core.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import orjson

from emulator.errors import runtime_error, validation_error

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
CENT = Decimal("0.01")

_ABSENT = object()


def cents(value: Decimal) -> int:
    """Decimal money → integer cents, rounded half-up (the core's DECIMAL(…, 2) columns)."""
    return int((value.quantize(CENT, rounding=ROUND_HALF_UP) * 100).to_integral_value())


def money(c: int) -> float:
    """Integer cents → JSON number with at most two decimals."""
    return c / 100


def java_length(text: str) -> int:
    """``String.length()``: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def is_blank(text: str | None) -> bool:
    return text is None or text.strip() == ""


def _is_json_media_type(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def parse_json_body(body: bytes, content_type: str | None) -> Any:
    if not _is_json_media_type(content_type):
        shown = (content_type or "application/octet-stream").split(";", 1)[0].strip()
        raise runtime_error(f"Content-Type '{shown}' is not supported")
    if not body.strip():
        raise runtime_error("Required request body is missing")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise runtime_error(f"JSON parse error: {exc}") from None


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean value"
    if isinstance(value, str):
        return f'String "{value}"'
    if isinstance(value, (int, float)):
        return f"Number value ({value})"
    if isinstance(value, list):
        return "Array value"
    if isinstance(value, dict):
        return "Object value"
    return "value"


def _type_error(java_type: str, value: Any, field: str) -> Exception:
    return runtime_error(
        f"JSON parse error: Cannot deserialize value of type `{java_type}` from "
        f"{_describe(value)} (field `{field}`)"
    )


def _object(value: Any, java_type: str) -> dict:
    if not isinstance(value, dict):
        raise runtime_error(
            f"JSON parse error: Cannot deserialize value of type `{java_type}` from {_describe(value)}"
        )
    return value


def _int(value: Any, field: str, *, long: bool = False) -> int | None:
    if value is None:
        return None
    java_type = "java.lang.Long" if long else "java.lang.Integer"
    lo, hi = (LONG_MIN, LONG_MAX) if long else (INT_MIN, INT_MAX)
    if isinstance(value, bool):
        raise _type_error(java_type, value, field)
    if isinstance(value, float):
        if not value.is_integer():
            raise _type_error(java_type, value, field)
        value = int(value)
    if not isinstance(value, int):
        raise _type_error(java_type, value, field)
    if not lo <= value <= hi:
        raise runtime_error(
            f"JSON parse error: Numeric value ({value}) out of range of {java_type} (field `{field}`)"
        )
    return value


def _decimal(value: Any, field: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _type_error("java.math.BigDecimal", value, field)
    try:
        if isinstance(value, int):
            result = Decimal(value)
        elif isinstance(value, float):
            result = Decimal(repr(value))
        elif isinstance(value, str):
            result = Decimal(value.strip())
        else:
            raise _type_error("java.math.BigDecimal", value, field)
    except InvalidOperation:
        raise _type_error("java.math.BigDecimal", value, field) from None
    if not result.is_finite():
        raise _type_error("java.math.BigDecimal", value, field)
    return result


def _str(value: Any, field: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _type_error("java.lang.String", value, field)
    return value


# -- auth ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginInput:
    phone_number: str
    password: str


def login_input(obj: Any) -> LoginInput:
    obj = _object(obj, "LoginRequest")
    phone = _str(obj.get("phoneNumber"), "phoneNumber")
    password = _str(obj.get("password"), "password")
    details = {}
    if is_blank(phone):
        details["phoneNumber"] = "Phone number is required"
    if is_blank(password):
        details["password"] = "Password is required"
    if details:
        raise validation_error(details)
    return LoginInput(phone, password)


def refresh_input(obj: Any) -> str | None:
    obj = _object(obj, "TokenRefreshRequest")
    return _str(obj.get("refreshToken"), "refreshToken")


# -- products ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductInput:
    name: str
    sku: str
    price_cents: int
    stock_quantity: int
    description: str | None
    image_url: str | None
    low_stock_threshold: int


def product_input(obj: Any) -> ProductInput:
    obj = _object(obj, "ProductDto")
    _int(obj.get("id"), "id", long=True)
    name = _str(obj.get("name"), "name")
    sku = _str(obj.get("sku"), "sku")
    price = _decimal(obj.get("price"), "price")
    stock = obj.get("stockQuantity", _ABSENT)
    stock = 0 if stock is _ABSENT else _int(stock, "stockQuantity")
    threshold = obj.get("lowStockThreshold", _ABSENT)
    threshold = 10 if threshold is _ABSENT else _int(threshold, "lowStockThreshold")
    description = _str(obj.get("description"), "description")
    image_url = _str(obj.get("imageUrl"), "imageUrl")

    details: dict[str, str] = {}
    if is_blank(name):
        details["name"] = "Product name is required"
    elif java_length(name) > 100:
        details["name"] = "Name cannot exceed 100 characters"
    if is_blank(sku):
        details["sku"] = "SKU is required"
    elif java_length(sku) > 50:
        details["sku"] = "SKU cannot exceed 50 characters"
    if price is None:
        details["price"] = "Price is required"
    elif price < 0:
        details["price"] = "Price must be zero or positive"
    if stock is None:
        details["stockQuantity"] = "Stock quantity is required"
    elif stock < 0:
        details["stockQuantity"] = "Stock quantity cannot be negative"
    if threshold is None:
        details["lowStockThreshold"] = "must not be null"
    elif threshold < 1:
        details["lowStockThreshold"] = "Low stock threshold must be at least 1"
    if details:
        raise validation_error(details)
    return ProductInput(name, sku, cents(price), stock, description, image_url, threshold)


# -- inventory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class InventoryInput:
    sku: str
    name: str
    description: str | None
    quantity: int
    price_cents: int
    cost_cents: int
    category: str


def inventory_input(obj: Any) -> InventoryInput:
    obj = _object(obj, "InventoryRequest")
    sku = _str(obj.get("sku"), "sku")
    name = _str(obj.get("name"), "name")
    description = _str(obj.get("description"), "description")
    quantity = _int(obj.get("quantity"), "quantity")
    price = _decimal(obj.get("price"), "price")
    cost = _decimal(obj.get("cost"), "cost")
    category = _str(obj.get("category"), "category")

    details: dict[str, str] = {}
    if is_blank(sku):
        details["sku"] = "must not be blank"
    if is_blank(name):
        details["name"] = "must not be blank"
    if quantity is None:
        details["quantity"] = "must not be null"
    elif quantity < 0:
        details["quantity"] = "must be greater than or equal to 0"
    for field, value in (("price", price), ("cost", cost)):
        if value is None:
            details[field] = "must not be null"
        elif value < 0:
            details[field] = "must be greater than or equal to 0.0"
    if is_blank(category):
        details["category"] = "must not be blank"
    if details:
        raise validation_error(details)
    return InventoryInput(sku, name, description, quantity, cents(price), cents(cost), category)


@dataclass(frozen=True)
class AdjustInput:
    quantity: int | None
    cost_cents: int | None


def adjust_input(obj: Any) -> AdjustInput:
    obj = _object(obj, "InventoryAdjustRequest")
    quantity = _int(obj.get("quantity"), "quantity")
    cost = _decimal(obj.get("cost"), "cost")
    details: dict[str, str] = {}
    if quantity is not None and quantity < 0:
        details["quantity"] = "Quantity cannot be negative"
    if cost is not None and cost < 0:
        details["cost"] = "Cost cannot be negative"
    if details:
        raise validation_error(details)
    return AdjustInput(quantity, None if cost is None else cents(cost))


# -- sales ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaleItemInput:
    product_id: int | None
    sku: str | None
    quantity: int


@dataclass(frozen=True)
class SaleInput:
    items: tuple[SaleItemInput, ...]
    customer_id: str | None = None


def _sale_input(obj: Any, prefix: str, details: dict[str, str]) -> SaleInput | None:
    obj = _object(obj, "CreateSaleRequest")
    customer_id = _str(obj.get("customerId"), "customerId")
    raw_items = obj.get("items")
    if raw_items is not None and not isinstance(raw_items, list):
        raise _type_error("java.util.List", raw_items, "items")
    if not raw_items:
        details[f"{prefix}items"] = "Sale must have at least one item"
        return None
    items = []
    for i, raw in enumerate(raw_items):
        raw = _object(raw, "SaleItemRequest")
        path = f"{prefix}items[{i}]"
        product_id = _int(raw.get("productId"), "productId", long=True)
        sku = _str(raw.get("sku"), "sku")
        quantity = _int(raw.get("quantity"), "quantity")
        if product_id is None and is_blank(sku):
            details[f"{path}.productId"] = "productId or sku is required"
        if quantity is None:
            details[f"{path}.quantity"] = "must not be null"
        elif quantity < 1:
            details[f"{path}.quantity"] = "must be greater than or equal to 1"
        items.append(SaleItemInput(product_id, None if is_blank(sku) else sku, quantity or 0))
    return SaleInput(tuple(items), customer_id)


def sale_input(obj: Any) -> SaleInput:
    details: dict[str, str] = {}
    sale = _sale_input(obj, "", details)
    if details:
        raise validation_error(details)
    assert sale is not None
    return sale


def bulk_sales_input(obj: Any) -> list[SaleInput]:
    if not isinstance(obj, list):
        raise runtime_error(
            "JSON parse error: Cannot deserialize value of type "
            f"`java.util.ArrayList<CreateSaleRequest>` from {_describe(obj)}"
        )
    details: dict[str, str] = {}
    sales = [_sale_input(raw, f"[{i}].", details) for i, raw in enumerate(obj)]
    if details:
        raise validation_error(details)
    return [s for s in sales if s is not None]
