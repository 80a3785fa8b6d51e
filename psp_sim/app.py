"""The ASGI application: auth, idempotency, fault injection, request ids and access logs around the
handlers in ``api.py``.

A hand-rolled ASGI callable rather than a framework: on the create-and-confirm hot path it saves the
per-request routing, form and response objects, which is what keeps one process above 1,500 req/s.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hmac
import ipaddress
import json
import logging
import random
import time
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO
from urllib.parse import parse_qsl

from psp_sim.api import Context, Request, Response, Router, unknown_route
from psp_sim.config import SimConfig
from psp_sim.engine import Simulator
from psp_sim.errors import StripeError
from psp_sim.faults import FaultEngine, FaultRule
from psp_sim.forms import FormError, parse_pairs
from psp_sim.idempotency import CODEC as IDEMPOTENCY_CODEC
from psp_sim.idempotency import IdempotencyStore, fingerprint
from psp_sim.webhooks import WebhookDispatcher

error_log = logging.getLogger("psp_sim.error")
_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode

_JSON = b"application/json"
_COMMON = [(b"server", b"psp-sim"), (b"stripe-version", b"2026-10-28.endive")]
_CORS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-headers", b"authorization, content-type, idempotency-key, stripe-account"),
    (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
]


class AccessLog:
    """One JSON line per request, buffered and written by the app's ticker (every 250 ms) and at shutdown.

    Going through ``logging`` per request took a large share of a create-and-confirm's CPU.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self._lines: list[str] = []

    def write(self, entry: dict[str, Any]) -> None:
        self._lines.append(_encode(entry))
        if len(self._lines) >= 2000:
            self.flush()

    def flush(self) -> None:
        if self._lines and self.stream is not None:
            lines, self._lines = self._lines, []
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()


class _Drop(Exception):
    """Close the connection without an answer (fault injection)."""


class SimApp:
    def __init__(self, config: SimConfig | None = None, access_stream: TextIO | None = None) -> None:
        self.config = config or SimConfig()
        self.access_log = AccessLog(access_stream)
        self.sim = Simulator(self.config, self.config.state_file)
        self.faults = FaultEngine(
            self.config.fault_seed if self.config.fault_seed is not None else self.config.seed
        )
        if self.config.faults:
            self.faults.configure(self.config.faults)
        self.webhooks = WebhookDispatcher(self.sim, self.faults)
        self.webhooks.save = self.save_soon
        self.idempotency = IdempotencyStore(self.sim.persistent("idempotency", IDEMPOTENCY_CODEC))
        self.ctx = Context(self.sim, self.faults, self.webhooks, self.idempotency)
        self.router = Router()
        self._ticker: asyncio.Task[None] | None = None
        # One writer thread: SQLite commits (fsync) happen off the event loop, in staging order.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="psp-sim-state")
        self._flushing: asyncio.Task[None] | None = None

    # ---- ASGI ------------------------------------------------------------------------------
    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.startup()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def startup(self) -> None:
        await self.webhooks.start()
        self._ticker = asyncio.create_task(self._tick(), name="psp-sim-clock")

    async def shutdown(self) -> None:
        if self._ticker:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.webhooks.stop()
        if self._flushing is not None:
            with contextlib.suppress(Exception):
                await self._flushing
        self.sim.commit()
        self.sim.store.close()
        self._writer.shutdown()
        self.access_log.flush()
        logging.getLogger("psp_sim").info('{"event":"stop","pending_webhooks":%d}', self.webhooks.pending())

    async def _tick(self) -> None:
        # Simulated time also flows in real time; timers (payouts, refunds, expiry) fire without a request.
        ticks = 0
        while True:
            await asyncio.sleep(0.25)
            ticks += 1
            self.access_log.flush()
            if ticks % 2 == 0:
                # State only grows and holds no garbage cycles; moving it out of the collector's view keeps
                # full collections from rescanning every stored object (multi-100 ms pauses under load).
                gc.freeze()
            try:
                if self.sim.run_due():
                    self.webhooks.wake()
                self.save_soon()
            except Exception:  # a bug in one timer (or a full disk) must not stop the clock
                error_log.exception("timer failed")

    async def _http(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        method = scope["method"]
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        # Not from the seeded RNG (GETs would shift every later object id), not from urandom (a syscall).
        request_id = f"req_{random.getrandbits(56):014x}"
        status, payload, ctype = 500, b"", _JSON
        extra: list[tuple[bytes, bytes]] = []
        replayed = False
        try:
            status, payload, ctype, extra, replayed = await self._dispatch(
                method, path, scope, headers, body, request_id
            )
        except _Drop:
            await self._durable(method, path)  # the change was made, only its answer is lost
            await _drop_connection(send)
            self._log(method, path, 0, request_id, started, headers, dropped=True)
            return
        if not await self._durable(method, path):
            status, payload, ctype, extra = self._error(
                StripeError(500, "api_error", "An unknown error occurred", should_retry=True)
            )
            replayed = False
        out = [
            (b"content-type", ctype),
            (b"content-length", str(len(payload)).encode()),
            (b"request-id", request_id.encode()),
            *_COMMON,
            *extra,
        ]
        if replayed:
            out.append((b"idempotent-replayed", b"true"))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": payload})
        self._log(method, path, status, request_id, started, headers, replayed=replayed)

    # ---- durability (see psp_sim/store.py) --------------------------------------------------
    def save_soon(self) -> None:
        """Stage what changed and make sure a write will take it (background work: nobody waits)."""
        self.sim.stage()
        self._kick()

    def _kick(self) -> None:
        store = self.sim.store
        if store.written < store.staged and (self._flushing is None or self._flushing.done()):
            self._flushing = asyncio.get_running_loop().create_task(self._flush(), name="psp-sim-save")

    async def _flush(self) -> None:
        # Everything staged while a write runs goes into the next one: one fsync for many requests.
        store = self.sim.store
        loop = asyncio.get_running_loop()
        while store.written < store.staged:
            batches, upto = store.take()
            await loop.run_in_executor(self._writer, store.write, batches, upto)

    async def _durable(self, method: str, path: str) -> bool:
        """Wait until the request's changes, and all it may have seen, are on disk; False if that failed."""
        if method == "GET" and path.startswith("/v1/"):
            self.sim.forget_reads()  # Stripe's GETs change nothing: what they looked at need not be saved
        store = self.sim.store
        try:
            target = self.sim.stage()
            while store.written < target:
                self._kick()
                assert self._flushing is not None
                await asyncio.shield(self._flushing)
        except Exception:
            error_log.exception("could not save the simulator state: %s %s", method, path)
            return False
        return True

    def _log(
        self,
        method: str,
        path: str,
        status: int,
        request_id: str,
        started: float,
        headers: dict[str, str],
        **extra: Any,
    ) -> None:
        if self.access_log.stream is not None:
            self.access_log.write(
                {
                    "event": "request",
                    "method": method,
                    "path": path,
                    "status": status,
                    "request_id": request_id,
                    "idempotency_key": headers.get("idempotency-key"),
                    "account": headers.get("stripe-account"),
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3),
                    **extra,
                }
            )

    async def _dispatch(
        self,
        method: str,
        path: str,
        scope: MutableMapping[str, Any],
        headers: dict[str, str],
        body: bytes,
        request_id: str,
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]], bool]:
        sim = self.sim
        if self.config.public_url is None and "host" in headers:
            sim.public_base = f"{scope.get('scheme', 'http')}://{headers['host']}"
        sim.run_due()
        sim.stage()  # on its own: what timers changed in place must not be taken for a GET's reads
        if method == "OPTIONS":
            return 204, b"", b"text/plain", list(_CORS), False
        route = self.router.match(method, path)
        if not route:
            err = unknown_route(method, path)
            if route is False:
                err = StripeError(405, "invalid_request_error", f"Method {method} not allowed for {path}.")
            return (*self._error(err), False)
        handler, kind, args = route
        if kind == "admin" and path != "/_sim/health":
            refused = self._admin_refusal(scope, headers)
            if refused is not None:
                return (*self._error(refused), False)
        query_raw = scope.get("query_string", b"")
        try:
            query = (
                parse_pairs(parse_qsl(query_raw.decode("latin-1"), keep_blank_values=True))
                if query_raw
                else {}
            )
        except FormError as e:
            return (*self._error(StripeError(400, "invalid_request_error", str(e), param=e.param)), False)
        req = Request(method, path, query, {}, body, headers, request_id)
        if kind != "api":
            return self._run_plain(handler, req, args)
        return await self._run_api(handler, req, args)

    def _admin_refusal(self, scope: MutableMapping[str, Any], headers: dict[str, str]) -> StripeError | None:
        """Why this client may not use the admin routes (they can reset state, inject faults and see
        every object), or None. With an admin key set, the key is needed from everyone; without
        one, only loopback clients are served (a proxy on this host counts as loopback)."""
        expected = self.config.admin_key
        if expected:
            auth = headers.get("authorization", "")
            given = auth[7:] if auth.startswith("Bearer ") else ""
            if hmac.compare_digest(given.encode(), expected.encode()):
                return None
            return StripeError(
                401,
                "invalid_request_error",
                "The /_sim/* admin routes need the simulator's admin key: "
                "'Authorization: Bearer <PSP_SIM_ADMIN_KEY>'.",
            )
        if _is_loopback(scope.get("client")):
            return None
        return StripeError(
            403,
            "invalid_request_error",
            "The /_sim/* admin routes answer loopback clients only; "
            "set PSP_SIM_ADMIN_KEY on the simulator to use them from elsewhere.",
        )

    def _run_plain(self, handler: Any, req: Request, args: tuple[str, ...]) -> Any:
        try:
            result = handler(self.ctx, req, *args)
        except StripeError as e:
            return (*self._error(e), False)
        if isinstance(result, Response):
            return result.status, result.body, result.content_type.encode(), result.headers, False
        return 200, _encode(result).encode(), _JSON, [], False

    async def _run_api(
        self, handler: Any, req: Request, args: tuple[str, ...]
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]], bool]:
        headers = req.headers
        key = _api_key(headers.get("authorization", ""))
        publishable_ok = req.path == "/v1/payment_methods" and req.method == "POST"
        if not (key.startswith(("sk_test_", "rk_test_")) or (publishable_ok and key.startswith("pk_test_"))):
            shown = (key[:8] + "*" * max(0, len(key) - 12) + key[-4:]) if key else ""
            message = (
                f"Invalid API Key provided: {shown}"
                if key
                else (
                    "You did not provide an API key. You need to provide your API key in the Authorization header, "
                    "using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY')."
                )
            )
            status, payload, ctype, hdrs = self._error(StripeError(401, "invalid_request_error", message))
            return status, payload, ctype, [*hdrs, (b"www-authenticate", b'Basic realm="Stripe"')], False
        req.account = headers.get("stripe-account") or None
        extra_cors = list(_CORS) if publishable_ok else []
        faults = self.faults.http(req.method, req.path) if self.faults.active else ()
        for rule in faults:
            if rule.kind == "http_429":
                self._record(rule, req)
                err = StripeError(
                    429,
                    "invalid_request_error",
                    "Too many requests hit the API too quickly.",
                    code="rate_limit",
                    should_retry=rule.should_retry,
                )
                return (*self._error(err), False)
            if rule.kind == "connection_drop":
                self._record(rule, req)
                raise _Drop
        try:
            if req.method == "POST":
                req.body = parse_pairs(
                    parse_qsl(req.raw_body.decode("utf-8", "replace"), keep_blank_values=True)
                )
        except FormError as e:
            return (*self._error(StripeError(400, "invalid_request_error", str(e), param=e.param)), False)

        idem_key = headers.get("idempotency-key") if req.method == "POST" else None
        scope_id = f"{key}|{req.account or ''}"
        if idem_key:
            req.idempotency_key = idem_key
            try:
                entry = self.idempotency.begin(
                    scope_id, idem_key, fingerprint(req.method, req.path, req.raw_body), self.sim.now()
                )
            except StripeError as e:
                return (*self._error(e, [(b"idempotency-key", idem_key.encode())]), False)
            if entry is not None:
                status, payload = entry.status or 500, entry.body
                return status, payload, _JSON, [(b"idempotency-key", idem_key.encode()), *extra_cors], True
            extra_cors.append((b"idempotency-key", idem_key.encode()))
        try:
            for rule in faults:
                if rule.kind == "latency":
                    self._record(rule, req, latency_ms=rule.latency_ms)
                    await asyncio.sleep(rule.latency_ms / 1000)
            for rule in faults:
                if rule.kind == "http_500":
                    self._record(rule, req)
                    err = StripeError(
                        500, "api_error", "An unknown error occurred", should_retry=rule.should_retry
                    )
                    status, payload, ctype, hdrs = self._error(err)
                    if idem_key:
                        self.idempotency.finish(scope_id, idem_key, status, payload, self.sim.now())
                    return status, payload, ctype, hdrs + extra_cors, False
            status, payload, ctype, hdrs, stored = self._execute(handler, req, args)
        except BaseException:
            if idem_key:
                self.idempotency.forget(scope_id, idem_key)
            raise
        if idem_key:
            if stored:
                self.idempotency.finish(scope_id, idem_key, status, payload, self.sim.now())
            else:
                self.idempotency.forget(scope_id, idem_key)
        for rule in faults:
            if rule.kind == "drop_after_commit":
                self._record(rule, req, committed_status=status, object_id=_object_id(payload))
                self.sim.clock.advance(rule.advance_seconds)
                raise _Drop
            if rule.kind == "error_after_commit":
                self._record(rule, req, committed_status=status, object_id=_object_id(payload))
                self.sim.clock.advance(rule.advance_seconds)
                err = StripeError(
                    500, "api_error", "An unknown error occurred", should_retry=rule.should_retry
                )
                status, payload, ctype, hdrs = self._error(err)
                if idem_key:
                    self.idempotency.finish(scope_id, idem_key, status, payload, self.sim.now())
                break
        return status, payload, ctype, hdrs + extra_cors, False

    def _execute(
        self, handler: Any, req: Request, args: tuple[str, ...]
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]], bool]:
        """Run the handler with the request recorded on emitted events; the flag says whether to store it."""
        self.sim.current_request = (req.request_id, req.idempotency_key)
        try:
            result = handler(self.ctx, req, *args)
        except StripeError as e:
            return (*self._error(e), e.stored or e.status >= 500)
        except Exception:
            # Stripe stores 500s under the key too; a bug here must still answer in Stripe's shape.
            error_log.exception("handler failed: %s %s", req.method, req.path)
            return (*self._error(StripeError(500, "api_error", "An unknown error occurred")), True)
        finally:
            self.sim.current_request = (None, None)
        if isinstance(result, Response):
            return result.status, result.body, result.content_type.encode(), result.headers, True
        return 200, _encode(result).encode(), _JSON, [], True

    def _error(
        self, err: StripeError, headers: list[tuple[bytes, bytes]] | None = None
    ) -> tuple[int, bytes, bytes, list[tuple[bytes, bytes]]]:
        hdrs = list(headers or [])
        if err.should_retry is not None:
            hdrs.append((b"stripe-should-retry", b"true" if err.should_retry else b"false"))
        return err.status, _encode(err.body()).encode(), _JSON, hdrs

    def _record(self, rule: FaultRule, req: Request, **detail: Any) -> None:
        self.faults.record(
            rule,
            self.sim.now(),
            method=req.method,
            path=req.path,
            request_id=req.request_id,
            idempotency_key=req.headers.get("idempotency-key"),
            **detail,
        )


def _api_key(authorization: str) -> str:
    """The secret key as Stripe takes it: ``Bearer <key>``, or HTTP Basic with the key as the user name
    (``curl -u sk_test_…:``; the password is ignored). Anything else: no key."""
    scheme, _, credentials = authorization.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer":
        return credentials.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return ""
        return decoded.partition(":")[0]
    return ""


def _is_loopback(client: Any) -> bool:
    try:
        return ipaddress.ip_address(client[0]).is_loopback
    except (TypeError, IndexError, ValueError):
        return False  # no peer address (e.g. a Unix socket) or not an IP: not known to be local


def _object_id(payload: bytes) -> str | None:
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if "error" in data:
        pi = data["error"].get("payment_intent") or {}
        return pi.get("id")
    return data.get("id")


async def _drop_connection(send: Any) -> None:
    # uvicorn passes its per-request cycle's bound ``send``; aborting its transport resets the TCP
    # connection before any byte of the answer, which the SDK sees as a connection error.
    transport = getattr(getattr(send, "__self__", None), "transport", None)
    if transport is not None:
        transport.abort()
        await asyncio.sleep(0)
        return
    await send({"type": "http.response.start", "status": 500, "headers": [(b"connection", b"close")]})
    await send({"type": "http.response.body", "body": b""})


def create_app(config: SimConfig | None = None, access_stream: TextIO | None = None) -> SimApp:
    """The ASGI app; ``access_stream`` (e.g. ``sys.stderr``) turns on the per-request JSON log."""
    return SimApp(config, access_stream)
