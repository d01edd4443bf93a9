"""OpenAPI helpers for drf-spectacular: describe limit/offset pages as the API returns them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers

PAGINATION_PARAMETERS = [
    OpenApiParameter("limit", OpenApiTypes.INT, description="Number of results to return per page."),
    OpenApiParameter("offset", OpenApiTypes.INT, description="The initial index from which to return the results."),
]


def paginated(item: type[serializers.Serializer], *, name: str) -> Any:
    """Return a serializer for a LimitOffsetPagination page of `item`: count, next, previous, results."""
    return inline_serializer(
        name=name,
        fields={
            "count": serializers.IntegerField(),
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": item(many=True),
        },
    )
