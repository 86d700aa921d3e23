"""The collector's settings for a server (proxy/heap.py): frozen objects leave the passes, and a reload's
garbage, frozen before it became garbage, is still collected once the gateway settles again."""

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from proxy import heap


class Node:
    """A cycle: only the cyclic collector can free it."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def restore_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_settle_freezes_what_lives_and_frees_what_an_earlier_settle_froze() -> None:
    kept, dropped = Node(), Node()
    gone = weakref.ref(dropped)
    heap.settle()
    assert gc.get_freeze_count() > 0
    del dropped
    gc.collect()
    assert gone() is not None  # frozen: a collection does not see it (the catch heap.py documents)
    heap.settle()
    assert gone() is None and kept.me is kept


async def test_a_reload_is_settled_after_its_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "CHECK_S", 0.01)
    version = [1]
    old = Node()
    gone = weakref.ref(old)
    task = asyncio.create_task(heap.keep_settled(lambda: version[0], grace_s=0.2))
    try:
        await asyncio.sleep(0.05)
        assert gc.get_threshold()[0] == heap.YOUNG_THRESHOLD and gc.get_freeze_count() > 0
        del old  # the old config's last request is done...
        await asyncio.sleep(0.1)
        gc.collect()
        assert gone() is not None  # ...but nothing was reloaded: frozen, kept
        version[0] = 2  # a reload
        await asyncio.sleep(0.1)
        assert gone() is not None  # within its grace: not settled yet
        for _ in range(100):  # bounded: 1 s
            if gone() is None:
                break
            await asyncio.sleep(0.01)
        assert gone() is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
