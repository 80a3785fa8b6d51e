"""Session-wide real infrastructure: PostgreSQL and Redis (embedded unless DATABASE_URL/REDIS_URL are
set), fresh databases for this session, and the four gRPC services started in-process on free ports."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import AsyncIterator, Awaitable, Generator, Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

# Before gRPC is imported (its core reads this then; svckit sets it too, but is imported after): tests
# start processes by fork (PostgreSQL, pg_ctl, servers) while gRPC calls are in flight, and with the
# core's fork handlers on such a child can die between fork and exec (chaos finding 11).
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

import grpc
import pytest
import pytest_asyncio

from ledger_svc import bootstrap as ledger_bootstrap
from ledger_svc.config import LedgerSettings
from payment_svc import bootstrap as payment_bootstrap
from payment_svc.config import PaymentSettings
from psp_sim.testing import DEFAULT_API_KEY, SimServer, run_simulator
from recon_svc import bootstrap as recon_bootstrap
from recon_svc.config import ReconSettings
from svckit.config import ServiceSettings
from svckit.logging import configure_logging
from svckit.runtime import ServiceHandle, start_service
from svckit.testing import Infra
from tests.chromium import CHROMEDRIVER, CHROMIUM, Browser, Chromium
from tests.credentials import GATEWAY_TEST_KEY, WEBHOOK_SECRET
from wallet_svc import bootstrap as wallet_bootstrap
from wallet_svc.config import WalletSettings

if TYPE_CHECKING:
    import httpx  # imported in the fixture: only the tests that use it pay for it

# At the end of the session, look for its secrets in every log line, database row and file it wrote;
# write down where a test hangs before its timeout ends it; and the one dev stack its tests share.
pytest_plugins = ["tests.secret_scan", "tests.watchdog", "tests.dev_stack", "pytester"]

_ROOT = Path(__file__).resolve().parents[1]
# Each checkout gets its own pytest temporary root. Every pytest session narrows its root's
# pytest-of-<user> to 0700, which cuts off the embedded PostgreSQL (an unprivileged user) of another
# session still running from another checkout on the same machine.
os.environ.setdefault(
    "PYTEST_DEBUG_TEMPROOT",
    str(
        Path(tempfile.gettempdir())
        / f"pytest-{hashlib.blake2b(str(_ROOT).encode(), digest_size=4).hexdigest()}"
    ),
)
Path(os.environ["PYTEST_DEBUG_TEMPROOT"]).mkdir(mode=0o755, exist_ok=True)


# Ledger and wallet first: the payment service settles into them and needs their addresses.
# Each entry: the service's settings class and its composition root (MIGRATIONS, build).
SERVICES: dict[str, tuple[type[ServiceSettings], ModuleType]] = {
    "ledger": (LedgerSettings, ledger_bootstrap),
    "wallet": (WalletSettings, wallet_bootstrap),
    "payment": (PaymentSettings, payment_bootstrap),
    # Last: it reads the other three (its internal checks read the payment service too).
    "recon": (ReconSettings, recon_bootstrap),
}


def configure_test_logging() -> None:
    """The session's logging: console lines on stderr, copied to the file the secret scan reads."""
    from tests import secret_scan  # imported late: it is this session's plugin (pytest_plugins)

    configure_logging("tests", "INFO", "console", copy_to=secret_scan.session_log_path())


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    configure_test_logging()
    started = Infra.start()
    yield started
    from tests import secret_scan

    # Before the databases are dropped: what the session stored must hold no secret either.
    secret_scan.scan_infra(started)
    started.stop()


@pytest.fixture(scope="session")
def shared_psp() -> Iterator[SimServer]:
    """The PSP simulator the session's payment service talks to."""
    from tests import secret_scan

    with run_simulator({"seed": 5, "webhook_secret": WEBHOOK_SECRET}) as server:
        secret_scan.register("shared PSP webhook secret", server.webhook_secret)
        yield server


@pytest.fixture(scope="session")
def gateway_port() -> int:
    """The shared gateway's port, chosen before the services start: the payment service sends buyers
    back from 3-D Secure to its ``/v1/payments/return``."""
    from svckit.devstack.infra import free_port

    return free_port()


async def bounded_teardown(step: Awaitable[object], what: str, seconds: float = 30) -> None:
    """A session teardown step that cannot hold the run: past ``seconds`` it is abandoned with a warning
    (the processes of the session end with it), so the report still comes out."""
    # asyncio.wait, not wait_for: wait_for would wait again for a step that ignores its cancellation.
    task = asyncio.ensure_future(step)
    _, pending = await asyncio.wait({task}, timeout=seconds)
    if pending:
        task.cancel()
        warnings.warn(f"{what} took over {seconds:.0f} s; abandoned at the end of the session", stacklevel=2)


@pytest_asyncio.fixture(scope="session")
async def services(infra: Infra, shared_psp, gateway_port: int) -> AsyncIterator[dict[str, ServiceHandle]]:
    """All four services, running for the whole session."""
    handles: dict[str, ServiceHandle] = {}
    for name, (settings_cls, boot) in SERVICES.items():
        # Settings fields of different types, by name, as Infra.settings takes them.
        overrides: dict[str, Any] = {}
        if name == "wallet":
            # Opt-in in production; on here so the concurrency and property tests drive the coalescer.
            overrides = {"coalesce_movements": True}
        if name == "recon":
            overrides = {
                "ledger_addr": handles["ledger"].address,
                "wallet_addr": handles["wallet"].address,
                "payment_addr": handles["payment"].address,
                "psp_base_url": shared_psp.base_url,
                "psp_api_key": DEFAULT_API_KEY,
            }
        if name == "payment":
            overrides = {
                "psp_base_url": shared_psp.base_url,
                "psp_api_key": DEFAULT_API_KEY,
                "ledger_addr": handles["ledger"].address,
                "wallet_addr": handles["wallet"].address,
                "events_namespace": f"{infra.prefix}-payments",
                "psp_webhook_secrets": [shared_psp.webhook_secret],
                "return_url": f"http://127.0.0.1:{gateway_port}/v1/payments/return",
            }
        settings = infra.settings(settings_cls, **overrides)
        handles[name] = await start_service(settings, boot.MIGRATIONS, boot.build)
    yield handles
    for name, handle in handles.items():
        await bounded_teardown(handle.stop(0.2), f"stopping the {name} service")


@pytest_asyncio.fixture(scope="session")
async def channels(
    infra: Infra, services: dict[str, ServiceHandle]
) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """A channel to each service as the ``payment`` identity (allowed to move money in the books)."""
    chans = {name: infra.channel(h.address) for name, h in services.items()}
    yield chans
    for chan in chans.values():
        await bounded_teardown(chan.close(), "closing a channel")


@pytest_asyncio.fixture(scope="session")
async def operator_channels(
    infra: Infra, services: dict[str, ServiceHandle]
) -> AsyncIterator[dict[str, grpc.aio.Channel]]:
    """A channel to each service as the ``operator`` identity (reads, account and dead-letter admin)."""
    chans = {name: infra.channel(h.address, "operator") for name, h in services.items()}
    yield chans
    for chan in chans.values():
        await bounded_teardown(chan.close(), "closing a channel")


@pytest_asyncio.fixture(scope="session")
async def gateway_url(
    infra: Infra, services: dict[str, ServiceHandle], shared_psp: SimServer, gateway_port: int
) -> AsyncIterator[str]:
    """The real gateway (uvicorn on a free port) in front of the in-process services; the shared PSP
    simulator delivers its signed webhooks to it."""

    import uvicorn

    from gateway.app import create_app
    from gateway.config import GatewaySettings

    port = gateway_port
    settings = infra.settings(
        GatewaySettings,
        environment="development",
        dev_api_key=GATEWAY_TEST_KEY,  # scopes payments+admin; the `http` client sends it
        http_port=port,
        payment_addr=services["payment"].address,
        ledger_addr=services["ledger"].address,
        wallet_addr=services["wallet"].address,
        recon_addr=services["recon"].address,
        max_body_bytes=64 * 1024,
        stripe_webhook_secret=shared_psp.webhook_secret,
    )
    config = uvicorn.Config(
        create_app(settings),
        host="127.0.0.1",
        port=port,
        loop="none",
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,  # a request still open at the end must not hold the session
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.02)
        if task.done():
            task.result()
    endpoint = shared_psp.admin.add_webhook_endpoint(
        f"http://127.0.0.1:{port}/v1/webhooks/stripe", secret=shared_psp.webhook_secret
    )
    yield f"http://127.0.0.1:{port}"
    shared_psp.admin.remove_webhook_endpoint(endpoint["id"])
    server.should_exit = True
    await bounded_teardown(task, "stopping the gateway")


@pytest_asyncio.fixture(scope="session")
async def http(gateway_url: str) -> AsyncIterator[httpx.AsyncClient]:
    import httpx

    headers = {"Authorization": f"Bearer {GATEWAY_TEST_KEY}"}
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10, headers=headers) as client:
        yield client


# ---------------------------------------------------------------- headless Chromium


def _ensure_chromium() -> str | None:
    """Return None when usable, else why not. Installs Debian's chromium when root."""
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "chromium/chromium-driver missing and not root: cannot apt-get install them"
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    # `make test` installs them before the run; a bare `pytest -n N` may reach here from several workers.
    with open("/tmp/mpay-chromium-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
            return None
        for cmd in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"],
        ):
            proc = subprocess.run(
                cmd,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
                stdin=subprocess.DEVNULL,
            )
            if proc.returncode != 0:
                return f"{' '.join(cmd)} failed: {proc.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chromium]:
    """A fresh headless Chromium for each module that uses one (tests/chromium.py says why)."""
    reason = _ensure_chromium()
    if reason:
        # Pay-in must be proven in a real browser at least once: a missing one fails, never skips.
        pytest.fail(f"no headless Chromium for the browser tests: {reason}")
    started = Chromium(tmp_path_factory.mktemp("chromium")).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def browser(chromium: Chromium) -> Browser:
    """The module's Chromium as this test's Selenium driver; the test's first page load is retried once
    on a fresh Chromium when the renderer or the driver times out."""
    return Browser(chromium)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed browser test's report carries the end of Chromium's log (and the page's console)."""
    report = yield
    used = getattr(item, "funcargs", {}).get("browser")
    if report.failed and isinstance(used, Browser):
        report.sections.append(("headless Chromium log", used.chromium.log_tail()))
    return report


DEV_STACK_MODULES = ("tests/test_devstack.py::", "tests/test_readme_commands.py::")
"""The modules of the tests that share the session's dev stack (tests/dev_stack.py)."""
BROWSER_MODULES = (
    "tests/psp_sim/test_browser.py::",
    "tests/e2e/test_buyer_pages_browser.py::",
    "tests/gateway/test_gateway_docs_offline.py::",
)
"""The modules with several browser tests: each goes to one worker, so it starts one Chromium (the
``chromium`` fixture is per module; a start costs one to three CPU-seconds)."""


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``load`` as usual, except that the dev stack's modules go to one worker as one unit, so they
    share one stack, and each browser module to one worker, so it shares one Chromium. (xdist's
    ``xdist_group`` cannot do it with pytest 9: it renames ``item._nodeid``, which pytest 9 no longer
    reads.)"""
    if config.getoption("dist") != "load":
        return None  # another mode asked for by name: xdist's own
    from xdist.scheduler import LoadScopeScheduling

    class DevStackOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            if nodeid.startswith(DEV_STACK_MODULES):
                return "dev stack"
            if nodeid.startswith(BROWSER_MODULES):
                return nodeid.split("::", 1)[0]
            return nodeid

    return DevStackOnOneWorker(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first: the parallel run hands tests out in this order, so the few that take tens of
    seconds start at once on every worker instead of leaving one worker busy after the others end.
    The tests that share the dev stack run by stage (tests/dev_stack.py): those that stop it last."""

    def order(item: pytest.Item) -> tuple[bool, int]:
        stage = item.get_closest_marker("dev_stack")
        return item.get_closest_marker("slow") is None, stage.args[0] if stage else 0

    items.sort(key=order)
