"""The rules behind :class:`tasks.settings.Settings`: how list values are read from one
environment string, what makes a single value invalid, and what is missing for each part
(Shopify, Salesforce, webhooks) given the authentication mode chosen.

Pure functions of values (or of a loaded settings object), so ``settings.py`` stays the list of
settings.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, ValidationError

if TYPE_CHECKING:
    from tasks.settings import Settings

AuthMode = Literal["jwt", "client_credentials", "refresh_token", "password"]
ShopifyAuthMode = Literal["static_token", "client_credentials"]
SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")
API_VERSION_SHOPIFY = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
API_VERSION_SALESFORCE = re.compile(r"^\d{2}\.0$")

# What each Salesforce authentication mode needs: (attribute, environment variable).
SALESFORCE_REQUIRED: dict[str, list[tuple[str, str]]] = {
    "client_credentials": [
        ("salesforce_client_id", "SALESFORCE_CLIENT_ID"),
        ("salesforce_client_secret", "SALESFORCE_CLIENT_SECRET"),
    ],
    "jwt": [
        ("salesforce_client_id", "SALESFORCE_CLIENT_ID"),
        ("salesforce_username", "SALESFORCE_USERNAME"),
        ("salesforce_jwt_private_key_path", "SALESFORCE_JWT_PRIVATE_KEY_PATH"),
    ],
    "refresh_token": [
        ("salesforce_client_id", "SALESFORCE_CLIENT_ID"),
        ("salesforce_refresh_token", "SALESFORCE_REFRESH_TOKEN"),
    ],
    "password": [
        ("salesforce_client_id", "SALESFORCE_CLIENT_ID"),
        ("salesforce_client_secret", "SALESFORCE_CLIENT_SECRET"),
        ("salesforce_username", "SALESFORCE_USERNAME"),
        ("salesforce_password", "SALESFORCE_PASSWORD"),
    ],
}

# What each Shopify authentication mode needs.
SHOPIFY_REQUIRED: dict[str, list[tuple[str, str]]] = {
    "static_token": [
        ("shopify_admin_api_access_token", "SHOPIFY_ADMIN_API_ACCESS_TOKEN"),
    ],
    "client_credentials": [
        ("shopify_api_key", "SHOPIFY_API_KEY"),
        ("shopify_api_secret_key", "SHOPIFY_API_SECRET_KEY"),
    ],
}


# -- list values from one string -----------------------------------------------------------------


def split_list(value: Any) -> Any:
    """``"a, b"`` → ``["a", "b"]`` (other values as they are)."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def split_shops(value: Any) -> Any:
    """Comma-separated shop domains, lower-cased."""
    if isinstance(value, str):
        return [part.strip().lower() for part in value.split(",") if part.strip()]
    return value


def split_delays(value: Any) -> Any:
    """Comma-separated seconds as floats."""
    if isinstance(value, str):
        return [float(part) for part in value.split(",") if part.strip()]
    return value


# -- single values -------------------------------------------------------------------------------


def shop_domain(value: str | None) -> str | None:
    """A ``<shop>.myshopify.com`` domain (an https:// prefix and a trailing slash dropped)."""
    if value is None:
        return None
    value = value.strip().lower().removeprefix("https://").rstrip("/")
    if not SHOP_DOMAIN.match(value):
        raise ValueError(f"{value!r} is not a <shop>.myshopify.com domain")
    return value


def shopify_api_version(value: str) -> str:
    """A Shopify API version like ``2026-10`` (or ``unstable``)."""
    if not API_VERSION_SHOPIFY.match(value):
        raise ValueError(f"{value!r} is not a Shopify API version like 2026-10")
    return value


def salesforce_api_version(value: str) -> str:
    """A Salesforce API version like ``62.0``, 46.0 or newer (a ``v`` prefix dropped)."""
    value = value.removeprefix("v")
    if not API_VERSION_SALESFORCE.match(value):
        raise ValueError(f"{value!r} is not a Salesforce API version like 62.0")
    if float(value) < 46.0:
        raise ValueError("Salesforce API version must be 46.0 or newer (upsert results)")
    return value


def timezone(value: str | None) -> str | None:
    """An IANA timezone name."""
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA timezone like America/New_York") from None
    return value


def url(value: str | None) -> str | None:
    """An http(s) URL without its trailing slash."""
    if value is None:
        return None
    if not value.startswith(("https://", "http://")):
        raise ValueError(f"{value!r} must start with https://")
    return value.rstrip("/")


# -- what is missing -----------------------------------------------------------------------------


def problems(settings: Settings, need: set[str]) -> list[str]:
    """What is missing for the given parts (``shopify``, ``salesforce``, ``webhooks``)."""
    found: list[str] = []
    if "shopify" in need:
        found += missing(settings, ("shopify_store_domain", "SHOPIFY_STORE_DOMAIN"))
        found += _shopify_credential_problems(settings)
    if "webhooks" in need and not settings.shopify_webhook_secret:
        found.append("SHOPIFY_WEBHOOK_SECRET: missing (the app's client secret signs webhooks)")
    if "salesforce" in need:
        found += _salesforce_problems(settings)
    return found


def missing(settings: Settings, *pairs: tuple[str, str]) -> list[str]:
    """``<ENV>: missing`` for each (attribute, environment variable) that is not set."""
    return [f"{env}: missing" for attr, env in pairs if not getattr(settings, attr)]


def _shopify_credential_problems(settings: Settings) -> list[str]:
    explicit = settings.shopify_auth_mode_setting is not None
    has_key = bool(settings.shopify_api_key or settings.shopify_api_secret_key)
    if not explicit and not settings.shopify_admin_api_access_token and not has_key:
        return [
            "SHOPIFY_API_KEY, SHOPIFY_API_SECRET_KEY: missing (a Dev Dashboard app's client "
            "id and secret; a legacy custom app sets SHOPIFY_ADMIN_API_ACCESS_TOKEN instead)"
        ]
    mode = settings.shopify_auth_mode
    why = f"SHOPSYNC_SHOPIFY_AUTH_MODE={mode}" if explicit else f"Shopify {mode} mode"
    return [f"{line} (needed by {why})" for line in missing(settings, *SHOPIFY_REQUIRED[mode])]


def _salesforce_problems(settings: Settings) -> list[str]:
    mode = settings.salesforce_auth_mode
    found = [
        f"{line} (needed by SALESFORCE_AUTH_MODE={mode})"
        for line in missing(settings, *SALESFORCE_REQUIRED[mode])
    ]
    key = settings.salesforce_jwt_private_key_path
    if mode == "jwt" and key is not None and not key.is_file():
        found.append(f"SALESFORCE_JWT_PRIVATE_KEY_PATH: {key} is not a readable file")
    return found


# -- readable errors -----------------------------------------------------------------------------


def env_names(model: type[Settings]) -> dict[str, str]:
    """Each setting's environment variable, by field name (and by itself)."""
    names: dict[str, str] = {}
    for name, info in model.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names[name] = str(alias.choices[0])
            names[str(alias.choices[0])] = str(alias.choices[0])
    return names


def describe(error: Any, names: dict[str, str]) -> str:
    """One validation error as ``<ENV>: <message>``."""
    location = error.get("loc") or ()
    field_name = str(location[0]) if location else "settings"
    env = names.get(field_name, field_name.upper())
    if len(location) > 1:
        env += "__" + "__".join(str(part).upper() for part in location[1:])
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{env}: {message}"


def missing_besides(
    model: type[Settings], exc: ValidationError, overrides: dict[str, Any], names: dict[str, str]
) -> list[str]:
    """What is also missing, found by reading again with the invalid values at their defaults."""
    invalid_env = {str(err["loc"][0]) for err in exc.errors() if err.get("loc")}
    defaults = {
        name: info.get_default(call_default_factory=True)
        for name, info in model.model_fields.items()
        if names.get(name) in invalid_env or name in invalid_env
    }
    try:
        settings = model(**{**overrides, **defaults})
    except ValidationError:
        return []
    return [p for p in settings.problems() if p.split(":")[0] not in invalid_env]
