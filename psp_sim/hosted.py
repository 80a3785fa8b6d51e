"""Buyer-facing HTML: the Checkout page, the 3-D Secure challenge, and a landing page for tests.

Plain HTML forms with no JavaScript, so they work in a real browser and with bare form posts alike.
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from psp_sim.money import to_major

# Long names and ids wrap inside the card (overflow-wrap:anywhere) instead of running past it; the
# card takes the whole width of a phone and 420 px on a desktop.
_STYLE = """
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;background:#f6f9fc;margin:0;padding:40px 16px}
.box{max-width:420px;margin:auto;background:#fff;padding:24px;border-radius:8px;box-shadow:0 2px 8px #0002;
overflow-wrap:anywhere}
@media (max-width:480px){body{padding:12px 8px}.box{padding:16px}}
h1{font-size:24px;margin:0 0 8px}
label{display:block;margin:12px 0 4px;font-size:14px;color:#333}
input{width:100%;padding:8px;font-size:16px}
button{margin-top:16px;padding:10px 16px;font-size:16px;cursor:pointer;max-width:100%}
.error{color:#b00020;margin-top:12px} .muted{color:#666;font-size:13px}
code{word-break:break-all}
.items{list-style:none;margin:16px 0;padding:0}
.item{display:flex;gap:12px;justify-content:space-between;padding:8px 0;border-bottom:1px solid #e3e8ee}
.item .name{min-width:0;flex:1}
.item .amount{white-space:nowrap;text-align:right}
.total{display:flex;justify-content:space-between;font-weight:600;padding:8px 0}
"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_STYLE}</style></head>'
        f'<body><div class="box">{body}</div></body></html>'
    )


def checkout_page(cs: dict[str, Any], lines: list[dict[str, Any]], error: str | None = None) -> str:
    cur = cs["currency"]
    items = "".join(
        f'<li class="item"><span class="name">{escape(li["description"])}'
        + (f' <span class="muted">&times; {li["quantity"]}</span>' if li["quantity"] != 1 else "")
        + f'</span><span class="amount">{to_major(li["amount_total"], cur)} {cur.upper()}</span></li>'
        for li in lines
    )
    err = f'<p class="error" id="error" role="alert">{escape(error)}</p>' if error else ""
    total = f"{to_major(cs['amount_total'], cur)} {cur.upper()}"
    cancel = (
        '<button type="submit" name="action" value="cancel" id="cancel" formnovalidate>Cancel</button>'
        if cs["cancel_url"]
        else ""
    )
    body = f"""
<h1>Pay {escape(total)}</h1>
<p class="muted">PSP simulator checkout · session <code id="session-id">{escape(cs["id"])}</code></p>
<ul class="items" id="line-items">{items}</ul>
<div class="total"><span>Total</span><span id="total">{escape(total)}</span></div>
<form method="post" action="/c/pay/{escape(cs["id"])}" id="payment-form" autocomplete="off">
  <label for="email">Email</label>
  <input id="email" name="email" type="email" value="{escape(cs["customer_email"] or "")}">
  <label for="cardnumber">Card number</label>
  <input id="cardnumber" name="cardnumber" inputmode="numeric" placeholder="4242 4242 4242 4242" required>
  <label for="exp">Expiry (MM/YY)</label>
  <input id="exp" name="exp" placeholder="12/34" required>
  <label for="cvc">CVC</label>
  <input id="cvc" name="cvc" inputmode="numeric" placeholder="123">
  <label for="name">Name on card</label>
  <input id="name" name="name">
  <button type="submit" name="action" value="pay" id="submit">Pay {escape(total)}</button>
  {cancel}
</form>{err}"""
    return _page("Checkout", body)


def gone_page(cs: dict[str, Any]) -> str:
    return _page(
        "Checkout unavailable",
        f'<h1 id="gone">This checkout session is {escape(cs["status"] or "unavailable")}.</h1>',
    )


def challenge_page(pi: dict[str, Any]) -> str:
    cur = pi["currency"]
    body = f"""
<h1>3D Secure 2 test page</h1>
<p>Authenticate the payment of {to_major(pi["amount"], cur)} {cur.upper()}
(<code id="payment-intent-id">{escape(pi["id"])}</code>).</p>
<form method="post" action="/3ds/{escape(pi["id"])}">
  <button type="submit" name="action" value="complete" id="complete">Complete authentication</button>
  <button type="submit" name="action" value="fail" id="fail">Fail authentication</button>
</form>"""
    return _page("3D Secure", body)


def result_page(pi: dict[str, Any]) -> str:
    return _page("Payment result", f'<h1 id="status">{escape(pi["status"])}</h1>')


def landing_page(query: dict[str, Any]) -> str:
    rows = "".join(
        f'<li><b>{escape(k)}</b>: <span id="q-{escape(k)}">{escape(str(v))}</span></li>'
        for k, v in query.items()
    )
    return _page("Returned", f'<h1 id="landing">Returned from PSP</h1><ul>{rows}</ul>')


def return_url_for(pi: dict[str, Any], return_url: str) -> str:
    """Stripe appends these after a redirect-based authentication."""
    status = "succeeded" if pi["status"] in ("succeeded", "requires_capture", "processing") else "failed"
    sep = "&" if "?" in return_url else "?"
    q = urlencode(
        {
            "payment_intent": pi["id"],
            "payment_intent_client_secret": pi["client_secret"],
            "redirect_status": status,
        }
    )
    return f"{return_url}{sep}{q}"
