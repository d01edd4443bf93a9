"""What `/v1/schema` promises a client generator: JSON bodies only, the Idempotency-Key header where the
code requires it, every refusal as a documented problem+json response, and the four-eyes 202."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from drf_spectacular.generators import SchemaGenerator

from ops.idempotency import HEADER, IdempotencyKeyMissing

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(path, m, op) for path, item in schema["paths"].items() for m, op in item.items() if m in METHODS]


def api_views() -> dict[str, Any]:
    """Schema path -> DRF view class, for every API URL."""
    found: dict[str, Any] = {}

    def walk(patterns: Any, prefix: str) -> None:
        for entry in patterns:
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + str(entry.pattern))
            elif isinstance(entry, URLPattern) and hasattr(entry.callback, "cls"):
                route = prefix + str(entry.pattern)
                for converter in ("int:", "str:", "uuid:"):
                    route = route.replace(f"<{converter}", "<")
                found["/" + route.replace("<", "{").replace(">", "}")] = entry.callback.cls

    walk(get_resolver().url_patterns, "")
    return found


def test_every_request_body_is_json_only(schema: dict[str, Any]) -> None:
    bodies = {(path, m): set(op["requestBody"]["content"]) for path, m, op in operations(schema) if "requestBody" in op}
    assert bodies and all(types == {"application/json"} for types in bodies.values()), bodies


def test_a_form_body_is_refused_with_a_problem(client: Any) -> None:
    response = client.post("/v1/auth/login", {"email": "a@example.com", "password": "x"})  # multipart
    assert response.status_code == 415 and response["Content-Type"] == "application/problem+json"
    assert response.json()["type"] == "unsupported-media-type"
    assert response.json()["title"] == "Unsupported media type in request."  # no unformatted "{media_type}"


def test_the_idempotency_key_header_is_documented_exactly_where_the_code_asks_for_it(schema: dict[str, Any]) -> None:
    views = api_views()
    required_by_code, documented = set(), {}
    for path, method, op in operations(schema):
        handler = getattr(views[path], method)
        if IdempotencyKeyMissing in getattr(handler, "problems", ()):
            required_by_code.add((path, method))
        for parameter in op.get("parameters", []):
            if parameter["in"] == "header" and parameter["name"] == HEADER:
                documented[(path, method)] = parameter.get("required", False)
    assert {op for op, required in documented.items() if required} == required_by_code
    assert {("/v1/deposits", "post"), ("/v1/withdrawals", "post"), ("/v1/rounds/{code}/bets", "post")} <= (
        required_by_code
    )
    # The withdrawal decisions honour a key when one is sent: documented, optional.
    for action in ("cancel", "approve", "reject"):
        assert documented[(f"/v1/withdrawals/{{withdrawal_id}}/{action}", "post")] is False
    assert documented[("/v1/payouts/{withdrawal_id}/resolve", "post")] is False


def test_every_operation_documents_its_refusals_as_problems(schema: dict[str, Any]) -> None:
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["required"]) == {"type", "title", "status", "detail"}
    assert {"instance", "errors", "required_u"} <= set(problem["properties"])
    for path, method, op in operations(schema):
        refusals = {code: r for code, r in op["responses"].items() if int(code) >= 400}
        assert "503" in refusals, (path, method)
        for code, response in refusals.items():
            content = response["content"]["application/problem+json"]
            assert content["schema"] == {"$ref": "#/components/schemas/Problem"}, (path, method, code)
            assert "`type` is one of" in response["description"], (path, method, code)
        secured = op.get("security") and {} not in op["security"]
        unauthenticated = "`not-authenticated`" in refusals.get("401", {}).get("description", "")
        assert unauthenticated == bool(secured), (path, method)
        if "requestBody" in op:
            assert {"400", "415"} <= set(refusals), (path, method)


@pytest.mark.parametrize(
    ("path", "method", "status", "problem_type"),
    [
        ("/v1/rounds/{code}/bets", "post", "409", "rounds/already-bet"),
        ("/v1/rounds/{code}/bets", "post", "422", "ledger/insufficient-funds"),
        ("/v1/rounds/{code}/bets", "post", "403", "accounts/not-a-player"),
        ("/v1/withdrawals", "post", "422", "ledger/insufficient-funds"),
        ("/v1/withdrawals", "post", "400", "idempotency/key-required"),
        ("/v1/withdrawals", "post", "422", "idempotency/key-reused"),
        ("/v1/deposits", "post", "502", "deposit/provider-error"),
        ("/v1/payouts/{withdrawal_id}/resolve", "post", "409", "payouts/psp-answer-pending"),
        ("/v1/withdrawals/{withdrawal_id}/approve", "post", "409", "approvals/second-operator-required"),
        ("/v1/auth/login", "post", "429", "auth/locked-out"),
        ("/v1/wallet", "get", "401", "not-authenticated"),
        ("/v1/wallet", "get", "500", "server-error"),
        ("/v1/withdrawals", "post", "503", "maintenance"),
        ("/v1/withdrawals", "post", "503", "service-unavailable"),
    ],
)
def test_specific_refusals_are_listed_on_their_operation(
    schema: dict[str, Any], path: str, method: str, status: str, problem_type: str
) -> None:
    assert f"`{problem_type}`" in schema["paths"][path][method]["responses"][status]["description"]


def test_a_refusal_the_operation_cannot_answer_is_not_listed(schema: dict[str, Any]) -> None:
    wallet = schema["paths"]["/v1/wallet"]["get"]["responses"]
    assert not {"400", "403", "409", "415", "422"} & set(wallet)
    assert "`maintenance`" not in wallet["503"]["description"]  # reads stay up in maintenance mode
    login = schema["paths"]["/v1/auth/login"]["post"]["responses"]
    assert "idempotency" not in str(login) and "not-authenticated" not in str(login)
    assert "`maintenance`" not in str(login)  # operators log in during a cutover
    assert "500" not in schema["paths"]["/rounds/current"]["get"]["responses"]  # outside /v1/ a 500 is a page


def test_the_four_eyes_202_is_documented(schema: dict[str, Any]) -> None:
    for path in ("/v1/withdrawals/{withdrawal_id}/approve", "/v1/payouts/{withdrawal_id}/resolve"):
        accepted = schema["paths"][path]["post"]["responses"]["202"]
        assert accepted["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/StaffWithdrawalOutput"
        }
        assert "second operator" in accepted["description"]


def test_the_problem_audit_tells_an_undocumented_refusal_from_a_documented_one() -> None:
    from ops.tests.problem_audit import undocumented

    assert undocumented("/v1/rounds/20250908/bets", "POST", 409, "rounds/already-bet") is None
    assert undocumented("/v1/withdrawals/7/approve", "POST", 202, "x") is not None  # 202 is not a problem there
    assert "does not list type `rounds/made-up`" in str(
        undocumented("/v1/rounds/20250908/bets", "POST", 409, "rounds/made-up")
    )
    assert "status 409" in str(undocumented("/v1/wallet", "GET", 409, "conflict"))
    assert undocumented("/v1/no-such-thing", "GET", 404, "not-found") is None  # not an operation of the schema


def test_the_problem_audit_sees_what_a_request_answers(api_client_for: Any, player: Any) -> None:
    from ops.tests.problem_audit import problems_checked

    with problems_checked() as found:
        assert api_client_for(player).get("/v1/wallet").status_code == 200
        response = api_client_for(player).post("/v1/auth/logout", "not json", content_type="text/plain")
    assert response.status_code == 204 and found == []
    with problems_checked() as found:
        refused = api_client_for(player).post("/v1/rounds/20250908/bets", {"side": "UP"}, HTTP_IDEMPOTENCY_KEY="k")
    assert refused.status_code == 400 and found == []  # validation-error: documented
