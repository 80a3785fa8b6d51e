"""Configuration is validated at start with a clear message naming the variable."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from ledger_svc.config import LedgerSettings
from svckit.config import load_settings


def test_prefixed_variable_wins_over_shared_one(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://a@shared:5432/x")
    monkeypatch.setenv("LEDGER_DATABASE_URL", "postgresql://a@own:5432/y")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = LedgerSettings()
    assert settings.sqlalchemy_url() == "postgresql+psycopg://a@own:5432/ledger"
    assert settings.log_level == "DEBUG"


def test_unprefixed_service_specific_variable_is_ignored(monkeypatch):
    monkeypatch.setenv("GRPC_PORT", "1234")
    assert LedgerSettings().grpc_port == 50052


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("LEDGER_GRPC_PORT", "seventy", "LEDGER_GRPC_PORT"),
        ("LEDGER_GRPC_PORT", "70000", "LEDGER_GRPC_PORT"),
        ("DATABASE_URL", "localhost:5432", "DATABASE_URL"),
        ("LEDGER_IDEMPOTENCY_RETENTION_HOURS", "2", "LEDGER_IDEMPOTENCY_RETENTION_HOURS"),
    ],
)
def test_bad_value_exits_2_naming_the_variable(monkeypatch, capsys, var, value, needle):
    monkeypatch.setenv(var, value)
    with pytest.raises(SystemExit) as exc:
        load_settings(LedgerSettings)
    assert exc.value.code == 2
    assert needle in capsys.readouterr().err


def test_service_refuses_to_start_with_bad_config():
    env = {"LEDGER_GRPC_PORT": "nope", "PATH": "/usr/bin:/bin"}
    result = subprocess.run(
        [sys.executable, "-m", "ledger_svc", "check-config"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "LEDGER_GRPC_PORT" in result.stderr


def test_the_payment_service_needs_a_webhook_secret_in_production(monkeypatch, capsys):
    from payment_svc.config import PaymentSettings

    monkeypatch.delenv("PAYMENT_ENVIRONMENT", raising=False)
    monkeypatch.delenv("PAYMENT_PSP_WEBHOOK_SECRETS", raising=False)
    with pytest.raises(SystemExit) as exc:
        load_settings(PaymentSettings)
    assert exc.value.code == 2
    assert "PAYMENT_PSP_WEBHOOK_SECRETS" in capsys.readouterr().err
    # Two secrets during a rotation, comma-separated; never shown.
    monkeypatch.setenv("PAYMENT_PSP_WEBHOOK_SECRETS", "whsec_new0123456789, whsec_old0123456789")
    settings = load_settings(PaymentSettings)
    assert [s.get_secret_value() for s in settings.psp_webhook_secrets] == [
        "whsec_new0123456789",
        "whsec_old0123456789",
    ]
    assert "whsec_new" not in repr(settings)
    monkeypatch.setenv("PAYMENT_PSP_WEBHOOK_SECRETS", "not-a-stripe-secret")
    with pytest.raises(SystemExit):
        load_settings(PaymentSettings)
    monkeypatch.delenv("PAYMENT_PSP_WEBHOOK_SECRETS")
    monkeypatch.setenv("PAYMENT_ENVIRONMENT", "development")
    assert load_settings(PaymentSettings).psp_webhook_secrets == []


def test_a_refused_configuration_names_no_secret(monkeypatch, capsys):
    """Found by the fault campaign: a check over several settings printed every setting it was given."""
    from gateway.config import GatewaySettings

    monkeypatch.setenv("GATEWAY_ENVIRONMENT", "development")
    monkeypatch.setenv("GATEWAY_DEV_API_KEY", "mpk_too_short_to_be_a_key")
    monkeypatch.setenv("GATEWAY_STRIPE_WEBHOOK_SECRET", "whsec_" + "5" * 40)
    monkeypatch.setenv("GATEWAY_STATUS_PAGE_SECRET", "statuspagesecret" * 3)
    with pytest.raises(SystemExit) as exc:
        load_settings(GatewaySettings)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "dev_api_key must look like" in err
    for secret in ("mpk_too_short", "whsec_5555", "statuspagesecret"):
        assert secret not in err
    # A refused secret is named, its value is not shown.
    from payment_svc.config import PaymentSettings

    monkeypatch.setenv("PAYMENT_PSP_WEBHOOK_SECRETS", "sk_live_pasted_by_mistake")
    with pytest.raises(SystemExit):
        load_settings(PaymentSettings)
    err = capsys.readouterr().err
    assert "psp_webhook_secrets must be" in err and "pasted_by_mistake" not in err


@pytest.mark.parametrize(
    "variable", ["DATABASE_URL", "WALLET_DATABASE_READ_URL", "REDIS_URL"], ids=["primary", "standby", "redis"]
)
def test_a_refused_server_url_does_not_show_its_password(monkeypatch, capsys, variable):
    from wallet_svc.config import WalletSettings

    monkeypatch.setenv(variable, "app:s3cret-pw@db:5432/x")  # the scheme forgotten
    with pytest.raises(SystemExit) as exc:
        load_settings(WalletSettings)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "must be a URL" in err and "s3cret-pw" not in err


def test_database_hosts_make_one_url_to_whichever_server_accepts_writes(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:pw@db:5432/x?sslmode=require")
    monkeypatch.setenv("DATABASE_HOSTS", "db-a:5432, db-b:6432")
    settings = LedgerSettings()
    url = make_url(settings.sqlalchemy_url())
    assert url.host is None and url.port is None
    assert (url.username, url.password, url.database) == ("app", "pw", "ledger")
    assert dict(url.query) == {
        "host": "db-a,db-b",
        "port": "5432,6432",
        "sslmode": "require",
        "target_session_attrs": "read-write",
    }
    # The shared URL carries the same servers, for the plain psycopg connections (readiness probe).
    assert make_url(settings.database_url).query["host"] == "db-a,db-b"


@pytest.mark.parametrize("value", ["db-a", "db-a:5432,db-b", "db-a:http", ":5432", "db-a:70000"])
def test_a_bad_database_hosts_list_exits_2_naming_the_variable(monkeypatch, capsys, value):
    monkeypatch.setenv("DATABASE_HOSTS", value)
    with pytest.raises(SystemExit) as exc:
        load_settings(LedgerSettings)
    assert exc.value.code == 2
    assert "LEDGER_DATABASE_HOSTS" in capsys.readouterr().err
