"""kube.leader on the fake API: one leader at a time, a standby takes an expired Lease (and
only an expired one), a lost race is a standby, and a release hands over at once."""

from __future__ import annotations

import asyncio

from fakeapi import FakeApi
from kubetune.core import times
from kubetune.kube import errors
from kubetune.kube.leader import Lease, takeover_bound

PATH = "/apis/coordination.k8s.io/v1/namespaces/kubetune/leases/kubetune-operator"


def replicas(fake: FakeApi, clock: list[float]) -> tuple[Lease, Lease]:
    return tuple(Lease(fake, "kubetune", "kubetune-operator", identity, duration=15,
                       renew=5.0, clock=lambda: clock[0]) for identity in ("a", "b"))


def spec(fake: FakeApi) -> dict:
    return fake.objects[PATH]["spec"]


def test_one_leads_and_the_other_takes_over_only_once_the_lease_expired() -> None:
    fake = FakeApi()
    clock = [1_800_000_000.0]
    a, b = replicas(fake, clock)

    async def main() -> None:
        assert await a._try() is True
        assert await b._try() is False
        clock[0] += 5
        assert await a._try() is True  # a renews
        clock[0] += 15  # 15 s since the renewal: not past leaseDurationSeconds yet
        assert await b._try() is False
        clock[0] += 0.5
        assert await b._try() is True

    asyncio.run(main())
    assert spec(fake)["holderIdentity"] == "b"
    assert spec(fake)["leaseTransitions"] == 1
    assert times.parse_rfc3339(spec(fake)["acquireTime"]) == clock[0]


def test_a_lost_race_is_a_standby_not_an_error() -> None:
    fake = FakeApi()
    clock = [1_800_000_000.0]
    a, b = replicas(fake, clock)

    async def main() -> bool:
        await a._try()
        clock[0] += 30
        # b reads the expired Lease, but a renews before b's write lands: b's PUT carries a
        # stale resourceVersion and the server answers Conflict.
        original = fake.get

        async def get_then_renew(path: str, **params: str) -> dict:
            lease = await original(path, **params)
            fake.get = original  # type: ignore[method-assign]
            await a._try()
            return lease

        fake.get = get_then_renew  # type: ignore[method-assign]
        return await b._try()

    assert asyncio.run(main()) is False
    assert spec(fake)["holderIdentity"] == "a"


def test_two_replicas_creating_the_lease_at_once_yield_one_leader() -> None:
    fake = FakeApi()
    clock = [1_800_000_000.0]
    a, b = replicas(fake, clock)

    async def main() -> list[bool]:
        return list(await asyncio.gather(a._try(), b._try()))

    assert sorted(asyncio.run(main())) == [False, True]


def test_release_hands_over_at_once() -> None:
    fake = FakeApi()
    clock = [1_800_000_000.0]
    a, b = replicas(fake, clock)

    async def main() -> bool:
        await a._try()
        await a.release()
        clock[0] += 1.5  # past the released Lease's 1 s
        return await b._try()

    assert asyncio.run(main()) is True


def test_hold_gives_up_when_renewals_fail_longer_than_the_lease() -> None:
    fake = FakeApi()
    clock = [1_800_000_000.0]
    a, _ = replicas(fake, clock)
    a.renew = 0.001

    async def main() -> None:
        await a._try()
        for _ in range(5):
            fake.fail("GET", PATH, errors.ServerError(503, "etcd unavailable"))
        real_sleep = asyncio.sleep

        async def sleep(delay: float) -> None:
            clock[0] += 5
            await real_sleep(0)

        asyncio.sleep = sleep  # type: ignore[assignment]
        try:
            await asyncio.wait_for(a.hold(), timeout=5)
        finally:
            asyncio.sleep = real_sleep  # type: ignore[assignment]

    asyncio.run(main())
    assert clock[0] - 1_800_000_000.0 <= 5 * 5  # gave up within the lease, plus one renewal


def test_takeover_bound_is_lease_duration_plus_one_retry() -> None:
    assert takeover_bound(15, 5.0) == 20.0
