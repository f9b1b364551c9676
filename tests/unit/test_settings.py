"""Settings: environment and .env, readable problems, secrets kept secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployments.cli import app
from tasks.settings import Settings, SettingsError, load_settings

COMPLETE = {
    "SHOPIFY_STORE_DOMAIN": "acme.myshopify.com",
    "SHOPIFY_ADMIN_API_ACCESS_TOKEN": "shpat_topsecret",
    "SHOPIFY_WEBHOOK_SECRET": "whsec-old, whsec-new",
    "SALESFORCE_CLIENT_ID": "3MVG-client",
    "SALESFORCE_CLIENT_SECRET": "sf-client-secret",
    "SALESFORCE_LOGIN_URL": "https://acme.my.salesforce.com",
}


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env


def set_env(monkeypatch: pytest.MonkeyPatch, values: dict[str, str]) -> None:
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def test_config_check_with_an_empty_environment_lists_each_missing_setting() -> None:
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "SHOPIFY_STORE_DOMAIN: missing",
        "SHOPIFY_API_KEY, SHOPIFY_API_SECRET_KEY: missing (a Dev Dashboard app's client id and "
        "secret; a legacy custom app sets SHOPIFY_ADMIN_API_ACCESS_TOKEN instead)",
        "SHOPIFY_WEBHOOK_SECRET: missing (the app's client secret signs webhooks)",
        "SALESFORCE_CLIENT_ID: missing (needed by SALESFORCE_AUTH_MODE=client_credentials)",
        "SALESFORCE_CLIENT_SECRET: missing (needed by SALESFORCE_AUTH_MODE=client_credentials)",
    ]
    assert "Traceback" not in result.output


def test_invalid_and_missing_settings_are_reported_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(
        monkeypatch,
        {
            "SHOPIFY_STORE_DOMAIN": "not a domain",
            "SHOPSYNC_SHOP_TIMEZONE": "Mars/Olympus",
            "SALESFORCE_AUTH_MODE": "magic",
            "SHOPSYNC_MAPPING__CLOSE_DATE_OFFSET_DAYS": "soon",
        },
    )
    with pytest.raises(SettingsError) as caught:
        load_settings()
    problems = caught.value.problems
    assert problems[0].startswith("SHOPIFY_STORE_DOMAIN: 'not a domain' is not")
    assert any(p.startswith("SHOPSYNC_SHOP_TIMEZONE: 'Mars/Olympus'") for p in problems)
    assert any(p.startswith("SALESFORCE_AUTH_MODE: Input should be") for p in problems)
    assert any(p.startswith("SHOPSYNC_MAPPING__CLOSE_DATE_OFFSET_DAYS:") for p in problems)
    assert any(p.startswith("SHOPIFY_API_KEY, SHOPIFY_API_SECRET_KEY: missing") for p in problems)


def test_complete_settings_pass_and_never_print_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, COMPLETE)
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "configuration OK" in result.stdout
    for secret in ("shpat_topsecret", "whsec-old", "whsec-new", "sf-client-secret", "3MVG-client"):
        assert secret not in result.output


def test_webhook_secrets_rotate_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, COMPLETE)
    settings = load_settings()
    assert [s.get_secret_value() for s in settings.shopify_webhook_secret] == [
        "whsec-old",
        "whsec-new",
    ]
    assert "whsec" not in repr(settings)


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "SHOPIFY_STORE_DOMAIN=from-dotenv.myshopify.com\nSHOPSYNC_SHOP_TIMEZONE=Europe/Kyiv\n"
    )
    settings = load_settings()
    assert settings.shopify_store_domain == "from-dotenv.myshopify.com"
    assert settings.shop_timezone == "Europe/Kyiv"


def test_mapping_knobs_are_nested_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSYNC_MAPPING__CLOSE_DATE_OFFSET_DAYS", "14")
    monkeypatch.setenv("SHOPSYNC_MAPPING__STAGE_ON_CREATE", "Prospecting")
    settings = load_settings()
    assert settings.mapping.close_date_offset_days == 14
    assert settings.mapping.stage_on_create == "Prospecting"


@pytest.mark.parametrize(
    ("mode", "extra", "missing"),
    [
        ("jwt", {}, ["SALESFORCE_USERNAME", "SALESFORCE_JWT_PRIVATE_KEY_PATH"]),
        ("refresh_token", {}, ["SALESFORCE_REFRESH_TOKEN"]),
        ("password", {}, ["SALESFORCE_USERNAME", "SALESFORCE_PASSWORD"]),
        ("client_credentials", {}, []),
    ],
)
def test_each_auth_mode_names_what_it_needs(
    monkeypatch: pytest.MonkeyPatch, mode: str, extra: dict[str, str], missing: list[str]
) -> None:
    set_env(monkeypatch, {**COMPLETE, "SALESFORCE_AUTH_MODE": mode, **extra})
    problems = load_settings().problems(need={"salesforce"})
    assert [p.split(":")[0] for p in problems] == missing


def test_jwt_key_path_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    set_env(
        monkeypatch,
        {
            **COMPLETE,
            "SALESFORCE_AUTH_MODE": "jwt",
            "SALESFORCE_USERNAME": "integration@acme.com",
            "SALESFORCE_JWT_PRIVATE_KEY_PATH": str(tmp_path / "nope.pem"),
        },
    )
    assert load_settings().problems(need={"salesforce"}) == [
        f"SALESFORCE_JWT_PRIVATE_KEY_PATH: {tmp_path / 'nope.pem'} is not a readable file"
    ]


def test_state_url_defaults_to_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPSYNC_DATA_DIR", "/srv/shopsync")
    assert Settings().state_url == "sqlite+pysqlite:////srv/shopsync/shopsync.db"


# -- Shopify auth modes (issue 13.3) ----------------------------------------------------------

CLIENT_CREDENTIALS = {
    key: value for key, value in COMPLETE.items() if key != "SHOPIFY_ADMIN_API_ACCESS_TOKEN"
} | {"SHOPIFY_API_KEY": "client-id-1234", "SHOPIFY_API_SECRET_KEY": "shpss_client_secret"}


def test_a_static_token_means_static_token_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, COMPLETE | {"SHOPIFY_API_KEY": "client-id-1234"})
    settings = load_settings()
    assert settings.shopify_auth_mode == "static_token"
    assert settings.problems() == []


def test_key_and_secret_without_a_token_mean_client_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    set_env(monkeypatch, CLIENT_CREDENTIALS)
    settings = load_settings()
    assert settings.shopify_auth_mode == "client_credentials"
    assert settings.problems() == []
    result = CliRunner().invoke(app, ["config", "check"])
    assert result.exit_code == 0, result.output
    assert "shpss_client_secret" not in result.output
    assert "shpss_client_secret" not in repr(settings)


def test_client_credentials_without_the_secret_names_what_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    values = dict(CLIENT_CREDENTIALS)
    del values["SHOPIFY_API_SECRET_KEY"]
    set_env(monkeypatch, values)
    assert load_settings().problems(need={"shopify"}) == [
        "SHOPIFY_API_SECRET_KEY: missing (needed by Shopify client_credentials mode)"
    ]


def test_an_explicit_mode_wins_and_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, COMPLETE | {"SHOPSYNC_SHOPIFY_AUTH_MODE": "client_credentials"})
    settings = load_settings()
    assert settings.shopify_auth_mode == "client_credentials"
    assert settings.problems(need={"shopify"}) == [
        "SHOPIFY_API_KEY: missing (needed by SHOPSYNC_SHOPIFY_AUTH_MODE=client_credentials)",
        "SHOPIFY_API_SECRET_KEY: missing (needed by SHOPSYNC_SHOPIFY_AUTH_MODE=client_credentials)",
    ]


def test_an_unknown_mode_is_a_readable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    set_env(monkeypatch, COMPLETE | {"SHOPSYNC_SHOPIFY_AUTH_MODE": "oauth"})
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert caught.value.problems[0].startswith("SHOPSYNC_SHOPIFY_AUTH_MODE: Input should be")
