"""Every command of the README's "Poking at it" and "Operating it" sections, run against a real dev stack
(the session's, shared with tests/test_devstack.py: tests/dev_stack.py).

The commands are read from the README itself, so a command added there is run here (or must be named
in NOT_RUN with its reason). Only what has to differ in a test is rewritten: the ports and the data folder.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from markdown_it import MarkdownIt

from tests.dev_stack import ROOT, SharedStack

SECTIONS = ("Poking at it", "Operating it")

# Placeholder commands this test does not run, and why. A fresh stack has no dead letter, so there is
# no id to give them (the test asserts `dlq list` shows none, so this list stays honest).
NOT_RUN = {
    ".venv/bin/python -m svckit.events dlq show <id>": "no dead letter on a fresh stack",
    ".venv/bin/python -m svckit.events dlq replay <id>": "no dead letter on a fresh stack",
    '.venv/bin/python -m svckit.events dlq discard <id> --reason "refunded by hand"': (
        "no dead letter on a fresh stack"
    ),
}

# A cheap look at what each command printed: (text in the command, text its output must hold).
EXPECTED_OUTPUT = (
    ("/readyz", '"status": "ready"'),
    ("localhost:50051 list", "payments.v1.PaymentService"),
    ("describe ledger.v1.LedgerService", "rpc VerifyLedger"),
    ("LedgerService/CreateAccount", "asset:bank:operating/USD"),
    ("WalletService/GetWallet", "seller_1"),
    ("/v1/ledger/accounts", "expense:psp_fees/USD"),
    ("apikey create", "name:   checkout-web"),
    ("apikey list", "checkout-web"),
    ("apikey revoke", "revoked key_"),
    ("events streams", "dead letters: 0"),
    ("dlq list", "0 dead letter(s) shown"),
    ("dlq replay --all", "replayed 0 dead letter(s)"),
    ("CompareWalletsWithLedger", '"ok": true'),
    ("VerifyLedger", '"ok": true'),
    ("pki show", "operator"),
    ("psp_sim settlement", "balance_transaction_id"),
)


def readme_commands(readme: str) -> list[str]:
    """The shell commands of the ```sh blocks under the SECTIONS headings, one per logical line."""
    tokens = MarkdownIt("commonmark").parse(readme)
    section = None
    commands = []
    for i, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag == "h2":
            section = tokens[i + 1].content
        elif token.type == "fence" and token.info.strip() == "sh" and section in SECTIONS:
            joined = re.sub(r"\\\n\s*", "", token.content)  # backslash-continued lines are one command
            for line in joined.splitlines():
                command = re.sub(r"\s+#\s.*$", "", line).strip()  # a trailing comment is not the command's
                if command:
                    commands.append(command)
    return commands


@dataclass
class Stack:
    ports: dict[str, int]
    data_dir: Path
    summary: str  # what `make run` printed once ready

    def rewrite(self, command: str) -> str:
        """The README command, on this stack's ports and data folder."""
        grpc = {"50051": "payment", "50052": "ledger", "50053": "wallet", "50054": "recon"}
        command = command.replace("localhost:8000", f"localhost:{self.ports['gateway']}")
        command = re.sub(r"localhost:(5005[1-4])\b", lambda m: f"localhost:{self.ports[grpc[m[1]]]}", command)
        command = command.replace("12111", str(self.ports["psp"]))
        return command.replace(".data/", f"{self.data_dir}/")

    def env(self) -> dict[str, str]:
        # The CLIs find PostgreSQL, Valkey and the simulator at their default ports; `make run` uses those.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_", "REDIS_", "EVENTS_"))}
        env.update({
            "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{self.ports['pg']}/postgres",
            "REDIS_URL": f"redis://127.0.0.1:{self.ports['redis']}/0",
            "PSP_SIM_URL": f"http://127.0.0.1:{self.ports['psp']}",
        })  # fmt: skip
        return env


@pytest.fixture
def stack(dev_stack: SharedStack) -> Stack:
    running = dev_stack.running()
    return Stack(running.ports, running.data_dir, running.summary)


def test_the_readme_sections_hold_commands_and_only_the_listed_ones_are_not_run():
    commands = readme_commands((ROOT / "README.md").read_text())
    assert len(commands) >= 15
    placeholders = [c for c in commands if re.search(r"<[a-z_]+>", c)]
    # apikey revoke <id> is filled from `apikey list`; every other placeholder command is in NOT_RUN.
    assert sorted(c for c in placeholders if "apikey revoke" not in c) == sorted(NOT_RUN)
    assert all(any(marker in c for c in commands) for marker, _ in EXPECTED_OUTPUT)


@pytest.mark.slow
@pytest.mark.dev_stack(1)
def test_every_readme_command_runs_against_the_dev_stack(stack):
    failures = []
    key_id = None
    for readme_command in readme_commands((ROOT / "README.md").read_text()):
        if readme_command in NOT_RUN:
            continue
        command = stack.rewrite(readme_command)
        if "apikey revoke <id>" in command:
            assert key_id, "apikey list printed no checkout-web key to revoke"
            command = command.replace("<id>", key_id)
        assert not re.search(r"<[a-z_]+>", command), f"unfilled placeholder in {readme_command!r}"
        result = subprocess.run(
            ["bash", "-c", command], cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=60,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip
        expected = [text for marker, text in EXPECTED_OUTPUT if marker in command]
        if result.returncode != 0 or not all(text in result.stdout for text in expected):
            failures.append(
                f"{readme_command}\n  ran: {command}\n  exit {result.returncode}, expected {expected}\n"
                f"  stdout: {result.stdout[-800:]}\n  stderr: {result.stderr[-800:]}"
            )
        if "apikey list" in command:
            key_id = next(
                (line.split("\t")[0] for line in result.stdout.splitlines() if "\tcheckout-web\t" in line),
                None,
            )
    assert failures == [], "\n\n".join(failures)


def _run(stack: Stack, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=stack.env(), capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.dev_stack(1)
def test_pay_in_a_minute_as_the_readme_walks_it(stack):
    """The README's "Pay in a minute": the checkout curl `make run` printed, the hosted page paid with
    the test card, then the README's own curl shows both orders `success`."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Pay in a minute", 1)[1].split("\n## ", 1)[0]
    (status_curl,) = [c for c in re.findall(r"```sh\n(.*?)```", section, re.S)]
    pay_line = next(line for line in stack.summary.splitlines() if line.startswith("Pay:  curl "))
    created = _run(stack, pay_line.removeprefix("Pay:  "))
    assert created.returncode == 0, created.stderr
    answer = json.loads(created.stdout)
    assert answer["hosted_page_url"], answer
    paid = httpx.post(
        answer["hosted_page_url"],
        data={"cardnumber": "4242424242424242", "exp": "12/34", "cvc": "123", "action": "pay"},
        follow_redirects=False,
        timeout=10,
    )
    assert paid.status_code in (200, 302, 303), paid.text
    command = stack.rewrite(status_curl.strip()).replace("<checkout_id>", answer["checkout_id"])
    key = re.search(r"API key \(development[^)]*\): (\S+)", stack.summary)
    assert key, stack.summary
    deadline = time.monotonic() + 30
    while True:
        shown = _run(stack, f"KEY={key[1]}; {command}")
        assert shown.returncode == 0, shown.stderr
        orders = json.loads(shown.stdout)["payment_orders"]
        if all(o["state"] == "success" and o["wallet_updated"] and o["ledger_updated"] for o in orders):
            break
        assert time.monotonic() < deadline, f"not settled: {orders}"
        time.sleep(0.5)
    assert len(orders) == 2
