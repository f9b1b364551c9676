"""What one drain run did: the tally the drain keeps while it settles orders, from which its
final state (flows/outcome.py) and its report in the Prefect UI are made."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from flows.drain_linger import LINGER_POLL_SECONDS, DrainCpu
from flows.outcome import RunOutcome, judge
from state.store import FieldWarning
from tasks.core.errors import SyncError
from tasks.reporting.artifacts import field_warnings_markdown
from tasks.reporting.drain_report import OrderNote, drain_markdown


@dataclass
class DrainReport:
    """What one drain run did."""

    outcomes: Counter[str] = field(default_factory=Counter)
    stopped_because: str | None = None
    # A refused login or Salesforce's request limit: the rest of the run's orders are held at
    # once (and, being held, the run ends Failed: flows/outcome.py).
    halted_by: SyncError | None = None
    errors: Counter[str] = field(default_factory=Counter)  # dead letters by error code
    letters_resolved: int = 0
    dead_lettered: list[OrderNote] = field(default_factory=list)
    run_id: str | None = None
    # (order, object, field, kind) → the warning: an order synced twice in a run counts once.
    warned: dict[tuple[str, str, str, str], FieldWarning] = field(default_factory=dict)
    # What happened to each order, in the order settled: the artifact answers "what about #1301".
    orders: list[OrderNote] = field(default_factory=list)
    batch_calls: int = 0  # Salesforce calls the Collections path made
    lingered_s: float = 0.0  # time spent waiting for new work with the inbox empty
    cpu: DrainCpu = field(default_factory=DrainCpu)

    def order_note(self, label: str, action: str, why: str = "") -> None:
        """Note one order's outcome for the run's artifact."""
        self.orders.append(OrderNote(label, f"{action}: {why}" if why else action))

    @property
    def field_warnings(self) -> list[FieldWarning]:
        """The values this run cut or left out, one per order and field."""
        return list(self.warned.values())

    def note(self, warnings: list[FieldWarning]) -> None:
        """Count warnings of a synced order."""
        for w in warnings:
            self.warned[(w.order_id, w.object, w.field, w.kind)] = w

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcomes": dict(self.outcomes),
            "stopped_because": self.stopped_because,
            "field_warnings": len(self.warned),
            "orders_with_field_warnings": len({key[0] for key in self.warned}),
            "collections_calls": self.batch_calls,
            "lingered_s": round(self.lingered_s, 1),
            **self.cpu.as_dict(),
        }

    def outcome(self) -> RunOutcome:
        """The counts the run's final state is judged by."""
        return RunOutcome(
            kind="drain",
            total=sum(self.outcomes.values()),
            done={k: v for k, v in self.outcomes.items() if k not in {"dead_letter", "held"}},
            failed=dict(self.errors),
            held=self.stopped_because,
            dead_lettered=self.outcomes["dead_letter"],
        )

    def markdown(self) -> str:
        """The run's report for the Prefect UI."""
        report = drain_markdown(
            judge(self.outcome()).message,
            dict(self.outcomes),
            self.stopped_because,
            self.dead_lettered,
            self.orders,
        )
        if self.lingered_s >= LINGER_POLL_SECONDS:
            report += (
                f"\n\nWaited {self.lingered_s:.0f} s in all for new work with the inbox empty "
                "(the drain lingers after its last batch, so the next order is synced without "
                "starting a new run)."
            )
        if not self.warned:
            return report
        return f"{report}\n\n{field_warnings_markdown(self.field_warnings)}"
