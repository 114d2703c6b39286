"""The output root (SALESFLOW_HOME) and the folders under it."""

from pathlib import Path

import dagster as dg
from pydantic import Field


class FoldersResource(dg.ConfigurableResource):
    """Folders the pipeline writes to, all under one root."""

    home: str = Field(default=".", description="Output root (SALESFLOW_HOME)")

    def path(self, *parts: str) -> Path:
        folder = Path(self.home).joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    @property
    def spool(self) -> Path:
        """Scratch space for large downloads from the core (kept off a small /tmp)."""
        return self.path("data", "spool")

    @property
    def exports(self) -> Path:
        return self.path("exports")
