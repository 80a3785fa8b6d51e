"""Wire-level checks the SDK cannot express: auth, both list encodings, headers, unknown routes."""

import httpx

from psp_sim.testing import SimServer

AUTH = {"Authorization": "Bearer sk_test_wire"}


def test_requests_without_a_test_secret_key_get_401(sim: SimServer) -> None:
    for headers in ({}, {"Authorization": "Bearer sk_live_x"}, {"Authorization": "Bearer pk_test_x"}):
        resp = httpx.get(f"{sim.base_url}/v1/payment_intents", headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["type"] == "invalid_request_error"
        assert resp.headers["request-id"].startswith("req_")


def test_sdk_raises_authentication_error(sim: SimServer) -> None:
    import pytest
    import stripe

    bad = stripe.StripeClient("sk_live_nope", base_addresses={"api": sim.base_url})
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.payment_intents.list()


def test_both_list_forms_are_accepted(sim: SimServer) -> None:
    for form in (
        "payment_method_types[]=card&expand[]=latest_charge",
        "payment_method_types[0]=card&expand[0]=latest_charge",
    ):
        body = f"amount=700&currency=usd&payment_method=pm_card_visa&confirm=true&metadata[k]=v&{form}"
        resp = httpx.post(
            f"{sim.base_url}/v1/payment_intents",
            content=body,
            headers={**AUTH, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert resp.status_code == 200, resp.text
        data = resp.json()
        assert data["payment_method_types"] == ["card"]
        assert data["metadata"] == {"k": "v"}
        assert data["latest_charge"]["object"] == "charge"  # expanded


def test_get_query_with_escaped_brackets(sim: SimServer, client) -> None:
    client.v1.payment_intents.create(params={"amount": 100, "currency": "usd"})
    resp = httpx.get(f"{sim.base_url}/v1/payment_intents?limit=5&created%5Bgte%5D=0", headers=AUTH)
    assert resp.status_code == 200
    assert len(resp.json()["data"]) == 1
    resp = httpx.get(f"{sim.base_url}/v1/payment_intents?created%5Bgte%5D=99999999999", headers=AUTH)
    assert resp.json()["data"] == []


def test_unknown_parameter_and_route(sim: SimServer) -> None:
    resp = httpx.post(
        f"{sim.base_url}/v1/payment_intents",
        data={"amount": "1", "currency": "usd", "bogus": "1"},
        headers=AUTH,
    )
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "bogus"
    resp = httpx.get(f"{sim.base_url}/v1/nothing_here", headers=AUTH)
    assert resp.status_code == 404


def test_every_response_has_request_id_and_post_echoes_idempotency_key(sim: SimServer) -> None:
    resp = httpx.post(
        f"{sim.base_url}/v1/payment_intents",
        data={"amount": "100", "currency": "usd"},
        headers={**AUTH, "Idempotency-Key": "echo-1"},
    )
    assert resp.headers["request-id"].startswith("req_")
    assert resp.headers["idempotency-key"] == "echo-1"
    assert "idempotent-replayed" not in resp.headers


def test_publishable_key_may_only_tokenize(sim: SimServer) -> None:
    pk = {"Authorization": "Bearer pk_test_browser"}
    card = {
        "type": "card",
        "card[number]": "4242424242424242",
        "card[exp_month]": "12",
        "card[exp_year]": "34",
        "card[cvc]": "123",
    }
    resp = httpx.post(f"{sim.base_url}/v1/payment_methods", data=card, headers=pk)
    assert resp.status_code == 200
    body = resp.json()
    assert body["id"].startswith("pm_") and body["card"]["last4"] == "4242"
    assert "4242424242424242" not in resp.text  # the number stays inside the simulator
    assert httpx.get(f"{sim.base_url}/v1/payment_intents", headers=pk).status_code == 401


def test_the_key_is_accepted_as_bearer_token_or_basic_auth_user(sim: SimServer) -> None:
    url = f"{sim.base_url}/v1/payment_intents"
    assert httpx.get(url, headers=AUTH).status_code == 200
    # curl -u sk_test_…: — the key as the Basic-auth user name with an empty password, as Stripe takes it.
    basic = httpx.get(url, auth=("sk_test_wire", ""))
    assert basic.status_code == 200 and basic.json()["object"] == "list"


def test_a_wrong_key_gets_stripes_401_shape_without_the_key(sim: SimServer) -> None:
    wrong = "sk_live_0123456789abcdefWXYZ"
    for kw in ({"headers": {"Authorization": f"Bearer {wrong}"}}, {"auth": (wrong, "")}):
        resp = httpx.get(f"{sim.base_url}/v1/payment_intents", **kw)
        assert resp.status_code == 401
        assert resp.headers["www-authenticate"] == 'Basic realm="Stripe"'
        assert resp.json() == {
            "error": {
                "type": "invalid_request_error",
                "message": "Invalid API Key provided: sk_live_****************WXYZ",
            }
        }
        assert wrong not in resp.text
    garbled = httpx.get(f"{sim.base_url}/v1/payment_intents", headers={"Authorization": "Basic %%%"})
    assert garbled.status_code == 401 and garbled.json()["error"]["type"] == "invalid_request_error"
