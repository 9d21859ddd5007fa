"""Ids (service/ids.py): what `is_id` accepts is exactly what `new_id` makes."""

from __future__ import annotations

import os
import threading

import pytest

from juncture.service.ids import RandomPool, is_id, new_id


def test_a_new_id_is_an_id_of_its_prefix_only() -> None:
    made = new_id("s")
    assert is_id("s", made)
    assert not is_id("d", made)
    assert not is_id("s", made.upper())


@pytest.mark.parametrize(
    "text",
    ["", "s_", "s_" + "0" * 31, "s_" + "0" * 33, "s_" + "0" * 31 + "g", "s_" + "0" * 31 + "\n",
     "s-" + "0" * 32, "x_" + "0" * 32, "s_" + "0" * 31 + "A", 42, None],
)  # fmt: skip
def test_anything_else_is_not(text: object) -> None:
    assert not is_id("s", text)


def test_the_random_pool_hands_out_each_byte_once_and_refills() -> None:
    pool = RandomPool(fetch=64)
    taken = [pool.take(10) for _ in range(20)]  # 200 bytes: refilled past each 64
    assert all(len(part) == 10 for part in taken)
    assert len(set(taken)) == 20
    assert len(pool.take(100)) == 100  # more than a fetch at once


def test_ids_are_unique_across_threads_and_a_forked_child() -> None:
    seen: list[str] = []

    def make() -> None:
        seen.extend(new_id("d") for _ in range(2000))

    threads = [threading.Thread(target=make) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child's ids, from its own pool, not its parent's bytes
        os.write(write, " ".join(new_id("d") for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    with os.fdopen(read) as pipe:
        children = pipe.read().split()
    parents = [new_id("d") for _ in range(50)]
    assert len(children) == 50
    randoms = [i[-20:] for i in [*seen, *children, *parents]]
    assert len(set(randoms)) == len(randoms)
