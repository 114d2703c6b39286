from resources.core_api import CoreApiResource
from resources.folders import FoldersResource
from resources.mailer import MailerResource
from resources.warehouse import WAREHOUSE_POOL, WarehouseResource

__all__ = ["CoreApiResource", "FoldersResource", "MailerResource", "WarehouseResource", "WAREHOUSE_POOL"]
