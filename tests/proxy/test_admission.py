"""The door in front of handler routes (proxy.admission): slots, callers' lines served in turn, bounds and
deadlines; then for real through the gateway: a retry storm served instead of refused, and one caller's
flood that cannot crowd out another caller."""

import asyncio
import time
from typing import Any

import pytest

from conftest import Gateway, bearer
from proxy.admission import Gate, Overloaded, TooManyWaiting
from proxy.gateway import GATEWAY


async def enter(gate: Gate, entity: str, served: list[str], hold: asyncio.Event, **kw: Any) -> None:
    options = {"weight": 1, "max_waiting": None, "timeout_s": 5.0, **kw}
    async with gate.slot(entity, 1, **options):
        served.append(entity)
        await hold.wait()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_free_slot_is_taken_at_once_and_given_back() -> None:
    gate = Gate()
    async with gate.slot("a", 2, weight=1, max_waiting=None, timeout_s=1) as waited:
        assert waited == 0.0 and gate.active == 1
    assert gate.active == 0 and gate.status(2)["waited"] == 0


@pytest.mark.parametrize(
    ("weight", "expected"),
    [
        (1, ["holder", "a", "b", "c", "a", "a", "a"]),  # each line one turn a round
        (2, ["holder", "a", "a", "b", "c", "a", "a"]),  # a trusted caller's line: two turns a round
    ],
)
async def test_lines_are_served_in_turn_however_many_each_has_waiting(
    weight: int, expected: list[str]
) -> None:
    gate, served = Gate(), []
    holds = [asyncio.Event() for _ in expected]
    tasks = [asyncio.create_task(enter(gate, "holder", served, holds[0]))]
    await settle()
    arrivals = [("a", weight)] * 4 + [("b", 1), ("c", 1)]  # a's four arrive before the others
    for i, (entity, w) in enumerate(arrivals, 1):
        tasks.append(asyncio.create_task(enter(gate, entity, served, holds[i], weight=w)))
        await settle()
    for hold in holds:  # each request in turn leaves, freeing the one slot
        hold.set()
        await settle()
    await asyncio.gather(*tasks)
    assert served == expected
    assert gate.active == 0 and gate.waiting == 0


async def test_a_callers_line_is_bounded_with_a_cheap_429() -> None:
    gate, served, hold = Gate(), [], asyncio.Event()
    holder = asyncio.create_task(enter(gate, "x", served, hold))
    await settle()
    waiting = [asyncio.create_task(enter(gate, "flood", served, hold, max_waiting=2)) for _ in range(2)]
    await settle()
    with pytest.raises(TooManyWaiting) as refused:
        await enter(gate, "flood", served, hold, max_waiting=2)
    assert refused.value.status == 429 and refused.value.retry_after and not refused.value.charged
    hold.set()
    await asyncio.gather(holder, *waiting)
    assert gate.active == 0 and gate.status(1)["refused"] == 1


async def test_no_slot_within_the_deadline_is_503_and_nothing_is_leaked() -> None:
    gate, served, hold = Gate(), [], asyncio.Event()
    holder = asyncio.create_task(enter(gate, "x", served, hold))
    await settle()
    started = time.monotonic()
    with pytest.raises(Overloaded) as late:
        await enter(gate, "y", served, hold, timeout_s=0.2)
    assert 0.2 <= time.monotonic() - started < 1.0
    assert late.value.status == 503 and late.value.retry_after and not late.value.charged
    assert gate.waiting == 0
    hold.set()
    await holder
    assert gate.active == 0 and gate.status(1)["timed_out"] == 1


async def test_a_waiter_that_leaves_gives_up_its_place_or_passes_on_its_slot() -> None:
    gate, served, hold = Gate(), [], asyncio.Event()
    holder = asyncio.create_task(enter(gate, "x", served, hold))
    await settle()
    gone = asyncio.create_task(enter(gate, "gone", served, hold))
    handed = asyncio.create_task(enter(gate, "handed", served, hold))
    after = asyncio.create_task(enter(gate, "after", served, hold))
    await settle()
    gone.cancel()  # the client went away while waiting: its place goes
    await settle()
    assert gate.waiting == 2
    hold.set()
    await settle()
    handed.cancel()  # (already let in and running by now, or handed the slot: either way released)
    await asyncio.gather(holder, after, return_exceptions=True)
    await asyncio.gather(handed, return_exceptions=True)
    assert "gone" not in served and "after" in served
    assert gate.active == 0 and gate.waiting == 0


@pytest.mark.parametrize("which", ["all", "every other"])
async def test_clients_leaving_together_leak_no_slot(which: str) -> None:
    """wrk ending a run closes every connection at once: holders and waiters are cancelled in the same
    step, so a freed slot meets waiters already cancelled but not yet run (their futures are done). Those
    leaked a slot each, until the door stayed shut."""
    gate = Gate()

    async def user() -> None:
        async with gate.slot("e", 2, weight=1, max_waiting=None, timeout_s=5):
            await asyncio.sleep(0.01)

    for _ in range(3):
        tasks = [asyncio.create_task(user()) for _ in range(10)]
        await asyncio.sleep(0.015)  # two hold slots (or are done), the rest wait
        for task in tasks if which == "all" else tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert (gate.active, gate.waiting) == (0, 0), gate.status(2)
    assert gate.status(2)["timed_out"] == 0


async def test_slots_added_by_a_reload_let_waiters_in_at_once() -> None:
    gate, served, hold = Gate(), [], asyncio.Event()
    holder = asyncio.create_task(enter(gate, "x", served, hold))
    await settle()
    waiter = asyncio.create_task(enter(gate, "y", served, hold))
    await settle()
    assert served == ["x"]
    async with gate.slot("z", 3, weight=1, max_waiting=None, timeout_s=1):  # the live value is now 3
        await settle()
        assert set(served) == {"x", "y"}
    hold.set()
    await asyncio.gather(holder, waiter)
    assert gate.active == 0


# Through the gateway, for real.

SMALL = {
    "thread_pool": {"min_workers": 2, "max_workers": 2, "max_queue": 2, "max_per_entity": 8},
    "routes": [{"path": "/sleep", "handler": "sleep"}],
}


async def test_a_storm_past_the_thread_pool_waits_at_the_door_instead_of_being_refused(
    gateway: Gateway,
) -> None:
    """2 workers and 2 queued: 40 requests at once used to get 36 refusals (503 thread_pool_full) after
    being read and scored; now they wait before that, and are all served."""
    client = await gateway(SMALL)
    trusted = bearer("storm", trust="trusted")
    answers = await asyncio.gather(*(client.get("/sleep?s=0.02", headers=trusted) for _ in range(40)))
    assert [r.status for r in answers] == [200] * 40
    admission = (await (await client.get("/stats", headers=bearer("ops", role="admin"))).json())["admission"]
    assert admission["slots"] == 4 and admission["waited"] >= 30 and admission["active"] == 0


async def test_one_callers_flood_cannot_crowd_out_another(gateway: Gateway) -> None:
    client = await gateway({**SMALL, "admission": {"max_waiting_per_caller": 6}})
    finished: list[tuple[str, int]] = []

    async def get(who: str, seconds: float) -> Any:
        response = await client.get(f"/sleep?s={seconds}", headers=bearer(who, trust="untrusted"))
        await response.read()
        finished.append((who, response.status))
        return response

    storm = [asyncio.create_task(get("flood", 0.05)) for _ in range(30)]
    await asyncio.sleep(0.05)  # the flood holds the 4 slots and its line (6) is full
    other = await get("quiet", 0)
    answers = await asyncio.gather(*storm)
    assert other.status == 200
    served = [who for who, status in finished if status == 200]
    # Its line's turn comes with the first freed slot: not after the flood's 6 waiting.
    assert served.index("quiet") <= 4, served
    statuses = [r.status for r in answers]
    assert statuses.count(200) == 10 and statuses.count(429) == 20  # 4 slots + 6 waiting; the rest at once
    refused = next(r for r in answers if r.status == 429)
    assert (await refused.json())["error"] == "too_many_waiting" and refused.headers["Retry-After"]
    assert client.app is not None
    assert client.app[GATEWAY].admission.active == 0
