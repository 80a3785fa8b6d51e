"""docker-compose.yml agrees with the code: commands, ports, dependencies, health checks, TLS files, secrets.

No Docker engine runs here, so the file is checked statically against the settings classes.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

from gateway.config import GatewaySettings
from ledger_svc.config import LedgerSettings
from payment_svc.config import PaymentSettings
from payment_svc.psp_events import HANDLED_EVENT_TYPES
from recon_svc.config import ReconSettings
from wallet_svc.config import WalletSettings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_TEXT = (ROOT / "docker-compose.yml").read_text()
COMPOSE = yaml.safe_load(COMPOSE_TEXT)
SERVICES = COMPOSE["services"]

GRPC = {
    "payment": ("payment_svc", PaymentSettings, "PAYMENT_"),
    "ledger": ("ledger_svc", LedgerSettings, "LEDGER_"),
    "wallet": ("wallet_svc", WalletSettings, "WALLET_"),
    "recon": ("recon_svc", ReconSettings, "RECON_"),
}


def _command_module(name: str) -> str:
    command = SERVICES[name]["command"]
    assert command[:2] == ["python", "-m"], command
    return command[2]


def _ports(name: str) -> set[int]:
    return {int(p.split(":")[-1]) for p in SERVICES[name].get("ports", [])}


@pytest.mark.parametrize("name", sorted(GRPC))
def test_grpc_service_command_port_and_health(name):
    module, settings_cls, prefix = GRPC[name]
    assert _command_module(name) == module
    assert importlib.util.find_spec(module) is not None
    default_port = settings_cls.model_fields["grpc_port"].default
    env = SERVICES[name]["environment"]
    assert int(env[f"{prefix}GRPC_PORT"]) == default_port
    assert env[f"{prefix}GRPC_HOST"] == "0.0.0.0"  # reachable from other containers
    assert _ports(name) == set()  # but not from the host
    assert SERVICES[name]["healthcheck"]["test"][-1] == f"127.0.0.1:{default_port}"
    assert SERVICES[name]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_gateway_points_at_every_service_by_compose_name():
    env = SERVICES["gateway"]["environment"]
    assert _command_module("gateway") == "gateway"
    assert int(env["GATEWAY_HTTP_PORT"]) == GatewaySettings.model_fields["http_port"].default == 8000
    for name, (_, settings_cls, _) in GRPC.items():
        assert (
            env[f"GATEWAY_{name.upper()}_ADDR"] == f"{name}:{settings_cls.model_fields['grpc_port'].default}"
        )
        assert SERVICES["gateway"]["depends_on"][name]["condition"] == "service_healthy"
    assert SERVICES["gateway"]["healthcheck"]["test"][-1].endswith(":8000/readyz")


def test_infrastructure_uses_official_images_with_health_checks():
    assert SERVICES["postgres"]["image"].startswith("postgres:")
    assert SERVICES["redis"]["image"].startswith("redis:")
    for name in ("postgres", "redis"):
        assert SERVICES[name]["healthcheck"]["test"]


def test_shared_urls_reach_the_compose_infrastructure():
    env = SERVICES["payment"]["environment"]
    assert re.match(r"^postgresql://[^@]+@postgres:5432/", env["DATABASE_URL"])
    assert env["REDIS_URL"].startswith("redis://redis:6379")


def test_dockerfile_copies_every_package_a_command_runs():
    dockerfile = (ROOT / "Dockerfile").read_text()
    for name in SERVICES:
        if "command" in SERVICES[name] and SERVICES[name]["command"][:2] == ["python", "-m"]:
            top = _command_module(name).split(".")[0]
            assert f"COPY {top} ./{top}" in dockerfile, f"Dockerfile does not copy {top}"
    assert "COPY svckit ./svckit" in dockerfile


def test_every_container_health_probe_module_exists():
    for name, spec in SERVICES.items():
        test = spec.get("healthcheck", {}).get("test", [])
        if "svckit.healthcheck" in test:
            assert importlib.util.find_spec("svckit.healthcheck") is not None, name


def test_the_psp_simulator_and_the_gateway_share_one_webhook_secret():
    sim, gateway = SERVICES["psp-sim"]["environment"], SERVICES["gateway"]["environment"]
    assert re.fullmatch(r"\$\{STRIPE_WEBHOOK_SECRET:\?[^}]+\}", sim["PSP_SIM_WEBHOOK_SECRET"])
    assert sim["PSP_SIM_WEBHOOK_SECRET"] == gateway["GATEWAY_STRIPE_WEBHOOK_SECRET"]
    # The payment service verifies each event itself, with the same secret.
    assert SERVICES["payment"]["environment"]["PAYMENT_PSP_WEBHOOK_SECRETS"] == sim["PSP_SIM_WEBHOOK_SECRET"]
    assert sim["PSP_SIM_WEBHOOK_URL"] == "http://gateway:8000/v1/webhooks/stripe"
    subscribed = set(sim["PSP_SIM_WEBHOOK_EVENTS"].split(","))
    assert subscribed == HANDLED_EVENT_TYPES, "the endpoint must receive exactly the events pay-in handles"
    assert SERVICES["payment"]["environment"]["PAYMENT_PSP_BASE_URL"] == "http://psp-sim:12111"


def test_services_that_call_the_books_point_at_them_and_wait_for_them():
    for name, prefix in (("payment", "PAYMENT_"), ("recon", "RECON_")):
        env = SERVICES[name]["environment"]
        assert env[f"{prefix}LEDGER_ADDR"] == "ledger:50052"
        assert env[f"{prefix}WALLET_ADDR"] == "wallet:50053"
        for dep in ("ledger", "wallet"):
            assert SERVICES[name]["depends_on"][dep]["condition"] == "service_healthy"


# ------------------------------------------------------------------ exposure, secrets, TLS files

TLS_IDENTITIES = {**{name: name for name in GRPC}, "gateway": "gateway"}
"""Each process that serves or calls gRPC, and the identity its certificate carries."""
ENV_REF = re.compile(r"^\$\{[A-Z_]+:\?[^}]+\}$")


def test_only_the_gateway_is_published_on_the_host():
    published = {name for name, spec in SERVICES.items() if spec.get("ports")}
    assert published == {"gateway"}
    assert _ports("gateway") == {8000}


def test_no_password_or_secret_is_written_in_the_file():
    assert not re.search(r"whsec_[A-Za-z0-9]{8}", COMPOSE_TEXT)  # no signing secret, even in a comment
    assert (
        SERVICES["postgres"]["environment"]["POSTGRES_PASSWORD"]
        == "${POSTGRES_PASSWORD:?set POSTGRES_PASSWORD}"
    )
    for name, spec in SERVICES.items():
        for key, value in (spec.get("environment") or {}).items():
            if key.endswith("_FILE"):
                continue  # paths, e.g. TLS_KEY_FILE
            if any(word in key for word in ("PASSWORD", "SECRET", "API_KEY")):
                assert ENV_REF.match(str(value)), f"{name}: {key} is not taken from the environment"
            if key.endswith("DATABASE_URL"):
                password = re.match(r"^postgresql://[^:]+:(.*)@", value)
                assert password and ENV_REF.match(password.group(1)), f"{name}: {key} has a literal password"


@pytest.mark.parametrize("name", sorted(TLS_IDENTITIES))
def test_every_process_gets_only_its_own_tls_files(name):
    identity = TLS_IDENTITIES[name]
    spec = SERVICES[name]
    env = spec["environment"]
    mounts = [m for m in spec.get("volumes", []) if isinstance(m, dict) and m.get("source") == "pki"]
    assert len(mounts) == 1, f"{name} must mount exactly its own folder of the pki volume"
    mount = mounts[0]
    assert mount["read_only"] is True
    assert mount["volume"]["subpath"] == identity  # its own key only: never the CA key or another's
    target = mount["target"]
    assert env["TLS_CA_FILE"] == f"{target}/ca.crt"
    assert env["TLS_CERT_FILE"] == f"{target}/{identity}.crt"
    assert env["TLS_KEY_FILE"] == f"{target}/{identity}.key"
    assert "GRPC_INSECURE" not in env and not any(k.endswith("_GRPC_INSECURE") for k in env)
    assert spec["depends_on"]["pki"]["condition"] == "service_completed_successfully"


def test_the_pki_one_shot_makes_and_exports_every_identity():
    from svckit.pki import IDENTITIES

    spec = SERVICES["pki"]
    command = spec["command"]
    assert command[:4] == ["python", "-m", "svckit.pki", "init"]
    ca_dir = command[command.index("--dir") + 1]
    export = command[command.index("--export") + 1]
    assert spec["volumes"] == [f"pki:{export}"] and ca_dir.startswith(export + "/")
    assert spec["restart"] == "no"
    assert set(TLS_IDENTITIES.values()) <= set(IDENTITIES)
    # Nobody else mounts the volume's root, where the CA key lives.
    for name, other in SERVICES.items():
        if name != "pki":
            assert not any(isinstance(m, str) and m.startswith("pki:") for m in other.get("volumes", [])), (
                name
            )
    assert "mkdir /pki && chown app /pki" in (ROOT / "Dockerfile").read_text()


@pytest.mark.parametrize("name", [*sorted(GRPC), "gateway"])
def test_every_service_runs_as_several_replicas_with_a_host_port_for_each_gateway(name):
    replicas = SERVICES[name]["deploy"]["replicas"]
    assert replicas >= 2
    assert "container_name" not in SERVICES[name]  # a fixed name would allow only one container
    if name == "gateway":
        low, high = SERVICES[name]["ports"][0].split(":")[0].split("-")
        assert int(high) - int(low) + 1 == replicas
