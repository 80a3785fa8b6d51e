"""The SQL text of the payment service's hot statements: one-statement units of work run on plain
psycopg connections (the unit of work's ``statement`` kind, or the driver connection under a
transaction), in psycopg's ``%(name)s`` style. Only :mod:`payment_svc.repository` runs them."""

from __future__ import annotations

from payment_svc.domain import CAPTURED
from svckit.events import outbox

CAPTURED_STATES = tuple(sorted(state.value for state in CAPTURED))

INSERT_CHECKOUT = (
    "WITH event AS ("
    " INSERT INTO payment_events (checkout_id, buyer_id, buyer_info, mode, currency, total_minor,"
    " success_url, cancel_url, payment_method, idempotency_key, fingerprint, risk_verdict, risk_rule)"
    " VALUES (%(checkout_id)s, %(buyer_id)s, CAST(%(buyer_info)s AS json), %(mode)s, %(currency)s,"
    " %(total_minor)s, %(success_url)s, %(cancel_url)s, %(payment_method)s, %(idempotency_key)s,"
    " %(fingerprint)s, %(risk_verdict)s, %(risk_rule)s)"
    " RETURNING checkout_id, currency, created_at"
    "), orders AS ("
    " INSERT INTO payment_orders"
    " (payment_order_id, checkout_id, seller_account, amount_minor, currency, state, next_check_at,"
    " line_items)"
    " SELECT o.id, e.checkout_id, o.seller, o.amount, e.currency, 'NOT_STARTED', %(next_check_at)s,"
    " CAST(o.items AS json)"
    " FROM event AS e,"
    " unnest(CAST(%(order_ids)s AS text[]), CAST(%(sellers)s AS text[]), CAST(%(amounts)s AS bigint[]),"
    " CAST(%(line_items)s AS text[]))"
    " AS o(id, seller, amount, items)"
    " RETURNING *"
    "), history AS ("
    " INSERT INTO order_transitions (payment_order_id, from_state, to_state, cause, detail)"
    " SELECT payment_order_id, NULL, state, 'created', 'checkout ' || checkout_id FROM orders"
    ") SELECT orders.*, event.created_at AS event_created_at FROM orders, event ORDER BY payment_order_id"
)


INTENT_ALL_CAPTURED = (
    "SELECT count(*) > 0 AND coalesce(bool_and(state IN ("
    + ", ".join(f"'{state}'" for state in CAPTURED_STATES)
    + ")), false) FROM payment_orders WHERE psp_reference = %(psp_reference)s"
)


ORDER_PLAIN = "SELECT * FROM payment_orders WHERE payment_order_id = %(order_id)s"

ORDER_COLUMNS_OF_CHECKOUTS = (
    "SELECT checkout_id, payment_order_id, coalesce(psp_reference, ''), amount_minor, currency, state,"
    " CAST(extract(epoch FROM created_at) * 1000000 AS bigint), wallet_updated, ledger_updated"
    " FROM payment_orders WHERE checkout_id = ANY(%(ids)s) ORDER BY checkout_id, payment_order_id"
)
"""Only what reconciliation compares, as plain tuples (epoch microseconds are exact: extract gives numeric)."""


BUYER_VELOCITY = (
    "SELECT count(*), coalesce(sum(total_minor), 0) FROM payment_events"
    " WHERE buyer_id = %(buyer_id)s AND created_at >= %(since)s"
)


_MOVE_IF: dict[tuple[tuple[str, ...], tuple[str, ...], bool], str] = {}


def move_if_statement(columns: tuple[str, ...], sources: tuple[str, ...], with_event: bool) -> str:
    """Built once per shape. The locking read gives the state the row had when it was moved (for the
    history row); the update applies only if that state may move to the target. The source states
    come from the code's transition table, never from input, so they are written into the SQL (an
    array parameter costs more to send than the whole rest of the statement)."""
    key = (columns, sources, with_event)
    statement = _MOVE_IF.get(key)
    if statement is None:
        if not all(name.isidentifier() for name in (*sources, *columns)):
            raise ValueError(f"not state or column names: {sources!r}, {columns!r}")
        allowed = ", ".join(f"'{state}'" for state in sources) or "NULL"
        assignments = ", ".join(f"{c} = %(set_{c})s" for c in columns)
        event = f", event AS ({outbox.EmbeddedEvent.sql('moved')})" if with_event else ""
        statement = (
            "WITH prev AS ("
            " SELECT payment_order_id, state FROM payment_orders"
            " WHERE payment_order_id = %(order_id)s FOR UPDATE"
            "), moved AS ("
            f" UPDATE payment_orders AS o SET {assignments}, updated_at = now() FROM prev"
            f" WHERE o.payment_order_id = prev.payment_order_id AND prev.state IN ({allowed})"
            " RETURNING o.*, prev.state AS from_state"
            "), history AS ("
            " INSERT INTO order_transitions (payment_order_id, from_state, to_state, cause, detail)"
            " SELECT payment_order_id, from_state, state, %(cause)s, %(detail)s FROM moved"
            f"){event} SELECT * FROM moved"
        )
        _MOVE_IF[key] = statement
    return statement
