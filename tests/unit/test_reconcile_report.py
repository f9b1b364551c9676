"""The pure reconcile report (issue 14): the window in shop dates with the timezone, one
``repaired`` row, a per-row outcome (would create / would update / repaired / failed with the
error), failed rows first, the Salesforce ids a repair wrote; and the progress callback the
reconcile core reports through."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from deployments.progress_view import PlainProgress, progress_display
from deployments.status_view import reconcile_line
from flows.reconcile_finish import Outcome
from flows.reconcile_finish import summary as run_summary
from flows.reconcile_list import Listing
from flows.reconcile_publish import Reported
from flows.reconcile_read import Comparison
from flows.reconcile_repair import Repaired
from flows.reconcile_run import Request, Started
from tasks.core.diff import DiffResult, confirm_orphans, diff
from tasks.core.diff_report import Failure, discrepancy_rows, failed_first
from tasks.core.reconcile_window import shop_window
from tasks.reporting import progress
from tasks.reporting.reconcile_report import (
    csv_link,
    markdown_report,
    table_description,
    table_rows,
    window_label,
)
from tests.unit.test_reconcile_diff import actual, expected, records, sf_row

NY = "America/New_York"


def a_diff() -> Any:
    """Order 1 in sync, 2 and 3 missing, 4 drifted, 5 duplicated; order 9's Opportunity orphaned."""
    result = diff(
        expected(records("1"), records("2"), records("3"), records("4"), records("5")),
        actual(
            sf_row("006A", "1"),
            sf_row("006D", "4", amount=99.0),
            sf_row("006E", "5"),
            sf_row("006F", "5"),
            sf_row("006Z", "9"),
        ),
    )
    return result, confirm_orphans(result.candidates, set())


def failure(order_id: str) -> Failure:
    return Failure(order_id, "opportunity", "FIELD_CUSTOM_VALIDATION_EXCEPTION", "No #3 today")


# -- the window -------------------------------------------------------------------------------


def test_a_backfill_window_is_the_shop_dates_asked_for_with_the_timezone() -> None:
    start, end = shop_window(date(2026, 11, 15), date(2026, 11, 30), NY)
    label = window_label(start, end, NY, (date(2026, 11, 15), date(2026, 11, 30)))
    assert label == "2026-11-15 … 2026-11-30 (America/New_York)"


def test_a_nightly_window_is_shown_in_the_shop_s_local_time() -> None:
    start = datetime(2026, 11, 30, 8, 30, tzinfo=UTC)
    end = datetime(2026, 12, 1, 8, 30, tzinfo=UTC)
    assert window_label(start, end, NY) == "2026-11-30 03:30 … 2026-12-01 03:30 (America/New_York)"


def test_the_run_summary_carries_the_window_label_and_the_dates() -> None:
    start, end = shop_window(date(2026, 11, 15), date(2026, 11, 30), NY)
    request = Request(
        "manual", start, end, True, timezone=NY, dates=(date(2026, 11, 15), end.date())
    )
    summary = run_summary(Started(request, run_id=1, timezone=NY), Outcome("running"))
    assert summary["window"].endswith("(America/New_York)")
    assert summary["start_date"] == "2026-11-15"
    assert summary["timezone"] == NY
    assert summary["window_start"] == "2026-11-15T05:00:00+00:00"  # UTC kept for scripts


# -- the markdown summary ---------------------------------------------------------------------


def summary(**overrides: Any) -> dict[str, Any]:
    start, end = shop_window(date(2026, 11, 15), date(2026, 11, 30), NY)
    request = Request(
        "manual", start, end, False, timezone=NY, dates=(date(2026, 11, 15), date(2026, 11, 30))
    )
    found = Comparison(
        DiffResult(pd.DataFrame(), pd.DataFrame()),  # the summary reads the counts only
        orphans=pd.DataFrame(),
        listing=Listing(15, "pages"),
        read_path="soql",
        customers_read={},
        counts={"in_sync": 10, "missing": 3, "drifted": 1, "duplicate": 1},
        drifted_records={},
    )
    repaired = Repaired(
        repaired=3,
        dead_lettered=1,
        plan={"accounts": 3, "contacts": 3, "opportunities": 4, "create": 3, "update": 1},
    )
    reported = Reported("/tmp/data/reports/reconcile-7.csv", 6)
    result = run_summary(
        Started(request, run_id=7, timezone=NY),
        Outcome("repaired_with_failures"),
        found,
        repaired,
        reported,
    )
    result.update(overrides)
    return result


def test_the_summary_has_exactly_one_repaired_row() -> None:
    text = markdown_report(summary())
    repaired = [line for line in text.splitlines() if line.startswith("| repaired")]
    assert repaired == ["| repaired | 3 |"]
    assert "| failed: dead-lettered | 1 |" in text
    assert "**Window:** 2026-11-15 … 2026-11-30 (America/New_York)" in text
    assert text.startswith("# Reconcile backfill — repaired_with_failures")


def test_a_dry_run_summary_says_what_would_be_written_and_that_nothing_was() -> None:
    text = markdown_report(summary(dry_run=True, repaired=0))
    assert "dry run, nothing written" in text
    assert "| would create / would update (dry run) | 3 / 1 |" in text
    assert [line for line in text.splitlines() if line.startswith("| repaired")] == [
        "| repaired | 0 (dry run: nothing written) |"
    ]


def test_the_summary_links_the_csv() -> None:
    text = markdown_report(summary())
    assert "[reconcile-7.csv](file:///tmp/data/reports/reconcile-7.csv)" in text
    assert "(6 rows)" in text
    assert csv_link("/tmp/x/a b.csv") == "file:///tmp/x/a%20b.csv"


def test_the_cli_line_shows_the_window_in_shop_dates() -> None:
    line = reconcile_line(summary())
    assert "manual 2026-11-15 … 2026-11-30 (America/New_York): repaired_with_failures" in line
    assert "{" not in line


# -- the discrepancy rows ---------------------------------------------------------------------


def test_a_dry_run_says_would_create_and_would_update() -> None:
    result, orphans = a_diff()
    table = discrepancy_rows(result, orphans, {}, dry_run=True)
    outcome = dict(zip(table["order_id"], table["outcome"], strict=True))
    assert outcome["2"] == outcome["3"] == "would create"
    assert outcome["4"] == "would update"
    assert outcome["5"].startswith("reported only")
    assert outcome["9"].startswith("reported only")
    assert table["error"].isna().all()
    assert table[["opportunity_id", "account_id", "contact_id"]].isna().all().all()


def test_a_real_run_shows_repaired_with_ids_and_failed_with_the_error_first() -> None:
    result, orphans = a_diff()
    written = {
        "2": {"Opportunity": "006N2", "Account": "001A", "Contact": "003C"},
        "4": {"Opportunity": "006D"},
    }
    table = discrepancy_rows(result, orphans, {"3": failure("3")}, written=written)
    assert table["order_id"].tolist()[0] == "3"  # failed rows first
    first = table.iloc[0]
    assert first["outcome"] == "failed"
    assert first["error"] == "opportunity: FIELD_CUSTOM_VALIDATION_EXCEPTION: No #3 today"
    rows = table.set_index("order_id")
    assert rows.loc["2", "outcome"] == "repaired"
    assert (rows.loc["2", "opportunity_id"], rows.loc["2", "account_id"]) == ("006N2", "001A")
    assert rows.loc["2", "contact_id"] == "003C"
    assert rows.loc["4", "outcome"] == "repaired"
    assert rows.loc["4", "opportunity_id"] == "006D"
    assert table["order_id"].tolist()[1:] == ["2", "4", "5", "9"]  # the rest keep their order


def test_orders_a_stopped_run_did_not_reach_say_so() -> None:
    result, orphans = a_diff()
    table = discrepancy_rows(result, orphans, {}, stopped=True)
    assert (
        table.set_index("order_id").loc["2", "outcome"].startswith("not written: the run stopped")
    )


def test_failed_first_keeps_the_order_of_the_rest() -> None:
    table = pd.DataFrame({"order_id": list("abcd"), "outcome": ["x", "failed", "y", "failed"]})
    assert failed_first(table)["order_id"].tolist() == ["b", "d", "a", "c"]


def test_the_table_artifact_rows_are_json_ready_and_capped() -> None:
    result, orphans = a_diff()
    table = discrepancy_rows(result, orphans, {"3": failure("3")})
    rows = table_rows(table, 2)
    assert len(rows) == 2
    assert rows[1]["error"] is None  # blanks as None, not NaN
    assert "the first 2 shown" in table_description(len(table), 2, "/x.csv")
    assert table_description(0, 0, "/x.csv").startswith("no discrepancies")


def test_the_csv_has_every_report_column(tmp_path: Path) -> None:
    result, orphans = a_diff()
    table = discrepancy_rows(result, orphans, {})
    table.to_csv(tmp_path / "r.csv", index=False)
    read = pd.read_csv(tmp_path / "r.csv", dtype=str)
    assert list(read.columns[:5]) == ["order_id", "order_name", "status", "outcome", "error"]


# -- progress ---------------------------------------------------------------------------------


def test_progress_reaches_the_installed_callback_and_a_broken_one_is_dropped() -> None:
    seen: list[tuple[str, int, int | None]] = []

    def broken(stage: str, done: int, total: int | None) -> None:
        raise RuntimeError("display gone")

    with (
        progress.reporting_to(lambda *a: seen.append(a)),
        progress.reporting_to(broken),
    ):
        progress.report("listing", 250)
        progress.report("diff", 3, 3)
    progress.report("repair", 1, 1)  # nobody listens any more
    assert seen == [("listing", 250, None), ("diff", 3, 3)]


def test_plain_progress_prints_a_line_when_a_stage_starts_and_one_when_it_is_done() -> None:
    lines: list[str] = []
    view = PlainProgress({"listing": "listing Shopify orders"}, lines.append)
    for done in (0, 250, 500):
        view("listing", done, None)
    view("listing", 500, 500)
    view("repair", 0, 2)
    view("repair", 2, 2)
    view("repair", 0, 3)  # a second run
    view("start", 1, 1)
    assert lines == [
        "listing Shopify orders …",
        "listing Shopify orders: 500 of 500 done",
        "repair …",
        "repair: 2 of 2 done",
        "repair …",
        "start …",
        "start: done",
    ]


def test_progress_display_off_a_terminal_prints_plain_lines_on_stderr(capsys: Any) -> None:
    with progress_display({"diff": "comparing"}, tty=False):
        progress.report("diff", 0, 4)
        progress.report("diff", 4, 4)
    out = capsys.readouterr()
    assert out.out == ""
    assert out.err.splitlines() == ["comparing …", "comparing: 4 of 4 done"]


def test_progress_display_on_a_terminal_draws_rich_bars() -> None:
    from rich.console import Console

    from deployments.progress_view import RichProgress

    console = Console(record=True, force_terminal=True, width=100)
    with (
        RichProgress({"repair": "repairing Salesforce"}, console) as bars,
        progress.reporting_to(bars),
    ):
        progress.report("repair", 3, 4)
    drawn = console.export_text()
    assert "repairing Salesforce" in drawn
    assert "3/4" in drawn


def test_orders_that_cannot_be_mapped_are_failed_rows_of_a_real_run() -> None:
    from tasks.core.errors import InvalidOrder
    from tasks.reporting.reconcile_report import invalid_rows

    bad = {"77": InvalidOrder("the order has no line items", code="INVALID_ORDER")}
    real = invalid_rows(bad, dry_run=False).iloc[0]
    assert (real["status"], real["outcome"]) == ("invalid", "failed")
    assert real["error"] == "map: INVALID_ORDER: the order has no line items"
    assert invalid_rows(bad, dry_run=True).iloc[0]["outcome"].startswith("would fail")
