"""The SalesFlow core as a Dagster resource (one per outside system)."""


from pydantic import Field

import dagster as dg
from salesflow.core_client import CoreClient


class CoreApiResource(dg.ConfigurableResource):
    """HTTP client of the SalesFlow core, configured through the environment.

    The account must have the ADMIN role: the core serves sales only to ADMIN tokens.
    """

    base_url: str = Field(description="Base URL of the core, e.g. http://127.0.0.1:8080")
    phone: str = Field(description="Phone number of the pipeline's ADMIN account")
    password: str = Field(description="Password of the pipeline's ADMIN account")
    timezone: str = Field(default="UTC", description="The shop's timezone (IANA name)")
    timeout_s: float = Field(default=30.0, description="Read timeout per request, seconds")
    write_timeout_s: float = Field(default=120.0, description="Timeout of a write (POST, PUT), "
                                   "seconds: longer than reads, as a busy core applies writes slowly")
    write_settle_s: float | None = Field(default=None, description="How long after a write "
                                         "without an answer its effect is awaited before it is "
                                         "sent again, seconds; longer than write_timeout_s "
                                         "(default: write_timeout_s + 60)")
    max_attempts: int = Field(default=8, description="Attempts per request before giving up")
    backoff_s: float = Field(default=0.25, description="Initial backoff between retries, seconds")
    backoff_max_s: float = Field(default=8.0, description="Longest backoff between retries")

    def get_client(self, logger=None) -> CoreClient:
        return CoreClient(
            self.base_url,
            self.phone,
            self.password,
            timeout_s=self.timeout_s,
            write_timeout_s=self.write_timeout_s,
            write_settle_s=self.write_settle_s,
            max_attempts=self.max_attempts,
            backoff_s=self.backoff_s,
            backoff_max_s=self.backoff_max_s,
            timezone=self.timezone,
            logger=logger,
        )
