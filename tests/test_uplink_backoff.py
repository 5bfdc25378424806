"""Backoff and Retry-After arithmetic of the uplink (pure functions, no network)."""
from __future__ import annotations

import random
import time
from email.utils import formatdate

import requests

from unit.uplink import backoff_s, retry_after_s


def response(retry_after: str | None) -> requests.Response:
    r = requests.Response()
    r.status_code = 503
    if retry_after is not None:
        r.headers["Retry-After"] = retry_after
    return r


def test_full_jitter_spans_zero_to_the_exponential_ceiling():
    rng = random.Random(4)
    for failures, ceiling in ((1, 1.0), (2, 2.0), (4, 8.0)):
        draws = [backoff_s(failures, 1.0, 300.0, rng) for _ in range(400)]
        assert all(0.0 <= d <= ceiling for d in draws)
        assert min(draws) < ceiling * 0.1 and max(draws) > ceiling * 0.9     # full jitter, not "ceiling ± a bit"


def test_backoff_is_capped_even_after_many_failures():
    rng = random.Random(5)
    draws = [backoff_s(10_000, 1.0, 30.0, rng) for _ in range(400)]
    assert max(draws) <= 30.0 and max(draws) > 25.0


def test_retry_after_is_a_floor():
    rng = random.Random(6)
    assert all(backoff_s(1, 0.1, 0.2, rng, retry_after=7.0) == 7.0 for _ in range(50))
    assert backoff_s(1, 100.0, 100.0, random.Random(1), retry_after=0.5) >= 0.5


def test_retry_after_header_forms():
    assert retry_after_s(response("3")) == 3.0
    assert retry_after_s(response(None)) is None
    assert retry_after_s(response("soon")) is None
    http_date = formatdate(time.time() + 60, usegmt=True)
    assert 55.0 <= retry_after_s(response(http_date)) <= 60.0
    assert retry_after_s(response(formatdate(time.time() - 60, usegmt=True))) == 0.0
