"""Per-credential rate limits: token buckets on a clock we turn, then 429 with
``Retry-After`` from the real API, and the SDK waiting it out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from auditsvc_sdk import AuditClient

from auditsvc.api import ratelimit
from auditsvc.api.ratelimit import RateLimitConfig, RateLimited, RateLimits, TokenBucket
from auditsvc.domain.tokens import Caller, Role
from auditsvc.settings import Settings

from .conftest import TEST_SECRET_KEY, Service, event, query, running_service
from .test_auth import parts


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limits_for(settings: Settings, **options: Any) -> RateLimits:
    return RateLimits(RateLimitConfig.from_settings(settings), **options)


def caller(token_id: str, role: Role = Role.AUDITOR) -> Caller:
    return Caller(token_id, role, ("epic-adt",) if role is Role.EMITTER else (), None)


def test_a_bucket_admits_its_burst_then_one_request_per_refill() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take("a") == pytest.approx(0.5)
    clock.now += 0.5
    assert bucket.take("a") == 0.0
    assert bucket.take("a") == pytest.approx(0.5)
    # Idle long enough, it is full again, never fuller than its burst.
    clock.now += 3600
    assert [bucket.take("a") for _ in range(4)][-1] > 0


def test_each_credential_has_its_own_bucket() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, clock=Clock())
    assert bucket.take("a") == 0.0
    assert bucket.take("a") > 0
    assert bucket.take("b") == 0.0


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    clock = Clock()
    limits = limits_for(
        Settings(rate_limit_human_per_second=0.3, rate_limit_human_burst=1, rate_limit_emitter_per_second=50),
        clock=clock,
    )
    limits.admit(caller("auditor-1"))
    with pytest.raises(RateLimited) as refused:
        limits.admit(caller("auditor-1"))
    assert refused.value.retry_after == 4  # 1 / 0.3 = 3.33 s
    clock.now += 3.0
    with pytest.raises(RateLimited) as refused:
        limits.admit(caller("auditor-1"))
    assert refused.value.retry_after == 1  # 0.33 s


def test_emitters_and_humans_have_separate_limits_and_zero_turns_one_off() -> None:
    limits = limits_for(
        Settings(
            rate_limit_emitter_per_second=0,
            rate_limit_human_per_second=1,
            rate_limit_human_burst=2,
        ),
        clock=Clock(),
    )
    for _ in range(10_000):
        limits.admit(caller("emitter-1", Role.EMITTER))
    for role in (Role.PRIVACY_OFFICER, Role.AUDITOR, Role.ADMIN):
        limits.admit(caller(f"{role}-1", role))
        limits.admit(caller(f"{role}-1", role))
        with pytest.raises(RateLimited):
            limits.admit(caller(f"{role}-1", role))


def test_the_defaults_let_an_emitter_batch_generously() -> None:
    s = Settings()
    # Requests, not events: at 500 events a request that is 250,000 events/s per token and process.
    assert s.rate_limit_emitter_per_second >= 500 and s.rate_limit_emitter_burst >= 1000
    limits = limits_for(s, clock=Clock())
    for _ in range(s.rate_limit_emitter_burst):
        limits.admit(caller("emitter-1", Role.EMITTER))


def test_refilled_buckets_are_forgotten_when_many_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "SWEEP_AT", 100)
    clock = Clock()
    bucket = TokenBucket(rate=1.0, burst=5, clock=clock)
    for i in range(100):
        bucket.take(f"user-{i}")
    clock.now += 10  # all refilled: a new one finds 100 and sweeps them
    bucket.take("busy")
    assert len(bucket) == 1
    for i in range(99):
        bucket.take(f"user-{i}")
    bucket.take("newcomer")  # sweeps again, but nobody has refilled yet
    assert len(bucket) == 101


# --- through the real API ----------------------------------------------------------


def limited(settings: Settings, **limits: Any) -> Settings:
    return Settings(
        database_url=settings.database_url,
        secret_key=TEST_SECRET_KEY,
        data_dir=settings.data_dir,
        log_name=settings.log_name,
        **limits,
    )


@pytest.fixture
def slow_service(settings: Settings) -> Iterator[Service]:
    """Buckets that refill once every 10 s: nothing refills during the test."""
    configured = limited(
        settings,
        rate_limit_human_per_second=0.1,
        rate_limit_human_burst=3,
        rate_limit_emitter_per_second=0.1,
        rate_limit_emitter_burst=2,
    )
    with running_service(configured) as running:
        yield running


def tree_size(service: Service) -> int:
    return int(query(str(service.settings.database_url), "SELECT count(*) AS n FROM events")[0]["n"])


def test_over_the_limit_is_429_with_retry_after_per_credential(slow_service: Service) -> None:
    first, second = slow_service.token(Role.AUDITOR), slow_service.token(Role.AUDITOR)
    with slow_service.client(first) as client:
        answers = [client.get("/v1/checkpoints/verifier-key") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[-1]
    assert refused.headers["retry-after"].isdigit() and 1 <= int(refused.headers["retry-after"]) <= 10
    assert refused.headers["content-type"] == "application/json"
    assert "rate limit exceeded" in refused.json()["detail"]
    with slow_service.client(second) as client:
        assert client.get("/v1/checkpoints/verifier-key").status_code == 200


def test_refused_credentials_do_not_spend_a_tokens_budget(slow_service: Service) -> None:
    token = slow_service.token(Role.AUDITOR)
    token_id, secret = parts(token)
    wrong = f"asv_{token_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    with slow_service.client(wrong) as client:
        assert {client.get("/v1/checkpoints/verifier-key").status_code for _ in range(20)} == {401}
    with slow_service.client() as client:
        assert {client.get("/v1/checkpoints/verifier-key").status_code for _ in range(20)} == {401}
    with slow_service.client(token) as client:
        assert [client.get("/v1/checkpoints/verifier-key").status_code for _ in range(3)] == [200] * 3


def test_a_refused_batch_stores_nothing(slow_service: Service) -> None:
    token = slow_service.token(Role.EMITTER, ["epic-adt"])
    with slow_service.client(token) as client:
        for _ in range(2):
            client.post("/v1/events", json={"events": [event()]}).raise_for_status()
        size = tree_size(slow_service)
        refused = client.post("/v1/events", json={"events": [event() for _ in range(10)]})
    assert refused.status_code == 429 and refused.headers["retry-after"].isdigit()
    assert tree_size(slow_service) == size == 2


def test_the_sdk_waits_out_retry_after_and_delivers_everything(settings: Settings) -> None:
    configured = limited(settings, rate_limit_emitter_per_second=2, rate_limit_emitter_burst=1)
    with running_service(configured) as service:
        token = service.token(Role.EMITTER, ["epic-adt"])
        with AuditClient(service.url, token) as client:
            for _ in range(3):
                client.record(event())
                assert client.flush(timeout=15)
            counters = client.counters()
        assert counters.sent == 3 and counters.retried >= 1 and counters.dead_lettered == 0
        assert tree_size(service) == 3
