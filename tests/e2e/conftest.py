"""The end-to-end tests use the integration fixtures (sandboxes, settings, Prefect harness)."""

from tests.integration.conftest import *  # noqa: F403
