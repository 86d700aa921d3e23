"""policy.workers: each worker process's share of the container pools."""

import pytest

from conftest import make_config
from policy.workers import share, worker_slice


@pytest.mark.parametrize(
    ("total", "count", "shares"),
    [(10, 2, [5, 5]), (10, 3, [4, 3, 3]), (3, 2, [2, 1]), (1, 2, [1, 0]), (0, 4, [0, 0, 0, 0])],
)
def test_shares_add_up_to_the_total(total: int, count: int, shares: list[int]) -> None:
    assert [share(total, i, count) for i in range(count)] == shares and sum(shares) == total


def test_each_worker_has_its_own_pools_and_their_sizes_add_up() -> None:
    config = make_config(
        {
            "docker": {"enabled": True, "warm_pool_size": 3, "max_containers": 10, "pool_name": "gw"},
            "routes": [
                {
                    "path": "/a/*",
                    "upstream": "http://127.0.0.1:9",
                    "isolated": {"image": "app:1", "port": 80},
                },
            ],
        }
    )
    assert worker_slice(config, 0, 1) is config  # one process: as configured
    slices = [worker_slice(config, i, 3) for i in range(3)]
    assert [s.docker.pool_name for s in slices] == ["gw-w0", "gw-w1", "gw-w2"]
    assert [(s.docker.warm_pool_size, s.docker.max_containers) for s in slices] == [(1, 4), (1, 3), (1, 3)]
    replicas = [s.routes[0].isolated for s in slices]
    assert [(r.warm_pool_size, r.max_containers) for r in replicas if r] == [(1, 4), (1, 3), (0, 3)]


def test_every_worker_gets_a_container_even_when_there_are_fewer_than_workers() -> None:
    config = make_config({"docker": {"enabled": True, "warm_pool_size": 1, "max_containers": 1}})
    assert [worker_slice(config, i, 2).docker.max_containers for i in range(2)] == [1, 1]
