from resources.core_api import CoreApiResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

__all__ = ["CoreApiResource", "WarehouseResource", "WAREHOUSE_POOL"]
