"""Fixtures: one Salesforce sandbox served for the whole session, reset before every test."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from simple_salesforce import Salesforce

from sandbox.salesforce import SalesforceSandbox
from sandbox.salesforce.client import simple_salesforce
from sandbox.server import BackgroundServer

VERSION = "59.0"


@pytest.fixture(scope="session")
def sandbox() -> SalesforceSandbox:
    """The sandbox object (``.store``, ``.stats``)."""
    return SalesforceSandbox()


@pytest.fixture(scope="session")
def server(sandbox: SalesforceSandbox) -> Iterator[BackgroundServer]:
    """The sandbox served on loopback."""
    with BackgroundServer(sandbox.app) as srv:
        yield srv


@pytest.fixture(scope="session")
def url(server: BackgroundServer) -> str:
    """``http://127.0.0.1:PORT``."""
    return server.url


@pytest.fixture(autouse=True)
def _reset(url: str) -> None:
    httpx.post(f"{url}/__sandbox/reset").raise_for_status()


@pytest.fixture
def token(url: str) -> str:
    """A fresh client-credentials token."""
    resp = httpx.post(f"{url}/services/oauth2/token",
                      data={"grant_type": "client_credentials", "client_id": "x",
                            "client_secret": "y"})
    resp.raise_for_status()
    return str(resp.json()["access_token"])


@pytest.fixture
def sf(url: str, token: str) -> Salesforce:
    """simple-salesforce pointed at the sandbox (research §0 option A)."""
    return simple_salesforce(url, token=token, version=VERSION)


@pytest.fixture
def http(url: str, token: str) -> Iterator[httpx.Client]:
    """httpx client with base URL ``…/services/data/v59.0`` and the bearer token."""
    with httpx.Client(base_url=f"{url}/services/data/v{VERSION}",
                      headers={"Authorization": f"Bearer {token}"}, timeout=30) as client:
        yield client


class Control:
    """Tiny wrapper over ``/__sandbox/``."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/__sandbox"

    def post(self, path: str, body: Any = None) -> Any:
        resp = httpx.post(f"{self.url}/{path}", json=body or {}, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def get(self, path: str, **params: Any) -> Any:
        resp = httpx.get(f"{self.url}/{path}", params=params, timeout=30)
        resp.raise_for_status()
        return resp.json()

    def delete(self, path: str) -> Any:
        resp = httpx.delete(f"{self.url}/{path}", timeout=30)
        resp.raise_for_status()
        return resp.json()

    def calls(self) -> int:
        return int(self.get("stats")["api_calls"]["total"])


@pytest.fixture
def control(url: str) -> Control:
    """The control API."""
    return Control(url)


