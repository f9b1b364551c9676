"""The Salesforce adapter's HTTP plumbing: requests sessions with timeouts, and the API usage
every REST response reports."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tasks.salesforce.port import ApiUsage

_API_USAGE = re.compile(r"(?:^|[;,\s])api-usage=(\d+)/(\d+)")


class _TimeoutAdapter(HTTPAdapter):
    """Give every request a timeout; simple-salesforce sets none."""

    def __init__(self, timeout: float):
        # A pooled keep-alive connection the server just closed resets an idempotent GET (seen
        # with the Bulk 2.0 poll after its 5 s sleep): re-send GETs, never writes.
        super().__init__(max_retries=Retry(total=2, status=0, allowed_methods={"GET", "HEAD"}))
        self.timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.timeout
        return super().send(request, **kwargs)


class _PlainHttpAdapter(_TimeoutAdapter):
    """simple-salesforce hard-codes https:// (research §0): speak plain HTTP to a local sandbox."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if request.url and request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://") :]
        return super().send(request, **kwargs)


def build_session(timeout: float, instance_url: str | None = None) -> requests.Session:
    """A requests session with timeouts; a plain-HTTP instance gets the https→http adapter."""
    session = requests.Session()
    session.trust_env = False  # no proxy or CA bundle from the environment on our API calls
    session.mount("https://", _TimeoutAdapter(timeout))
    session.mount("http://", _TimeoutAdapter(timeout))
    if instance_url and instance_url.startswith("http://"):
        parsed = urlparse(instance_url)
        session.mount(f"https://{parsed.netloc}", _PlainHttpAdapter(timeout))
    return session


def parse_limit_info(header: str | None) -> ApiUsage | None:
    """``Sforce-Limit-Info: api-usage=18/5000; api-bursts=1/750`` → ``ApiUsage(18, 5000)``."""
    match = _API_USAGE.search(header or "")
    return ApiUsage(used=int(match[1]), limit=int(match[2])) if match else None


def usage_from_limits(limits: dict[str, Any]) -> ApiUsage | None:
    """``DailyApiRequests`` of a ``/limits`` answer as usage (None when it is not there)."""
    daily = (limits or {}).get("DailyApiRequests") or {}
    if isinstance(daily.get("Max"), int) and isinstance(daily.get("Remaining"), int):
        return ApiUsage(used=daily["Max"] - daily["Remaining"], limit=daily["Max"])
    return None
