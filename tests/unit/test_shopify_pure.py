"""Pure Shopify code: classification, cost arithmetic, search syntax."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tasks.core.errors import AuthError, ConfigError, PermanentError, RateLimited, RetryableError
from tasks.shopify.client import (
    MAX_QUERY_COST,
    classify_response,
    node_cost,
    order_gid,
    page_size_for,
    throttle_status,
    window_query,
)
from tasks.shopify.queries import ORDER_FIELDS

COST = {
    "requestedQueryCost": 502,
    "actualQueryCost": None,
    "throttleStatus": {"maximumAvailable": 2000, "currentlyAvailable": 102, "restoreRate": 100},
}


def test_throttled_comes_as_http_200_and_is_rate_limited_with_the_refill_time() -> None:
    body = {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
        "extensions": {"cost": COST},
    }
    error = classify_response(200, {}, body)
    assert isinstance(error, RateLimited)
    assert error.retry_after == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (429, RateLimited),
        (500, RetryableError),
        (503, RetryableError),
        (401, AuthError),
        (403, ConfigError),
        (404, PermanentError),
        (422, PermanentError),
    ],
)
def test_http_statuses_are_classified(status: int, kind: type) -> None:
    assert isinstance(classify_response(status, {"retry-after": "2.0"}, {}), kind)


def test_429_carries_retry_after() -> None:
    assert classify_response(429, {"retry-after": "2.0"}, {}).retry_after == 2.0


def test_a_successful_response_is_not_an_error() -> None:
    assert classify_response(200, {}, {"data": {"order": None}}) is None


def test_other_graphql_errors_are_permanent() -> None:
    body = {"errors": [{"message": "Field 'nope' doesn't exist on type 'Order'"}]}
    assert isinstance(classify_response(200, {}, body), PermanentError)


def test_throttle_status_is_read_from_the_cost_extension() -> None:
    status = throttle_status({"extensions": {"cost": COST}})
    assert (status.maximum, status.available, status.restore_rate) == (2000, 102, 100)
    assert throttle_status({"data": {}}) is None


def test_page_size_keeps_a_page_under_the_single_query_maximum() -> None:
    first = page_size_for(ORDER_FIELDS)
    assert 2 + first * node_cost(ORDER_FIELDS) <= MAX_QUERY_COST
    assert 2 + (first + 1) * node_cost(ORDER_FIELDS) > MAX_QUERY_COST or first == 250


def test_window_query_uses_shopify_search_syntax_in_utc() -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    end = datetime(2026, 11, 2, 5, 30, tzinfo=UTC)
    assert window_query(start, end) == (
        "updated_at:>='2026-11-01T00:00:00Z' AND updated_at:<'2026-11-02T05:30:00Z'"
    )


def test_order_gid() -> None:
    assert order_gid("820982911946154508") == "gid://shopify/Order/820982911946154508"
