"""The Prefect automations that tell an operator when shopsync needs them.

``setup_alerts`` creates (or updates, by name: it is idempotent) four automations, each sending to
one Prefect notification block the user configures (Slack incoming webhook, e-mail, Microsoft
Teams, a generic webhook…):

- ``shopsync: run failed``: a shopsync flow run ended Failed or Crashed (a drain that
  dead-lettered an order, a reconcile that could not repair everything, a held run, a crash).
- ``shopsync: dead letters added``: a run parked orders in the dead letters.
- ``shopsync: run held``: a run stopped early because Salesforce refused the login or the API
  budget is reserved; the work waits.
- ``shopsync: nightly reconcile missed``: no nightly reconcile completed within a day plus a
  grace period (a proactive trigger: it fires on the *absence* of the event).

The flows emit the dead-letter and held events (``flows.outcome``); Prefect emits the flow-run
state events itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID

from flows.outcome import DEAD_LETTERS_ADDED, RUN_HELD

FLOWS = ["sync-pending-orders", "reconcile", "replay-dead-letters", "sync-order"]
PREFIX = "shopsync: "
DEFAULT_BLOCK_NAME = "shopsync-alerts"
RUN_LINK = "{{ flow_run|ui_url }}"

FAILED_BODY = (
    "shopsync run {{ flow_run.name }} ({{ flow.name }}) ended {{ flow_run.state.name }}: "
    "{{ flow_run.state.message }}\n"
    "Open it: " + RUN_LINK + "\n"
    "Dead letters: the shopsync-dead-letters artifact; fix the cause, then run "
    "replay-dead-letters/manual."
)
DEAD_LETTER_BODY = (
    "shopsync run {{ event.resource['prefect.resource.name'] }} dead-lettered "
    "{{ event.payload.count }} order(s): {{ event.payload.message }}\n"
    "See the shopsync-dead-letters artifact for each order and what to do."
)
HELD_BODY = (
    "shopsync run {{ event.resource['prefect.resource.name'] }} was held: "
    "{{ event.payload.reason }}\nNothing is lost: the work stays pending. Fix the Salesforce "
    "login (shopsync doctor) or wait for the API budget; the next run continues."
)
MISSED_BODY = (
    "No nightly reconcile completed in the last {hours} hours. Check that `shopsync serve` "
    "(or the worker) is running and look at the reconcile/nightly runs in the Prefect UI."
)


@dataclass(frozen=True)
class AlertSpec:
    """One automation: its name, trigger and message."""

    name: str
    trigger: dict[str, Any]
    subject: str
    body: str


def alert_specs(nightly_deadline: timedelta) -> list[AlertSpec]:
    """The four automations, as plain data (their triggers in Prefect's EventTrigger fields)."""
    shopsync_flow = {"prefect.resource.role": "flow", "prefect.resource.name": FLOWS}
    hours = round(nightly_deadline.total_seconds() / 3600)
    return [
        AlertSpec(
            PREFIX + "run failed",
            {
                "expect": {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"},
                "match": {"prefect.resource.id": "prefect.flow-run.*"},
                "match_related": shopsync_flow,
                "posture": "Reactive",
                "threshold": 1,
                "within": timedelta(0),
            },
            "shopsync: {{ flow_run.name }} {{ flow_run.state.name }}",
            FAILED_BODY,
        ),
        AlertSpec(
            PREFIX + "dead letters added",
            {
                "expect": {DEAD_LETTERS_ADDED},
                "match": {"prefect.resource.id": "shopsync.run.*"},
                "posture": "Reactive",
                "threshold": 1,
                "within": timedelta(0),
            },
            "shopsync: {{ event.payload.count }} order(s) dead-lettered",
            DEAD_LETTER_BODY,
        ),
        AlertSpec(
            PREFIX + "run held",
            {
                "expect": {RUN_HELD},
                "match": {"prefect.resource.id": "shopsync.run.*"},
                "posture": "Reactive",
                "threshold": 1,
                "within": timedelta(0),
            },
            "shopsync: a run was held",
            HELD_BODY,
        ),
        AlertSpec(
            PREFIX + "nightly reconcile missed",
            {
                "expect": {"prefect.flow-run.Completed"},
                "match": {
                    "prefect.resource.id": "prefect.flow-run.*",
                    "prefect.resource.name": "nightly *",
                },
                "match_related": {
                    "prefect.resource.role": "flow",
                    "prefect.resource.name": "reconcile",
                },
                "posture": "Proactive",
                "threshold": 1,
                "within": nightly_deadline,
            },
            "shopsync: the nightly reconcile did not complete",
            MISSED_BODY.format(hours=hours),
        ),
    ]


def notification_block_id(block: str) -> UUID:
    """The id of a saved notification block, given as ``<block-type>/<name>``.

    For example ``slack-webhook/ops-alerts`` or ``custom-webhook/shopsync-alerts``.
    """
    from prefect.blocks.core import Block

    if "/" not in block:
        raise ValueError(
            f"name the notification block as <block-type>/<name> (e.g. slack-webhook/{block})"
        )
    try:
        loaded = Block.load(block)
    except ValueError as exc:
        raise ValueError(f"no Prefect notification block {block!r}: {exc}") from exc
    block_id = loaded._block_document_id  # type: ignore[union-attr]  # sync call: a Block
    if block_id is None:  # pragma: no cover - a loaded block always has its id
        raise ValueError(f"the block {block!r} has no id")
    return block_id


def save_webhook_block(url: str, *, slack: bool = False, name: str = DEFAULT_BLOCK_NAME) -> str:
    """Save a Slack incoming-webhook or generic JSON webhook block; return ``<type>/<name>``."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock, SlackWebhook
    from pydantic import SecretStr

    if slack:
        SlackWebhook(url=SecretStr(url)).save(name, overwrite=True)
        return f"slack-webhook/{name}"
    CustomWebhookNotificationBlock(  # type: ignore[call-arg]  # headers, cookies: defaults
        name=name,
        url=url,
        method="POST",
        json_data={"subject": "{{subject}}", "text": "{{body}}"},
    ).save(name, overwrite=True)
    return f"custom-webhook/{name}"


def setup_alerts(block: str, nightly_deadline: timedelta = timedelta(hours=26)) -> list[str]:
    """Create or update the automations to notify ``block``; returns their names.

    Running it again changes nothing but what changed (automations are matched by name).
    """
    from prefect.automations import Automation
    from prefect.client.orchestration import get_client
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import EventTrigger

    block_id = notification_block_id(block)
    names = []
    with get_client(sync_client=True) as client:
        for spec in alert_specs(nightly_deadline):
            automation = Automation(
                name=spec.name,
                description="Created by `shopsync alerts setup`; run it again to update.",
                trigger=EventTrigger(**spec.trigger),
                actions=[
                    SendNotification(
                        block_document_id=block_id, subject=spec.subject, body=spec.body
                    )
                ],
            )
            existing = client.read_automations_by_name(spec.name)
            if existing:
                automation.id = existing[0].id
                automation.update()
                for extra in existing[1:]:
                    client.delete_automation(extra.id)
            else:
                automation.create()
            names.append(spec.name)
    return names
