"""deployments/prefect.yaml is generated from deployments/serve.py and cannot drift from it."""

from __future__ import annotations

import yaml
from prefect.events import DeploymentTriggerTypes
from pydantic import TypeAdapter

from deployments.prefect_yaml import TARGET, main, render
from deployments.serve import build_deployments
from tasks.settings import Settings


def test_the_committed_prefect_yaml_is_the_generated_one() -> None:
    assert TARGET.read_text(encoding="utf-8") == render(), "run `make prefect-yaml`"
    assert main(["--check"]) == 0


def test_prefect_yaml_holds_every_deployment_serve_registers() -> None:
    document = yaml.safe_load(TARGET.read_text(encoding="utf-8"))
    served = build_deployments(Settings.model_construct(), "America/New_York")
    entries = document["deployments"]
    assert [(e["entrypoint"].rsplit(":", 1)[1], e["name"]) for e in entries] == [
        ("nightly", "nightly"),
        ("backfill", "backfill"),
        ("sync_order", "manual"),
        ("sync_pending_orders", "webhook"),
        ("replay_dead_letters", "manual"),
    ]
    for entry, deployment in zip(entries, served, strict=True):
        assert entry["name"] == deployment.name
        assert entry["description"] == deployment.description
        assert entry["tags"] == deployment.tags
        assert entry.get("parameters", {}) == deployment.parameters
        assert len(entry.get("schedules", [])) == len(deployment.schedules or [])
        assert entry["work_pool"]["name"] == "shopsync"
    nightly, _, _, drain, _ = entries
    assert nightly["schedules"] == [
        {"cron": "30 3 * * *", "timezone": "America/New_York", "slug": "nightly"}
    ]
    assert nightly["concurrency_limit"] == 1
    assert drain["schedules"] == [{"interval": 3600, "slug": "safety-net"}]
    assert drain["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}
    # Prefect reads the trigger back as the one serve registers.
    [trigger] = [TypeAdapter(DeploymentTriggerTypes).validate_python(t) for t in drain["triggers"]]
    [served_trigger] = served[3].triggers
    assert trigger.model_dump(exclude={"id"}) == served_trigger.model_dump(exclude={"id"})


def test_a_copy_for_another_timezone(tmp_path) -> None:
    copy = tmp_path / "prefect.yaml"
    assert main(["--timezone", "Europe/Paris", "--output", str(copy)]) == 0
    text = copy.read_text(encoding="utf-8")
    assert "timezone: Europe/Paris" in text
    assert text != TARGET.read_text(encoding="utf-8")
    assert main(["--check", "--output", str(copy)]) == 1  # not the committed default
