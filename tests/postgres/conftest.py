"""The PostgreSQL tier's end-to-end tests use the integration fixtures (sandboxes, settings)."""

from tests.integration.conftest import *  # noqa: F403
