"""Record-level behaviour: field validation, create / update / upsert / delete (research §1, §5)."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from . import duplicates
from .duplicates import DuplicateRule
from .errors import ErrorItem, SfError, not_found
from .ids import to18
from .schema import FieldDef, ObjectDef, OrgProfile
from .store import Record, Store

_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TEXT_TYPES = {"string", "textarea", "phone", "url", "email", "picklist"}
_NUMBER_TYPES = {"currency", "double", "int", "percent"}
BULK_NULL = "#N/A"
# What deleting a parent deletes with it, as (child object, its lookup to the parent): "When you
# delete an account it's moved to the Recycle Bin along with … Contacts, Opportunities …"
# (research/salesforce.md §8).
CASCADE_DELETES: dict[str, tuple[tuple[str, str], ...]] = {
    "Account": (("Contact", "AccountId"), ("Opportunity", "AccountId")),
}


class MultipleMatches(Exception):
    """An external id matched several records (HTTP 300)."""

    def __init__(self, obj: str, ids: list[str]) -> None:
        super().__init__(f"{obj}: {len(ids)} matches")
        self.obj = obj
        self.ids = ids


@dataclass
class ValidationRule:
    """An injected validation rule: fails records whose ``field`` matches the predicate."""

    id: str
    object: str
    field: str
    message: str
    equals: Any = None
    contains: str | None = None
    regex: str | None = None
    is_null: bool | None = None
    error_field: str | None = None

    def fails(self, rec: Record) -> bool:
        """True when ``rec`` violates the rule."""
        value = rec.get(self.field)
        if self.is_null is not None:
            return (value is None) == self.is_null
        if self.equals is not None:
            return value is not None and str(value) == str(self.equals)
        if self.contains is not None:
            return value is not None and self.contains in str(value)
        if self.regex is not None:
            return value is not None and re.search(self.regex, str(value)) is not None
        return False

    def to_json(self) -> dict[str, Any]:
        """JSON form for the control API."""
        return {k: v for k, v in self.__dict__.items() if v is not None}


_STAMP: list[Any] = [0, ""]


def now_iso() -> str:
    """Current time as Salesforce prints datetimes (``2024-01-31T12:00:00.000+0000``).

    The string is shared within one second, so 100k seeded records don't hold 100k copies.
    """
    now = dt.datetime.now(dt.UTC)
    second = int(now.timestamp())
    if _STAMP[0] != second:
        _STAMP[0], _STAMP[1] = second, now.strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    return str(_STAMP[1])


class Engine:
    """Validates and applies writes to a ``Store`` according to an ``OrgProfile``."""

    def __init__(self, store: Store, org: OrgProfile) -> None:
        self.store = store
        self.org = org
        self.rules: list[ValidationRule] = []
        self.duplicate_rules: list[DuplicateRule] = []
        self.record_faults: Any = None  # callable(obj, body) -> None, set by the app
        self.race_check: Any = None  # callable(obj, value) -> bool, set by the app

    # -- schema helpers ----------------------------------------------------------------------
    def odef(self, obj: str) -> ObjectDef:
        """The object definition; 404 NOT_FOUND for unknown sObject types."""
        for name, odef in self.store.schema.items():
            if name.lower() == obj.lower():
                return odef
        raise SfError("NOT_FOUND", "The requested resource does not exist", status=404)

    def key_field(self, odef: ObjectDef, name: str) -> FieldDef:
        """The field usable as an upsert key, else 404 as REST reports it (research §1)."""
        fdef = odef.field(name)
        if fdef is None or not (fdef.external_id or fdef.id_lookup):
            raise not_found(
                f"Provided external ID field does not exist or is not accessible: {name}"
            )
        return fdef

    # -- public operations ---------------------------------------------------------------------
    def create(self, obj: str, body: dict[str, Any], csv: bool = False) -> str:
        """Validate and insert; returns the new 18-character id."""
        odef = self.odef(obj)
        values = self._prepare(odef, body, None, csv)
        rec = self._new_record(odef, values)
        self._finish(odef, rec, None)
        return self.store.insert(odef.name, rec)

    def update(self, obj: str, rid: str, body: dict[str, Any], csv: bool = False) -> None:
        """Validate and update the record ``rid``."""
        odef = self.odef(obj)
        existing = self._existing(odef, rid)
        values = self._prepare(odef, body, existing, csv)
        merged = {**existing, **values}
        self._finish(odef, merged, existing["Id"])
        values.update({k: merged[k] for k in ("Name", "IsClosed", "IsWon") if k in merged})
        values["LastModifiedDate"] = values["SystemModstamp"] = now_iso()
        self.store.update(odef.name, existing["Id"], values)

    def upsert(
        self,
        obj: str,
        field: str,
        value: Any,
        body: dict[str, Any],
        csv: bool = False,
        update_only: bool = False,
    ) -> tuple[str, bool]:
        """Upsert by external id: returns ``(id, created)``; raises ``MultipleMatches``."""
        odef = self.odef(obj)
        fdef = self.key_field(odef, field)
        self._reject_key_in_body(odef, fdef, body)
        matches = self._match(odef, fdef, value)
        if len(matches) > 1:
            raise MultipleMatches(odef.name, matches)
        if matches:
            self.update(odef.name, matches[0], body, csv)
            return matches[0], False
        if update_only:
            raise not_found()
        if fdef.name == "Id":
            return self.create(odef.name, body, csv), True
        if self.race_check is not None and self.race_check(odef.name, str(value)):
            self._lose_race(odef, fdef, value, body, csv)
        return self.create(odef.name, {**body, fdef.name: value}, csv), True

    def _lose_race(
        self, odef: ObjectDef, fdef: FieldDef, value: Any, body: dict[str, Any], csv: bool
    ) -> None:
        """Emulate a concurrent creator (research §1 race): it inserts the key first, outside
        our transaction, and our insert fails with DUPLICATE_VALUE (or creates a duplicate when
        the field isn't unique)."""
        with self.store.untracked():
            winner = self.create(odef.name, {**body, fdef.name: value}, csv)
        if fdef.unique:
            raise SfError(
                "DUPLICATE_VALUE",
                f"duplicate value found: {fdef.name} duplicates value on record with id: {winner}",
                [],
            )

    def delete(self, obj: str, rid: str) -> None:
        """Delete (to the recycle bin), with the children Salesforce deletes along with it: an
        Account takes its Contacts and Opportunities (research/salesforce.md §8)."""
        odef = self.odef(obj)
        existing = self._existing(odef, rid)
        for child_obj, lookup in CASCADE_DELETES.get(odef.name, ()):
            children = self.store.records.get(child_obj, {}).values()
            for child in [rec for rec in children if rec.get(lookup) == existing["Id"]]:
                self.store.delete(child_obj, child["Id"])
        self.store.delete(odef.name, existing["Id"])

    def merge(self, obj: str, survivor: str, losers: list[str]) -> dict[str, int]:
        """What a user's merge leaves behind: the survivor keeps its own field values (so it
        has an external id only if it had one), every live record that pointed at a loser now
        points at the survivor, and each loser is deleted (ENTITY_IS_DELETED when referenced
        by Id afterwards). Not an API route: a control-API helper for tests.
        """
        odef = self.odef(obj)
        keep = self._existing(odef, survivor)["Id"]
        gone = [self._existing(odef, rid)["Id"] for rid in losers]
        if keep in gone:
            raise ValueError("the survivor cannot also be a loser")
        moved = 0
        for child_obj, child_def in self.store.schema.items():
            refs = [f.name for f in child_def.fields.values() if odef.name in f.reference_to]
            for rec in list(self.store.records.get(child_obj, {}).values()):
                changes = {name: keep for name in refs if rec.get(name) in gone}
                if changes:
                    self.store.update(child_obj, rec["Id"], changes)
                    moved += 1
        for rid in gone:
            self.store.delete(odef.name, rid)
            if "MasterRecordId" in odef.fields:
                # "If this record was deleted as the result of a merge, this field contains the
                # ID of the record that remains" (Object Reference, Account/Contact fields).
                self.store.deleted[odef.name][rid]["MasterRecordId"] = keep
        return {"reparented": moved, "deleted": len(gone)}

    def get(self, obj: str, rid: str) -> tuple[ObjectDef, Record]:
        """The live record, else 404."""
        odef = self.odef(obj)
        return odef, self._existing(odef, rid)

    def get_by_key(self, obj: str, field: str, value: Any) -> tuple[ObjectDef, Record]:
        """Get by external id: 404 for none, ``MultipleMatches`` (300) for several."""
        odef = self.odef(obj)
        fdef = self.key_field(odef, field)
        matches = self._match(odef, fdef, value)
        if len(matches) > 1:
            raise MultipleMatches(odef.name, matches)
        if not matches:
            raise not_found()
        return odef, self.store.records[odef.name][matches[0]]

    # -- internals --------------------------------------------------------------------------
    def _existing(self, odef: ObjectDef, rid: str) -> Record:
        try:
            rid18 = to18(rid)
        except ValueError:
            raise not_found() from None
        rec = self.store.get(odef.name, rid18)
        if rec is None:
            if rid18 in self.store.deleted.get(odef.name, {}):
                raise SfError("ENTITY_IS_DELETED", "entity is deleted", status=404)
            raise not_found()
        return rec

    def _match(self, odef: ObjectDef, fdef: FieldDef, value: Any) -> list[str]:
        if fdef.name == "Id":
            try:
                rid = to18(str(value))
            except ValueError:
                return []
            return [rid] if self.store.get(odef.name, rid) else []
        if value is None or value == "":
            return []
        return self.store.find(odef.name, fdef.name, value, fdef.case_sensitive)

    def _reject_key_in_body(self, odef: ObjectDef, fdef: FieldDef, body: dict[str, Any]) -> None:
        for key in body:
            if key.lower() == "id":
                raise SfError(
                    "INVALID_FIELD",
                    "The Id field should not be specified in the sobject data.",
                    ["Id"],
                )
            if key.lower() == fdef.name.lower():
                raise SfError(
                    "INVALID_FIELD",
                    f"The external ID field {fdef.name} should not be specified in the "
                    "sobject data when it is used as the upsert key.",
                    [fdef.name],
                )

    def _new_record(self, odef: ObjectDef, values: Record) -> Record:
        stamp = now_iso()
        rec: Record = {
            "Id": self.store.ids.new(odef.prefix),
            "IsDeleted": False,
            "CreatedDate": stamp,
            "LastModifiedDate": stamp,
            "SystemModstamp": stamp,
        }
        if "OwnerId" in odef.fields:
            rec["OwnerId"] = self.org.user_id
        if "CurrencyIsoCode" in odef.fields:
            rec["CurrencyIsoCode"] = self.org.default_currency
        if odef.name == "RecordType":
            rec.update({"IsPersonType": False, "IsActive": True})
        rec.update({k: v for k, v in values.items() if v is not None})
        return rec

    def _prepare(
        self, odef: ObjectDef, body: dict[str, Any], existing: Record | None, csv: bool
    ) -> Record:
        if self.record_faults is not None:
            self.record_faults(odef.name, body)
        values: Record = {}
        errors: list[ErrorItem] = []
        for key, raw in body.items():
            if key == "attributes" or (existing is not None and key.lower() == "id"):
                continue
            if isinstance(raw, dict):
                fdef, parent_id = self._resolve_parent(odef, key, raw)
                values[fdef.name] = parent_id
                continue
            fdef = odef.field(key)
            if fdef is None:
                raise SfError(
                    "INVALID_FIELD", f"No such column '{key}' on sobject of type {odef.name}", []
                )
            err = self._check_access(odef, fdef, existing)
            if err:
                errors.append(err)
                continue
            try:
                values[fdef.name] = self._coerce(fdef, raw, csv)
            except SfError as exc:
                errors.extend(exc.items)
        if errors:
            raise SfError.of(errors)
        self._check_references(odef, values)
        return values

    def _check_access(
        self, odef: ObjectDef, fdef: FieldDef, existing: Record | None
    ) -> ErrorItem | None:
        if existing is None and not fdef.createable:
            what = "create"
        elif existing is not None and not fdef.updateable:
            what = "update"
        else:
            return None
        return ErrorItem(
            "INVALID_FIELD_FOR_INSERT_UPDATE",
            f"Unable to {what} fields: {fdef.name}. Please check the security settings of this "
            "field and verify that it is read/write for your profile or permission set.",
            [fdef.name],
        )

    def _resolve_parent(
        self, odef: ObjectDef, rel: str, raw: dict[str, Any]
    ) -> tuple[FieldDef, str]:
        fdef = odef.relationship(rel)
        if fdef is None:
            raise SfError(
                "INVALID_FIELD", f"No such column '{rel}' on sobject of type {odef.name}", []
            )
        keys = [k for k in raw if k != "attributes"]
        parent = self.odef(fdef.reference_to[0])
        if len(keys) != 1:
            raise SfError(
                "INVALID_FIELD",
                f"The relationship {rel} must specify exactly one external ID field of "
                f"{parent.name}",
                [],
            )
        key_def = parent.field(keys[0])
        if key_def is None or not (key_def.external_id or key_def.id_lookup):
            raise SfError(
                "INVALID_FIELD",
                f"Field name provided, {keys[0]} is not an External ID or indexed field for "
                f"{parent.name}",
                [],
            )
        value = raw[keys[0]]
        matches = self._match(parent, key_def, value)
        if not matches:
            raise SfError(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} not found for field {key_def.name} in "
                f"entity {parent.name}",
                [],
            )
        if len(matches) > 1:
            raise SfError(
                "INVALID_FIELD",
                f"Foreign key external ID: {value} matched more than one record for field "
                f"{key_def.name} in entity {parent.name}",
                [],
            )
        return fdef, matches[0]

    def _coerce(self, fdef: FieldDef, raw: Any, csv: bool) -> Any:
        if csv and isinstance(raw, str):
            raw = None if raw == BULK_NULL else raw
        if raw is None or (raw == "" and fdef.type in _TEXT_TYPES | {"reference"}):
            return None
        if fdef.type in _TEXT_TYPES:
            return self._text(fdef, raw)
        if fdef.type in _NUMBER_TYPES:
            return self._number(fdef, raw, csv)
        if fdef.type == "date":
            return self._date(fdef, raw, csv)
        if fdef.type == "datetime":
            return self._datetime(fdef, raw, csv)
        if fdef.type == "boolean":
            return self._bool(fdef, raw, csv)
        if fdef.type == "reference":
            return self._reference(fdef, raw)
        return raw

    def _text(self, fdef: FieldDef, raw: Any) -> str:
        if isinstance(raw, bool) or not isinstance(raw, str | int | float):
            raise self._type_error(fdef, raw, False, "string")
        value = str(raw)
        if fdef.length and len(value) > fdef.length:
            raise SfError(
                "STRING_TOO_LONG",
                f"{fdef.label or fdef.name}: data value too large: {value} "
                f"(max length={fdef.length})",
                [fdef.name],
            )
        if fdef.type == "email" and not _EMAIL.match(value):
            raise SfError(
                "INVALID_EMAIL_ADDRESS", f"{fdef.name}: invalid email address: {value}", [fdef.name]
            )
        if fdef.restricted and value not in fdef.picklist:
            raise SfError(
                "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                f"{fdef.name}: bad value for restricted picklist field: {value}",
                [fdef.name],
            )
        return value

    def _type_error(self, fdef: FieldDef, raw: Any, csv: bool, xsd: str) -> SfError:
        if csv:
            return SfError(
                "INVALID_FIELD",
                f"Failed to deserialize field. Due to, '{raw}' is not a valid value for the "
                f"type xsd:{xsd}",
                [fdef.name],
            )
        return SfError(
            "JSON_PARSER_ERROR",
            f"Cannot deserialize instance of {xsd} from VALUE_STRING value {raw} or request "
            f"may be missing a required field ({fdef.name})",
            [fdef.name],
        )

    def _number(self, fdef: FieldDef, raw: Any, csv: bool) -> float:
        if isinstance(raw, bool):
            raise self._type_error(fdef, raw, csv, "double")
        try:
            number = Decimal(str(raw).strip())
        except InvalidOperation:
            raise self._type_error(fdef, raw, csv, "double") from None
        if not number.is_finite():
            raise self._type_error(fdef, raw, csv, "double")
        digits = fdef.precision - fdef.scale
        if fdef.precision and abs(number) >= Decimal(10) ** digits:
            raise SfError(
                "NUMBER_OUTSIDE_VALID_RANGE",
                f"{fdef.name}: value outside of valid range on numeric field: {raw}",
                [fdef.name],
            )
        if fdef.scale:
            number = number.quantize(Decimal(1).scaleb(-fdef.scale), rounding=ROUND_HALF_UP)
        return float(number)

    def _date(self, fdef: FieldDef, raw: Any, csv: bool) -> str:
        if not isinstance(raw, str) or not _DATE.match(raw):
            raise self._type_error(fdef, raw, csv, "date")
        try:
            dt.date.fromisoformat(raw)
        except ValueError:
            raise self._type_error(fdef, raw, csv, "date") from None
        return raw

    def _datetime(self, fdef: FieldDef, raw: Any, csv: bool) -> str:
        try:
            parsed = dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
        except ValueError:
            raise self._type_error(fdef, raw, csv, "dateTime") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")

    def _bool(self, fdef: FieldDef, raw: Any, csv: bool) -> bool:
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str) and raw.lower() in ("true", "false", "1", "0"):
            return raw.lower() in ("true", "1")
        raise self._type_error(fdef, raw, csv, "boolean")

    def _reference(self, fdef: FieldDef, raw: Any) -> str:
        try:
            rid = to18(str(raw))
        except ValueError:
            rid = ""
        targets = [self.store.schema[t].prefix for t in fdef.reference_to if t in self.store.schema]
        if fdef.reference_to == ("User",):
            targets = ["005"]
        if not rid or rid[:3] not in targets:
            raise SfError(
                "MALFORMED_ID", f"{fdef.name}: id value of incorrect type: {raw}", [fdef.name]
            )
        return rid

    def _check_references(self, odef: ObjectDef, values: Record) -> None:
        for name, value in values.items():
            fdef = odef.fields[name]
            if fdef.type != "reference" or value is None or fdef.reference_to == ("User",):
                continue
            found = self.store.lookup_any(value)
            if found is None and self.store.in_recycle_bin(value):
                # A lookup to a deleted (or merged-away) record: "entity is deleted", no fields.
                raise SfError("ENTITY_IS_DELETED", "entity is deleted", [])
            if found is None:
                raise SfError("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", [name])
            if odef.name == "Contact" and name == "AccountId" and found[1].get("IsPersonAccount"):
                raise SfError(
                    "FIELD_INTEGRITY_EXCEPTION",
                    "Cannot associate a contact with a person account: a person account has "
                    "exactly one (hidden) contact.",
                    [name],
                )

    def _finish(self, odef: ObjectDef, rec: Record, own_id: str | None) -> None:
        """Derived fields, required fields, validation rules, unique values (in that order)."""
        self._derive(odef, rec, own_id is None)
        missing = [f.name for f in odef.fields.values() if f.required and rec.get(f.name) is None]
        missing += self._person_required(odef, rec)
        if missing:
            raise SfError(
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{', '.join(missing)}]",
                missing,
            )
        # Every failing validation rule is reported, not only the first.
        broken = [
            ErrorItem(
                "FIELD_CUSTOM_VALIDATION_EXCEPTION",
                rule.message,
                [rule.error_field] if rule.error_field else [],
            )
            for rule in self.rules
            if rule.object.lower() == odef.name.lower() and rule.fails(rec)
        ]
        if broken:
            raise SfError.of(broken)
        if self.duplicate_rules:
            duplicates.check(
                self.duplicate_rules,
                odef.name,
                rec,
                own_id,
                self.store.records.get(odef.name, {}).values(),
            )
        for fdef in odef.fields.values():
            if fdef.unique and rec.get(fdef.name) is not None:
                others = [
                    i
                    for i in self.store.find(
                        odef.name, fdef.name, rec[fdef.name], fdef.case_sensitive
                    )
                    if i != own_id
                ]
                if others:
                    raise SfError(
                        "DUPLICATE_VALUE",
                        f"duplicate value found: {fdef.name} duplicates value on record with "
                        f"id: {others[0]}",
                        [],
                    )

    def _derive(self, odef: ObjectDef, rec: Record, creating: bool) -> None:
        if odef.name == "Contact" or rec.get("IsPersonAccount"):
            rec["Name"] = (
                " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p) or None
            )
        if odef.name == "Opportunity":
            stage = rec.get("StageName") or ""
            rec["IsClosed"] = stage.startswith("Closed")
            rec["IsWon"] = stage == "Closed Won"
        if odef.name == "Account" and "IsPersonAccount" in odef.fields and creating:
            self._derive_person(rec)

    def _derive_person(self, rec: Record) -> None:
        rt = self.store.get("RecordType", rec.get("RecordTypeId") or "")
        person = bool(rt and rt.get("IsPersonType"))
        rec["IsPersonAccount"] = person
        if person:
            if rec.get("Name") is not None:
                raise SfError(
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    "Unable to create/update fields: Name. Person account names are set "
                    "through FirstName and LastName.",
                    ["Name"],
                )
            rec["Name"] = " ".join(p for p in (rec.get("FirstName"), rec.get("LastName")) if p)
            rec["Name"] = rec["Name"] or None
            rec["PersonContactId"] = self.store.ids.new("003")

    def _person_required(self, odef: ObjectDef, rec: Record) -> list[str]:
        if odef.name != "Account" or "IsPersonAccount" not in odef.fields:
            return []
        if rec.get("IsPersonAccount"):
            return [] if rec.get("LastName") else ["LastName"]
        person_only = (
            "FirstName",
            "LastName",
            "PersonEmail",
            "PersonMobilePhone",
            "External_Shopify_ID__pc",
        )
        used = [f for f in person_only if rec.get(f) is not None]
        if used:
            raise SfError(
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                f"Business Account may not use Person Account field: {used[0]}",
                [used[0]],
            )
        return [] if rec.get("Name") else ["Name"]


def render(odef: ObjectDef, rec: Record, version: str, fields: list[str] | None = None) -> Record:
    """A record as REST returns it: ``attributes`` then every (or the requested) field."""
    out: Record = {
        "attributes": {
            "type": odef.name,
            "url": f"/services/data/v{version}/sobjects/{odef.name}/{rec['Id']}",
        }
    }
    names = fields or list(odef.fields)
    for name in names:
        fdef = odef.field(name)
        if fdef is None:
            raise SfError("INVALID_FIELD", f"No such column '{name}' on entity '{odef.name}'", [])
        out[fdef.name] = rec.get(fdef.name)
    return out
