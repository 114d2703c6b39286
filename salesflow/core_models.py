"""Typed models of the core's JSON (JAVA_API.md), decoded with msgspec for exact, located errors."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import msgspec

from salesflow.errors import CoreDataError


# Ids are Java longs (the JSON reader of sales listings holds them as BIGINT).
Id = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]


class ProductDto(msgspec.Struct, forbid_unknown_fields=False):
    id: int
    name: str
    sku: str
    price: Decimal
    stockQuantity: int
    lowStockThreshold: int = 10
    description: str | None = None
    imageUrl: str | None = None


class InventoryItem(msgspec.Struct, forbid_unknown_fields=False):
    id: int
    sku: str
    name: str
    quantity: int
    price: Decimal
    cost: Decimal
    category: str | None = None
    description: str | None = None
    createdAt: datetime | None = None
    updatedAt: datetime | None = None


class SaleItem(msgspec.Struct, forbid_unknown_fields=False, gc=False):
    productId: Id
    productName: str
    sku: str
    quantity: int
    unitPrice: float
    subtotal: float


class Sale(msgspec.Struct, forbid_unknown_fields=False, gc=False):
    id: Id
    saleDate: str
    totalAmount: float
    items: list[SaleItem]
    customerId: str | None = None


def _record_label(raw_items: list[msgspec.Raw] | None, index: int, key: str) -> str:
    if raw_items is None or index >= len(raw_items):
        return f"record #{index}"
    try:
        rec = msgspec.json.decode(raw_items[index])
    except msgspec.DecodeError:
        return f"record #{index}"
    if isinstance(rec, dict) and key in rec:
        return f"record #{index} ({key}={rec[key]!r})"
    return f"record #{index}"


def decode_list(data: bytes, model: type, what: str, key: str) -> list[Any]:
    """Decode a JSON array of ``model``; errors name the record (index and its key)."""
    try:
        return msgspec.json.decode(data, type=list[model])
    except msgspec.ValidationError as exc:
        raise CoreDataError(f"{what}: {_locate(data, exc, key)}") from None
    except msgspec.DecodeError as exc:
        raise CoreDataError(f"{what}: malformed JSON ({exc})") from None


def _locate(data: bytes, exc: msgspec.ValidationError, key: str) -> str:
    message = str(exc)
    marker = "at `$["
    if marker in message:
        try:
            index = int(message.split(marker, 1)[1].split("]", 1)[0])
            raw = msgspec.json.decode(data, type=list[msgspec.Raw])
            return f"{_record_label(raw, index, key)}: {message}"
        except (ValueError, msgspec.DecodeError):
            pass
    return message


def explain_sales_file(path: Path) -> str:
    """Find and describe the first structural problem in a sales listing file (error path only)."""
    data = Path(path).read_bytes()
    try:
        msgspec.json.decode(data, type=list[Sale])
    except msgspec.ValidationError as exc:
        return _locate(data, exc, "id")
    except msgspec.DecodeError as exc:
        return f"malformed JSON ({exc})"
    return "no structural problem found"
