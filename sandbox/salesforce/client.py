"""Point simple-salesforce at the sandbox (research §0 option A: rewrite https→http)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from simple_salesforce import Salesforce


class HttpsToHttp(HTTPAdapter):
    """Transport adapter that sends ``https://host:port/…`` requests as plain HTTP."""

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        """Rewrite the scheme, then send as usual."""
        if request.url and request.url.startswith("https://"):
            request.url = "http://" + request.url[len("https://"):]
        return super().send(request, **kwargs)


def session_for(url: str) -> requests.Session:
    """A ``requests.Session`` whose ``https://host:port`` requests go to ``http://host:port``."""
    parts = urlsplit(url)
    session = requests.Session()
    session.mount(f"https://{parts.netloc}", HttpsToHttp())
    return session


def fetch_token(url: str, client_id: str = "sandbox", client_secret: str = "sandbox") -> str:
    """Client-credentials access token from the sandbox's ``/services/oauth2/token``."""
    resp = requests.post(
        f"{url}/services/oauth2/token",
        data={"grant_type": "client_credentials", "client_id": client_id,
              "client_secret": client_secret},
        timeout=10,
    )
    resp.raise_for_status()
    return str(resp.json()["access_token"])


def simple_salesforce(url: str, token: str | None = None, version: str = "59.0",
                      client_id: str = "sandbox", client_secret: str = "sandbox") -> Salesforce:
    """A ``simple_salesforce.Salesforce`` talking to the sandbox at ``url`` (``http://…``)."""
    token = token or fetch_token(url, client_id, client_secret)
    return Salesforce(instance_url=url, session_id=token, session=session_for(url),
                      version=version)
