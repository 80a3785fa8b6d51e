"""Stripe-shaped API errors.

The SDK picks its exception class from the HTTP status and ``error.type`` (``stripe/_api_requestor.py``),
so every error the simulator answers with is one of these, rendered in one place.
"""

from __future__ import annotations

from typing import Any


class StripeError(Exception):
    """An API error with Stripe's body shape.

    ``stored`` says whether the idempotency layer keeps the answer: Stripe keeps results once execution
    began (card errors, 500s) but not parameter-validation failures, so a corrected retry may succeed.
    """

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        decline_code: str | None = None,
        stored: bool = False,
        should_retry: bool | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.code = code
        self.param = param
        self.decline_code = decline_code
        self.stored = stored
        self.should_retry = should_retry
        self.extra = extra

    def body(self) -> dict[str, Any]:
        err: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            err["param"] = self.param
        if self.decline_code:
            err["decline_code"] = self.decline_code
        for key, value in self.extra.items():
            if value is not None:
                err[key] = value
        return {"error": err}


def invalid(
    message: str, param: str | None = None, code: str | None = None, status: int = 400
) -> StripeError:
    return StripeError(status, "invalid_request_error", message, param=param, code=code)


def missing(kind: str, obj_id: str, param: str = "id") -> StripeError:
    return StripeError(
        404, "invalid_request_error", f"No such {kind}: '{obj_id}'", code="resource_missing", param=param
    )


def unexpected_state(action: str, noun: str, status: str, code: str) -> StripeError:
    return StripeError(
        400,
        "invalid_request_error",
        f"You cannot {action} this {noun} because it has a status of {status}.",
        code=code,
    )
