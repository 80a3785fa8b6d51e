"""Operator console page latency with 1,000,000 payment orders.

Starts the development stack (``python -m svckit.devstack run``: durable PostgreSQL and Valkey, the four
services, the gateway) in a temporary folder, then seeds the payment database directly with PostgreSQL
``COPY ... FROM STDIN`` (psycopg's copy protocol: no service involved, so seeding a million orders takes
tens of seconds, not hours):

- 500,000 checkouts (``payment_events``) of two orders each: 1,000,000 ``payment_orders``, created
  evenly over the last 30 days; 90 % SUCCESS, 5 % FAILED (two decline codes), 2 % PARTIALLY_REFUNDED,
  1 % REFUNDED, 2 % PENDING; 5,000 sellers plus one big seller with 10 % of all orders; 200,000 buyers;
- one ``order_transitions`` row per order (its timeline);
- 20,000 reconciliation mismatches in the recon database, the older 90 % resolved, the newest 10 % open;

then ``ANALYZE``. It signs in to the console with the stack's development key (scopes payments+admin)
and requests each page ``--requests`` times, one at a time, with a fresh id or filter value each time
where the page takes one, and prints p50/p99 per page. Finally it runs ``EXPLAIN ANALYZE`` of the SQL
behind the main listings to show how much of a page is the database.

    python benchmarks/bench_console.py [--orders 1000000] [--requests 300]

Goal: p99 < 200 ms for every page. Exits non-zero when a page answers anything but 200.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.bench_payin import start_stack  # noqa: E402  (the same stack start as the pay-in benchmark)

DAYS = 30
SELLERS = 5000
BUYERS = 200_000
BIG_SELLER = "seller_big"
MISMATCHES = 20_000
_STATES = [("SUCCESS", 90), ("FAILED", 5), ("PARTIALLY_REFUNDED", 2), ("REFUNDED", 1), ("PENDING", 2)]
_DECLINES = ("insufficient_funds", "generic_decline")


def _state_of(i: int) -> str:
    slot = i % 100
    for state, share in _STATES:
        if slot < share:
            return state
        slot -= share
    raise AssertionError(slot)


def seed_payments(pg: str, orders: int) -> float:
    """COPY the checkouts, orders and transitions; returns the seconds it took (ANALYZE included)."""
    started = time.perf_counter()
    now = datetime.now(UTC)
    checkouts = orders // 2
    span = timedelta(days=DAYS).total_seconds()
    rng = random.Random(7)
    with psycopg.connect(pg, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY payment_events (checkout_id, buyer_info, created_at, buyer_id, mode, currency, "
            "total_minor) FROM STDIN"
        ) as copy:
            for c in range(checkouts):
                at = now - timedelta(seconds=span * (1 - c / checkouts))
                buyer = f"buyer_{rng.randrange(BUYERS)}"
                info = json.dumps({"buyer_id": buyer, "name": f"Buyer {c}", "country": "US"})
                copy.write_row((f"chk_b{c}", info, at, buyer, "DIRECT", "USD", 5000))
        with cur.copy(
            "COPY payment_orders (payment_order_id, checkout_id, seller_account, amount_minor, currency, "
            "state, created_at, updated_at, psp_reference, failure_code, failure_message, "
            "commission_minor, refunded_minor, wallet_updated, ledger_updated, line_items) FROM STDIN"
        ) as copy:
            for i in range(checkouts * 2):
                c = i // 2
                at = now - timedelta(seconds=span * (1 - c / checkouts))
                state = _state_of(rng.randrange(100))
                seller = BIG_SELLER if rng.random() < 0.1 else f"seller_{rng.randrange(SELLERS)}"
                failed = state == "FAILED"
                refunded = {"REFUNDED": 2500, "PARTIALLY_REFUNDED": 500}.get(state, 0)
                copy.write_row((
                    f"chk_b{c}_{i % 2}", f"chk_b{c}", seller, 2500, "USD", state, at, at,
                    f"pi_b{i}", _DECLINES[i % 2] if failed else None,
                    "Your card was declined." if failed else None,
                    250, refunded, not failed, not failed, '[{"name": "Lamp", "quantity": 1}]',
                ))  # fmt: skip
        with cur.copy(
            "COPY order_transitions (payment_order_id, from_state, to_state, cause, detail, created_at) "
            "FROM STDIN"
        ) as copy:
            for i in range(checkouts * 2):
                c = i // 2
                at = now - timedelta(seconds=span * (1 - c / checkouts))
                copy.write_row((f"chk_b{c}_{i % 2}", "NOT_STARTED", "SUCCESS", "psp:charge", "", at))
        cur.execute("ANALYZE payment_events")
        cur.execute("ANALYZE payment_orders")
        cur.execute("ANALYZE order_transitions")
    return time.perf_counter() - started


def seed_recon(pg: str) -> None:
    now = datetime.now(UTC)
    with psycopg.connect(pg, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(
            "COPY recon_mismatches (mismatch_id, run_id, code, classification, state, balance_transaction_id, "
            "our_reference, currency, amount_minor, differences, line, resolution_code, created_at) FROM STDIN"
        ) as copy:
            for i in range(MISMATCHES):
                open_ = i >= MISMATCHES * 9 // 10
                copy.write_row((
                    f"mm_bench{i:06d}", f"rr_bench{i // 500}", "AMOUNT_DIFFERS", "manual",
                    "open" if open_ else "resolved", f"txn_b{i}", f"order:chk_b{i}_0", "USD", 2500 + i,
                    json.dumps([{"field": "gross", "ours": "25.00", "theirs": "25.01"}]), i % 500 + 2,
                    None if open_ else "written_off", now - timedelta(minutes=MISMATCHES - i),
                ))  # fmt: skip
        cur.execute("ANALYZE recon_mismatches")


def sign_in(http: httpx.Client, key: str) -> None:
    form = http.get("/console/sign-in")
    token = re.search(r'name="signin" value="([^"]+)"', form.text)
    assert token, "no sign-in form"
    r = http.post("/console/sign-in", data={"signin": token.group(1), "api_key": key})
    assert r.status_code == 303, r.text


def pages(orders: int, rng: random.Random) -> dict[str, object]:
    """Page name -> a function giving the next URL to request."""
    checkouts = orders // 2
    ten_days = (datetime.now(UTC) - timedelta(days=10)).date().isoformat()
    return {
        "payments: big seller, failed": lambda: f"/console/payments?seller_account={BIG_SELLER}&state=failed",
        "payments: by buyer": lambda: f"/console/payments?buyer_id=buyer_{rng.randrange(BUYERS)}",
        "payments: refunded, last 10 days": lambda: f"/console/payments?state=refunded&created_gte={ten_days}",
        "payments: all, newest": lambda: "/console/payments",
        "order page": lambda: f"/console/payments/chk_b{rng.randrange(checkouts)}_{rng.randrange(2)}",
        "seller page (seller's orders)": lambda: f"/console/payments?seller_account=seller_{rng.randrange(SELLERS)}",
        "recon queue (open)": lambda: "/console/reconciliation/mismatches?state=open",
        "recon queue (run, amount)": lambda: (
            f"/console/reconciliation/mismatches?run_id=rr_bench{rng.randrange(40)}&state=&min_amount_minor=3000"
        ),
        "overview": lambda: "/console/overview",
    }  # fmt: skip


def measure(http: httpx.Client, next_url, n: int) -> dict[str, float]:
    for _ in range(5):  # warm-up: connections, plans, caches
        http.get(next_url())
    times = []
    for _ in range(n):
        url = next_url()
        t = time.perf_counter()
        r = http.get(url)
        times.append((time.perf_counter() - t) * 1000)
        if r.status_code != 200:
            raise SystemExit(f"{url} answered {r.status_code}: {r.text[:300]}")
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1),
        "max_ms": round(times[-1], 1),
    }


_EXPLAINED = {
    "seller + state (ListPaymentOrders)": (
        "payments",
        f"SELECT * FROM payment_orders WHERE seller_account = '{BIG_SELLER}' AND state = 'FAILED' "
        "ORDER BY created_at DESC, payment_order_id DESC LIMIT 26",
    ),
    "buyer (ListPaymentOrders)": (
        "payments",
        "SELECT o.* FROM payment_orders o JOIN payment_events e ON e.checkout_id = o.checkout_id "
        "WHERE e.buyer_id = 'buyer_4242' ORDER BY o.created_at DESC, o.payment_order_id DESC LIMIT 26",
    ),
    "state only (ListPaymentOrders)": (
        "payments",
        "SELECT * FROM payment_orders WHERE state = 'REFUNDED' "
        "ORDER BY created_at DESC, payment_order_id DESC LIMIT 26",
    ),
    "overview (GetPaymentStats, 3 h)": (
        "payments",
        "SELECT to_timestamp(floor(extract(epoch FROM created_at) / 300) * 300) b, count(*), "
        "count(*) FILTER (WHERE state IN ('SUCCESS','PARTIALLY_REFUNDED','REFUNDED')), "
        "count(*) FILTER (WHERE state = 'FAILED') FROM payment_orders "
        "WHERE created_at >= now() - interval '3 hours' GROUP BY b ORDER BY b",
    ),
    "open mismatches (ListMismatches)": (
        "recon",
        "SELECT * FROM recon_mismatches WHERE state = 'open' ORDER BY id LIMIT 51",
    ),
}


def explain(pg_base: str) -> dict[str, float]:
    """Execution time of each listing's SQL (ms), as the repositories write it."""
    out = {}
    for name, (db, sql) in _EXPLAINED.items():
        with psycopg.connect(f"{pg_base}/{db}") as conn:
            plan = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}").fetchone()[0][0]  # type: ignore[index]
            out[name] = round(plan["Execution Time"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=300, help="requests per page")
    ns = parser.parse_args()
    rng = random.Random(11)
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        data = Path(tmp)
        stack, ports = start_stack(data, 1)
        try:
            pg_base = f"postgresql://postgres@127.0.0.1:{ports['pg']}"
            seeded_in = seed_payments(f"{pg_base}/payments", ns.orders)
            seed_recon(f"{pg_base}/recon")
            key = (data / "dev_api_key").read_text().strip()
            results = {}
            with httpx.Client(base_url=f"http://127.0.0.1:{ports['gateway']}", timeout=30) as http:
                sign_in(http, key)
                for name, next_url in pages(ns.orders, rng).items():
                    results[name] = measure(http, next_url, ns.requests)
                    print(f"{name:36} {results[name]}", flush=True)
            db_ms = explain(pg_base)
        finally:
            stack.send_signal(signal.SIGINT)
            stack.wait(60)
    print(json.dumps({"orders": ns.orders, "seed_seconds": round(seeded_in, 1), "pages": results,
                      "database_ms": db_ms}, indent=2))  # fmt: skip
    slow = [n for n, r in results.items() if r["p99_ms"] >= 200]
    if slow:
        print(f"p99 at or over 200 ms: {', '.join(slow)}", file=sys.stderr)


if __name__ == "__main__":
    main()
