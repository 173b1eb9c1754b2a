"""The retry policy's numbers: Retry-After parsing, backoff with jitter, caps."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.nexthink._http import RetryPolicy, parse_retry_after

NOW = datetime(2025, 1, 15, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 3 ", 3.0),
        ("0.05", 0.05),
        ("0", 0.0),
        ("-5", 0.0),
        ("Wed, 15 Jan 2025 12:00:30 GMT", 30.0),
        ("Wed, 15 Jan 2025 11:59:00 GMT", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("nan", None),
        ("inf", None),
    ],
    ids=[
        "seconds",
        "spaces",
        "fraction",
        "zero",
        "negative",
        "http-date",
        "past-date",
        "absent",
        "empty",
        "garbage",
        "nan",
        "inf",
    ],
)
def test_retry_after_is_read_as_seconds_or_an_http_date(
    header: str | None, seconds: float | None
) -> None:
    """Retry-After is delta-seconds or an HTTP date, never negative, None when unreadable."""
    assert parse_retry_after(header, now=NOW) == seconds


def test_throttle_delay_is_capped_and_falls_back_to_backoff() -> None:
    """A Retry-After above the cap waits the cap; without one, the backoff applies."""
    policy = RetryPolicy(retries=2, backoff=0.1, max_retry_after=30.0)
    assert policy.throttle_delay(3600.0, 0) == 30.0
    assert policy.throttle_delay(2.0, 0) == 2.0
    assert 0.05 <= policy.throttle_delay(None, 0) <= 0.1


@given(retry=st.integers(min_value=0, max_value=20))
def test_backoff_grows_with_jitter_and_stays_under_the_cap(retry: int) -> None:
    """The n-th backoff lies in the upper half of ``backoff * 2**n``, capped at max_retry_after."""
    policy = RetryPolicy(retries=2, backoff=0.5, max_retry_after=30.0)
    ceiling = min(0.5 * 2**retry, 30.0)
    assert ceiling / 2 <= policy.backoff_delay(retry) <= ceiling


def test_a_negative_policy_is_refused() -> None:
    """Negative retries, backoff or caps are programming errors."""
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(retries=-1)
