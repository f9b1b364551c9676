"""The drain's lease and concurrency limit are settings (issue 17): defaults, and the webhook
deployment built with the configured limit."""

from __future__ import annotations

import pytest

from deployments.serve import build_deployments
from tasks.settings import Settings


def test_defaults_are_one_drain_at_a_time_and_a_thirty_second_lease() -> None:
    settings = Settings(_env_file=None)
    assert settings.drain_concurrency == 1
    assert settings.inbox_lease_seconds == 30


def test_the_webhook_deployment_takes_its_concurrency_limit_from_the_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHOPSYNC_DRAIN_CONCURRENCY", "3")
    settings = Settings(_env_file=None)
    [drain] = [d for d in build_deployments(settings, "UTC") if d.name == "webhook"]
    assert drain.concurrency_limit == 3
    assert drain.concurrency_options.collision_strategy == "CANCEL_NEW"


@pytest.mark.parametrize("value", ["0", "-1", "x"])
def test_a_drain_concurrency_below_one_is_refused(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SHOPSYNC_DRAIN_CONCURRENCY", value)
    with pytest.raises(ValueError, match=r"drain_concurrency|SHOPSYNC_DRAIN_CONCURRENCY"):
        Settings(_env_file=None)
