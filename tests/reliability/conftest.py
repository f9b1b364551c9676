"""The reliability tests use the integration fixtures (sandboxes, settings, Prefect harness)."""

from tests.integration.conftest import *  # noqa: F403
