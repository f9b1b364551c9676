"""Which values of an order did not reach Salesforce as they are in Shopify, as field warnings.

The mapping cuts a value longer than its Salesforce field and leaves out what the org cannot
take (a field it lacks, an e-mail address that is not one, an address too long to cut). Every
path that writes an order turns those into :class:`~state.FieldWarning` rows, so
``shopsync warnings`` can list them per order instead of them passing in silence.
"""

from __future__ import annotations

from state import FieldWarning
from tasks.core.mapping import OrgSchema, SalesforceRecords, Truncation

NO_SUCH_FIELD = "the org has no such field"
NOT_AN_EMAIL = "not a valid e-mail address"
TOO_LONG_TO_CUT = "longer than the field; left out because a cut address is another address"


def field_warnings(
    order_id: str, order_name: str | None, records: SalesforceRecords, org: OrgSchema
) -> list[FieldWarning]:
    """Every value of this mapped order that was cut or left out, one warning each."""
    warnings = [_truncation(order_id, order_name, cut) for cut in records.truncations]
    for dropped in records.dropped_fields:
        sobject, _, name = dropped.partition(".")
        reason = NOT_AN_EMAIL if org.has_field(sobject, name) else NO_SUCH_FIELD
        warnings.append(FieldWarning(order_id, order_name, sobject, name, "dropped", reason=reason))
    return warnings


def _truncation(order_id: str, order_name: str | None, cut: Truncation) -> FieldWarning:
    return FieldWarning(
        order_id,
        order_name,
        cut.object,
        cut.field,
        "dropped" if cut.omitted else "truncated",
        original_length=cut.original_length,
        limit=cut.limit,
        reason=TOO_LONG_TO_CUT if cut.omitted else None,
    )
