"""The topic table (tasks/core/topics.py) is the one list: README, receiver, planner and doctor
agree."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks.checks.doctor import subscription_checks
from tasks.core.topics import (
    DELETE_TOPIC,
    HANDLED_TOPICS,
    ORDER_TOPICS,
    REFUND_TOPIC,
    TOPICS,
    Handling,
    registered_topics,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_topic_rows() -> list[tuple[str, ...]]:
    """The rows of README's "Webhook topics" table, cells stripped of backticks."""
    section = README.read_text(encoding="utf-8").split("### Webhook topics", 1)[1]
    table = section.split("\n|", 1)[1].split("\n\n", 1)[0]
    rows = [line for line in ("|" + table).splitlines() if line.startswith("| `")]
    return [tuple(c.strip().strip("`") for c in row.strip("|").split("|")) for row in rows]


def test_readme_lists_exactly_the_topic_table() -> None:
    expected = [(t.name, t.handling.value, t.subscribe.value, t.missing) for t in TOPICS]
    assert readme_topic_rows() == expected


def test_the_production_steps_point_at_the_table() -> None:
    steps = README.read_text(encoding="utf-8").split("## Going to production", 1)[1]
    assert "[Webhook topics](#webhook-topics)" in steps.split("###", 1)[0]
    # No second, hand-written list of topics in the steps.
    assert not re.search(r"`orders/create`", steps.split("###", 1)[0])


def test_derived_lists_partition_the_table() -> None:
    assert ORDER_TOPICS | {REFUND_TOPIC, DELETE_TOPIC} == HANDLED_TOPICS
    assert REFUND_TOPIC == "refunds/create"
    assert DELETE_TOPIC == "orders/delete"
    assert len({t.name for t in TOPICS}) == len(TOPICS)
    assert {t.handling for t in TOPICS} == set(Handling)


@pytest.mark.parametrize(
    ("delete_action", "expected"),
    [
        (
            "ignore",
            [
                "orders/create",
                "orders/updated",
                "orders/paid",
                "orders/cancelled",
                "refunds/create",
            ],
        ),
        (
            "flag",
            [
                "orders/create",
                "orders/updated",
                "orders/paid",
                "orders/cancelled",
                "refunds/create",
                "orders/delete",
            ],
        ),
    ],
)
def test_registered_topics_follow_the_delete_action(delete_action, expected) -> None:
    assert [t.name for t in registered_topics(delete_action)] == expected


def test_doctor_checks_each_registered_topic_with_the_table_severity() -> None:
    nodes = [{"topic": "ORDERS_CREATE"}]
    checks = subscription_checks(nodes, registered_topics("flag"))
    verdicts = {c.name.removeprefix("Webhook "): (c.ok, c.severity) for c in checks}
    assert verdicts == {
        "orders/create": (True, "error"),
        "orders/updated": (False, "error"),
        "orders/paid": (False, "error"),
        "orders/cancelled": (False, "error"),
        "refunds/create": (False, "warning"),
        "orders/delete": (False, "warning"),
    }
