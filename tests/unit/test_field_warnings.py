"""Pure parts of the field warnings: from a mapped order to warnings, and the artifact table."""

from __future__ import annotations

from state import FieldWarning
from tasks.core.mapping import OrgSchema, SalesforceRecords, Truncation
from tasks.reporting.artifacts import field_warnings_markdown
from tasks.reporting.field_warnings import (
    NO_SUCH_FIELD,
    NOT_AN_EMAIL,
    TOO_LONG_TO_CUT,
    field_warnings,
)


def records(truncations: list[Truncation], dropped: list[str]) -> SalesforceRecords:
    return SalesforceRecords(
        account={},
        contact={},
        opportunity={},
        account_key="shop_cust_1",
        contact_key="shop_cust_1",
        order_key="1001",
        truncations=truncations,
        contact_lookup_email=None,
        dropped_fields=dropped,
    )


def test_every_cut_and_every_left_out_value_becomes_one_warning_with_its_reason() -> None:
    org = OrgSchema(fields={"Contact": frozenset({"Email", "LastName"})})
    mapped = records(
        [
            Truncation("Contact", "LastName", 120, 80),
            Truncation("Contact", "Email", 90, 80, omitted=True),
        ],
        ["Contact.Email", "Contact.Department"],
    )
    found = field_warnings("1001", "#1001", mapped, org)
    assert found == [
        FieldWarning("1001", "#1001", "Contact", "LastName", "truncated", 120, 80),
        FieldWarning("1001", "#1001", "Contact", "Email", "dropped", 90, 80, TOO_LONG_TO_CUT),
        FieldWarning("1001", "#1001", "Contact", "Email", "dropped", reason=NOT_AN_EMAIL),
        FieldWarning("1001", "#1001", "Contact", "Department", "dropped", reason=NO_SUCH_FIELD),
    ]


def test_a_clean_order_has_no_warnings() -> None:
    assert field_warnings("1001", None, records([], []), OrgSchema()) == []


def test_the_artifact_table_lists_each_warning_and_escapes_merchant_text() -> None:
    warnings = [
        FieldWarning("1001", "#1|001", "Contact", "LastName", "truncated", 120, 80),
        FieldWarning("1002", None, "Contact", "Email", "dropped", reason=NOT_AN_EMAIL),
    ]
    table = field_warnings_markdown(warnings)
    assert table.splitlines()[0] == "# 2 value(s) cut or left out, in 2 order(s)"
    assert "| #1\\|001 (1001) | Contact | LastName | truncated | 120 / 80 |  |" in table
    assert f"| 1002 | Contact | Email | dropped |  | {NOT_AN_EMAIL} |" in table
    capped = field_warnings_markdown(warnings, limit=1)
    assert "1002" not in capped.split("…")[0]
    assert "and 1 more" in capped
