"""Every problem an API test meets must be documented: its status on that operation, its `type` listed there.

Installed for every test by the root conftest (`documented_problems`): each problem+json answer of an
operation of `/v1/schema` (whatever produced it: a view, the exception handler, a middleware, an
idempotent replay) is checked against the schema's responses for that path and method; an answer the
schema does not list fails the test at teardown, naming the operation, the status and the type. Paths
outside the schema (test-only URLs, a method the operation does not have) are not checked.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.handlers.base import BaseHandler
from django.http import HttpResponse
from django.urls import Resolver404, resolve

from ops.errors import PROBLEM_CONTENT_TYPE

_CONVERTER = re.compile(r"<(?:\w+:)?(\w+)>")


@functools.lru_cache(maxsize=1)
def served_schema() -> dict[str, Any]:
    """The OpenAPI document of the project's own URLs (as `/v1/schema` serves it)."""
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator(urlconf="config.urls").get_schema(request=None, public=True)


def undocumented(path_info: str, method: str, status: int, problem_type: str) -> str | None:
    """Why this problem answer is not in the schema, or None (documented, or not an operation of the schema)."""
    try:
        match = resolve(path_info, urlconf="config.urls")
    except Resolver404:
        return None
    path = "/" + _CONVERTER.sub(r"{\1}", match.route)
    operation = served_schema()["paths"].get(path, {}).get(method.lower())
    if operation is None:
        return None
    response = operation["responses"].get(str(status))
    if response is None or PROBLEM_CONTENT_TYPE not in response.get("content", {}):
        return f"{method} {path}: status {status} ({problem_type}) is not documented as a problem"
    if f"`{problem_type}`" not in response.get("description", ""):
        return f"{method} {path}: {status} does not list type `{problem_type}`"
    return None


@contextmanager
def problems_checked() -> Iterator[list[str]]:
    """Record, while active, every problem answer of a schema operation that the schema does not document."""
    found: list[str] = []
    original = BaseHandler.get_response

    def get_response(self: BaseHandler, request: Any) -> Any:
        response = original(self, request)
        is_problem = str(response.get("Content-Type", "")).startswith(PROBLEM_CONTENT_TYPE)
        if is_problem and isinstance(response, HttpResponse) and request.path.startswith("/v1/"):
            try:
                problem_type = str(json.loads(response.content).get("type", ""))
            except (ValueError, AttributeError):
                problem_type = ""
            why = undocumented(request.path_info, request.method, response.status_code, problem_type)
            if why:
                found.append(why)
        return response

    BaseHandler.get_response = get_response  # type: ignore[method-assign]
    try:
        yield found
    finally:
        BaseHandler.get_response = original  # type: ignore[method-assign]
