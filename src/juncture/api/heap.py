"""The heap of a long-running server: what is loaded at start is kept out of the collector.

CPython's cyclic garbage collector walks every tracked object of a generation when it runs,
and a full collection walks them all: the modules, the compiled journey plans, the CEL
programs, the caches. A server allocates fast (a decision, a batch of 2,000 sessions a sweep
decodes), so collections come often, and each one paid for walking that start-up heap again:
it was about three quarters of decoding a stored session in a sweep batch (measured: 8.1 µs a
session with the start-up heap, 2.5 µs without it).

`settle` collects once and then freezes what survives (`gc.freeze`): those objects are never
walked again (and never freed, which is what start-up state is for). What is made later is
collected as usual.
"""

from __future__ import annotations

import gc


def settle() -> int:
    """Collect, then move every surviving object out of the collector's reach; how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
