"""One error tree, split by what the orchestrator should do with a failure.

```
SyncError
├── RetryableError            transient: back off and try again (5xx, lock rows, timeouts)
│   └── RateLimited           back off longer, honour retry_after (REQUEST_LIMIT_EXCEEDED, 429);
│                             stop_run: stop the whole run at once and fail it
├── AuthError                 credentials rejected after one re-authentication: stop the batch
├── BudgetExhausted           our own API governor: stop writing, leave work pending
└── PermanentError            will fail the same way again: dead-letter with the reason
    ├── ConfigError           the org or shop is set up wrongly (missing field, scope)
    └── InvalidOrder          the order itself cannot be mapped or is rejected by validation
```

Each external system classifies its failures into this tree in exactly one place
(``tasks.salesforce.errors`` and ``tasks.shopify.client``); what a flow then does with a failure
(retry at T, hold, dead-letter) is decided in one place too: ``tasks.core.disposition.dispose``.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class SyncError(Exception):
    """Base of every failure the product raises on purpose."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        fields: list[str] | None = None,
        stage: str | None = None,
        errors: list[RecordError] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code
        self.fields = fields or []
        self.stage = stage  # which record or step failed: account, contact, opportunity, fetch…
        # Every error the remote system reported (Salesforce sends a list); the first real one
        # is also ``code``/``message``/``fields``.
        self.errors: list[RecordError] = list(errors or [])

    def __str__(self) -> str:
        prefix = f"{self.code}: " if self.code else ""
        return f"{prefix}{self.message}"


class RetryableError(SyncError):
    """A transient failure: the same request may succeed later."""


class RateLimited(RetryableError):
    """The remote system asked us to slow down.

    ``stop_run``: the limit is the whole org's (Salesforce ``REQUEST_LIMIT_EXCEEDED``), so the
    run stops at once instead of retrying order by order, and fails.
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        stop_run: bool = False,
    ):
        super().__init__(message, code=code)
        self.retry_after = retry_after
        self.stop_run = stop_run


class AuthError(SyncError):
    """Credentials were rejected even after re-authenticating."""


class BudgetExhausted(SyncError):
    """The configured share of the Salesforce daily API allocation is used up."""

    def __init__(self, used: int, limit: int, reserve_at: int):
        super().__init__(
            f"Salesforce API usage {used}/{limit} reached the reserve threshold {reserve_at}; "
            "writes are paused and the remaining work stays pending",
            code="API_BUDGET_RESERVED",
        )
        self.used = used
        self.limit = limit


class PermanentError(SyncError):
    """Retrying cannot help; the item goes to the dead letters with this reason."""


class StaleReference(PermanentError):
    """Salesforce says a record we referred to by Id was deleted (or merged away).

    The caller should forget the cached id, look the record up again and retry once; left
    unhandled it is permanent like any other rejection.
    """


class ConfigError(PermanentError):
    """The Salesforce org or the Shopify app is configured in a way the sync cannot work with."""


class InvalidOrder(PermanentError):
    """The order cannot be mapped, or Salesforce rejected its records by validation."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = "INVALID_ORDER",
        fields: list[str] | None = None,
        stage: str | None = None,
        errors: list[RecordError] | None = None,
    ):
        super().__init__(
            message, code=code or "INVALID_ORDER", fields=fields, stage=stage, errors=errors
        )


@dataclass(frozen=True, slots=True)
class RecordError:
    """One error Salesforce reported for one record (``errorCode`` or ``statusCode``).

    ``stage`` names the record it belongs to when one request wrote several (a composite).
    """

    code: str
    message: str
    fields: list[str] = field(default_factory=list)
    stage: str | None = None

    def as_dict(self) -> dict[str, object]:
        """JSON form, as dead letters keep it."""
        out: dict[str, object] = {"code": self.code, "message": self.message, "fields": self.fields}
        if self.stage:
            out["stage"] = self.stage
        return out
