"""The org variant (``OrgProfile``) and the sObject schema derived from it (research §5)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .ids import PREFIXES

DEFAULT_STAGES: tuple[str, ...] = (
    "Prospecting",
    "Qualification",
    "Needs Analysis",
    "New Order",
    "Closed Won",
    "Closed Lost",
)
DEFAULT_CURRENCIES: tuple[str, ...] = (
    "USD", "EUR", "GBP", "CAD", "UAH", "AUD", "JPY", "CHF", "PLN",
)
EXTERNAL_ID_FIELDS: dict[str, str] = {
    "Account": "External_Shopify_Account_ID__c",
    "Contact": "External_Shopify_ID__c",
    "Opportunity": "External_Shopify_Order_ID__c",
}
PERSON_EXT_FIELD = "External_Shopify_ID__pc"


@dataclass
class OrgProfile:
    """The org variant the sandbox emulates; change it live with ``POST /__sandbox/org``."""

    multi_currency: bool = False
    currencies: tuple[str, ...] = DEFAULT_CURRENCIES
    default_currency: str = "USD"
    person_accounts: bool = False
    external_id_unique: bool = True
    external_id_case_sensitive: bool = True
    missing_fields: set[str] = field(default_factory=set)
    # Custom fields an admin added in Setup → Object Manager, each
    # {"object": "Opportunity", "name": "Shopify_Status__c", "type": "string", "length": 40}.
    custom_fields: tuple[dict[str, Any], ...] = ()
    stage_names: tuple[str, ...] = DEFAULT_STAGES
    jwt_certificate: str | None = None
    jwt_audiences: tuple[str, ...] = (
        "https://login.salesforce.com",
        "https://test.salesforce.com",
    )
    password_flow: bool = True
    collate_reorders: bool = False
    org_id: str = "00DHs0000000001EAA"
    user_id: str = "005Hs0000000001AAA"

    def updated(self, changes: dict[str, Any]) -> OrgProfile:
        """A copy with ``changes`` applied (unknown keys raise ``KeyError``)."""
        known = {f.name for f in fields(self)}
        bad = set(changes) - known
        if bad:
            raise KeyError(", ".join(sorted(bad)))
        norm: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "missing_fields":
                value = set(value or ())
            elif key in ("currencies", "stage_names", "jwt_audiences"):
                value = tuple(value)
            elif key == "custom_fields":
                value = tuple(_custom_field_spec(spec) for spec in value or ())
            norm[key] = value
        return replace(self, **norm)

    def to_json(self) -> dict[str, Any]:
        """JSON-able form (sets and tuples become lists)."""
        data = asdict(self)
        data["missing_fields"] = sorted(self.missing_fields)
        for key in ("currencies", "stage_names", "jwt_audiences"):
            data[key] = list(data[key])
        data["custom_fields"] = [dict(spec) for spec in self.custom_fields]
        return data


_CUSTOM_TYPES = {"string", "textarea", "email", "phone", "url", "currency", "double", "int",
                 "boolean", "date", "datetime", "percent"}


def _custom_field_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A custom field as Setup allows it: a known object, an API name ending ``__c``, a type."""
    obj, name, ftype = spec.get("object"), str(spec.get("name") or ""), spec.get("type", "string")
    if obj not in ("Account", "Contact", "Opportunity"):
        raise KeyError(f"custom_fields: unknown object {obj!r}")
    if not name.endswith("__c") or ftype not in _CUSTOM_TYPES:
        raise KeyError(f"custom_fields: {name!r} of type {ftype!r}")
    length = int(spec.get("length") or (255 if ftype in ("string", "url") else 0))
    return {"object": obj, "name": name, "type": ftype, "length": length}


@dataclass
class FieldDef:
    """One field as ``describe`` reports it, plus what validation needs."""

    name: str
    type: str
    length: int = 0
    nillable: bool = True
    createable: bool = True
    updateable: bool = True
    external_id: bool = False
    unique: bool = False
    case_sensitive: bool = False
    id_lookup: bool = False
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    precision: int = 0
    scale: int = 0
    label: str = ""
    defaulted: bool = False

    @property
    def required(self) -> bool:
        """Required on create: not nillable, createable and not defaulted."""
        return not self.nillable and self.createable and not self.defaulted

    def describe(self) -> dict[str, Any]:
        """The ``describe`` field entry (research §5 / describe shape)."""
        return {
            "name": self.name,
            "label": self.label or self.name,
            "type": self.type,
            "length": self.length,
            "nillable": self.nillable,
            "createable": self.createable,
            "updateable": self.updateable,
            "externalId": self.external_id,
            "unique": self.unique,
            "caseSensitive": self.case_sensitive,
            "idLookup": self.id_lookup,
            "defaultedOnCreate": self.defaulted,
            "picklistValues": [
                {"value": v, "label": v, "active": True, "defaultValue": False}
                for v in self.picklist
            ],
            "restrictedPicklist": self.restricted,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "precision": self.precision,
            "scale": self.scale,
            "custom": self.name.endswith(("__c", "__pc")),
            "filterable": True,
            "sortable": self.type != "textarea",
        }


@dataclass
class ObjectDef:
    """An sObject type: key prefix and fields by name (case-insensitive lookup)."""

    name: str
    prefix: str
    fields: dict[str, FieldDef]
    _lower: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._lower = {k.lower(): k for k in self.fields}

    def field(self, name: str) -> FieldDef | None:
        """The field called ``name`` (Salesforce field names are case-insensitive)."""
        real = self._lower.get(name.lower())
        return self.fields[real] if real else None

    def relationship(self, name: str) -> FieldDef | None:
        """The reference field whose relationship name is ``name`` (e.g. ``Account``)."""
        for fdef in self.fields.values():
            if fdef.relationship_name and fdef.relationship_name.lower() == name.lower():
                return fdef
        return None

    def describe(self) -> dict[str, Any]:
        """The ``/sobjects/{Object}/describe`` body."""
        return {
            "name": self.name,
            "label": self.name,
            "keyPrefix": self.prefix,
            "custom": False,
            "createable": True,
            "updateable": True,
            "deletable": True,
            "queryable": True,
            "fields": [f.describe() for f in self.fields.values()],
            "urls": {
                "sobject": f"/sobjects/{self.name}",
                "describe": f"/sobjects/{self.name}/describe",
            },
        }


def _s(name: str, length: int, **kw: Any) -> FieldDef:
    return FieldDef(name, kw.pop("type", "string"), length, **kw)


def _system() -> list[FieldDef]:
    ro = {"createable": False, "updateable": False}
    return [
        FieldDef("Id", "id", 18, nillable=False, id_lookup=True, defaulted=True, **ro),
        FieldDef("IsDeleted", "boolean", nillable=False, defaulted=True, **ro),
        FieldDef("CreatedDate", "datetime", nillable=False, defaulted=True, **ro),
        FieldDef("LastModifiedDate", "datetime", nillable=False, defaulted=True, **ro),
        FieldDef("SystemModstamp", "datetime", nillable=False, defaulted=True, **ro),
        FieldDef("OwnerId", "reference", 18, nillable=False, defaulted=True,
                 reference_to=("User",), relationship_name="Owner"),
    ]


def _master(obj: str) -> FieldDef:
    """``MasterRecordId``: on a record deleted by a merge, the Id of the record that remains."""
    return FieldDef("MasterRecordId", "reference", 18, reference_to=(obj,),
                    relationship_name="MasterRecord", createable=False, updateable=False)


def _ext(name: str, org: OrgProfile) -> FieldDef:
    return FieldDef(
        name, "string", 255, external_id=True, id_lookup=True,
        unique=org.external_id_unique,
        case_sensitive=org.external_id_case_sensitive or not org.external_id_unique,
    )


def _currency(org: OrgProfile) -> list[FieldDef]:
    if not org.multi_currency:
        return []
    return [FieldDef("CurrencyIsoCode", "picklist", 3, picklist=tuple(org.currencies),
                     restricted=True, defaulted=True)]


def _account(org: OrgProfile) -> list[FieldDef]:
    out = [
        FieldDef("Name", "string", 255, nillable=False),
        FieldDef("BillingStreet", "textarea", 255),
        _s("BillingCity", 40),
        _s("BillingState", 80),
        _s("BillingPostalCode", 20),
        _s("BillingCountry", 80),
        FieldDef("Phone", "phone", 40),
        FieldDef("Website", "url", 255),
        FieldDef("Description", "textarea", 32000),
        _ext("External_Shopify_Account_ID__c", org),
        _master("Account"),
    ]
    if org.person_accounts:
        out[0].nillable = True  # required for business accounts only (checked in records.py)
        out += [
            _s("FirstName", 40),
            _s("LastName", 80),
            FieldDef("PersonEmail", "email", 80),
            FieldDef("PersonMobilePhone", "phone", 40),
            FieldDef("IsPersonAccount", "boolean", nillable=False, createable=False,
                     updateable=False, defaulted=True),
            FieldDef("RecordTypeId", "reference", 18, reference_to=("RecordType",),
                     relationship_name="RecordType"),
            FieldDef("PersonContactId", "reference", 18, reference_to=("Contact",),
                     relationship_name="PersonContact", createable=False, updateable=False),
            _ext(PERSON_EXT_FIELD, org),
        ]
    return out + _currency(org)


def _contact(org: OrgProfile) -> list[FieldDef]:
    return [
        FieldDef("Name", "string", 121, createable=False, updateable=False),
        _s("FirstName", 40),
        FieldDef("LastName", "string", 80, nillable=False),
        FieldDef("Email", "email", 80, id_lookup=True),
        FieldDef("Phone", "phone", 40),
        FieldDef("AccountId", "reference", 18, reference_to=("Account",),
                 relationship_name="Account"),
        _ext("External_Shopify_ID__c", org),
        _master("Contact"),
        *_currency(org),
    ]


def _opportunity(org: OrgProfile) -> list[FieldDef]:
    return [
        FieldDef("Name", "string", 120, nillable=False),
        FieldDef("StageName", "picklist", 255, nillable=False, picklist=tuple(org.stage_names),
                 restricted=True),
        FieldDef("CloseDate", "date", nillable=False),
        FieldDef("Amount", "currency", precision=18, scale=2),
        FieldDef("AccountId", "reference", 18, reference_to=("Account",),
                 relationship_name="Account"),
        FieldDef("ContactId", "reference", 18, reference_to=("Contact",),
                 relationship_name="Contact", updateable=False),
        FieldDef("Description", "textarea", 32000),
        FieldDef("IsClosed", "boolean", nillable=False, createable=False, updateable=False,
                 defaulted=True),
        FieldDef("IsWon", "boolean", nillable=False, createable=False, updateable=False,
                 defaulted=True),
        _ext("External_Shopify_Order_ID__c", org),
        *_currency(org),
    ]


def _record_type() -> list[FieldDef]:
    return [
        _s("Name", 80, nillable=False),
        _s("DeveloperName", 80, nillable=False),
        _s("SobjectType", 40, nillable=False),
        FieldDef("IsPersonType", "boolean", nillable=False, defaulted=True),
        FieldDef("IsActive", "boolean", nillable=False, defaulted=True),
    ]


def _duplicate_rule() -> list[FieldDef]:
    ro = {"createable": False, "updateable": False}
    return [
        _s("DeveloperName", 80, nillable=False, **ro),
        _s("MasterLabel", 80, nillable=False, **ro),
        FieldDef("SobjectType", "picklist", 40, nillable=False, **ro),
        FieldDef("IsActive", "boolean", nillable=False, defaulted=True, **ro),
    ]


def build_schema(org: OrgProfile) -> dict[str, ObjectDef]:
    """All sObject definitions for ``org`` (minus ``org.missing_fields``)."""
    builders = {"Account": _account, "Contact": _contact, "Opportunity": _opportunity}
    schema: dict[str, ObjectDef] = {}
    for name, build in builders.items():
        custom = [_custom(spec) for spec in org.custom_fields if spec["object"] == name]
        schema[name] = _object(name, [*_system(), *build(org), *custom], org)
    system = [f for f in _system() if f.name != "OwnerId"]
    schema["DuplicateRule"] = _object("DuplicateRule", [*system, *_duplicate_rule()], org)
    if org.person_accounts:
        schema["RecordType"] = _object("RecordType", [*system, *_record_type()], org)
    return schema


def _custom(spec: dict[str, Any]) -> FieldDef:
    number = {"currency": (18, 2), "double": (18, 2), "percent": (5, 2), "int": (9, 0)}
    precision, scale = number.get(spec["type"], (0, 0))
    return FieldDef(spec["name"], spec["type"], spec["length"], precision=precision, scale=scale)


def _object(name: str, defs: list[FieldDef], org: OrgProfile) -> ObjectDef:
    missing = {m.split(".", 1)[1].lower() for m in org.missing_fields if m.startswith(name + ".")}
    kept = {f.name: f for f in defs if f.name.lower() not in missing}
    return ObjectDef(name, PREFIXES[name], kept)
