"""Memory: 10,000 forward + backward calls of every operator leave the process RSS steady
(native side: scratch buffers are grow-only and reused) and leave no Python objects behind
(tracemalloc). Slow: run with ``pytest -m slow tests/test_leaks.py``.

The LeakSanitizer run (native leaks reported with the allocating stack) is
``scripts/leak_check.sh`` (see docs/RELIABILITY.md)."""
from __future__ import annotations

import gc
import os
import tracemalloc

import numpy as np
import pytest

import convkern.functional as F
from test_threads import OPS, _cases

CALLS = int(os.environ.get("CK_LEAK_CALLS", "10000"))
WARMUP = 300


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def one_thread():
    """One OpenMP thread: on a loaded 2-core machine, spinning OpenMP teams make small calls
    100x slower; the leak check is about per-call bookkeeping (scripts/leak_check.sh covers the
    multi-threaded paths under LeakSanitizer)."""
    n = F.get_num_threads()
    F.set_num_threads(int(os.environ.get("CK_LEAK_THREADS", "1")))
    yield
    F.set_num_threads(n)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
@pytest.mark.parametrize("op", OPS)
def test_no_leak_over_many_calls(op, record_property, one_thread):
    args, kw = _cases(1)[op]
    fwd, bwd = getattr(F, op), getattr(F, op + "_backward")
    y = fwd(*args, **kw)
    g = np.ones_like(y[0] if isinstance(y, tuple) else y)

    def call():
        fwd(*args, **kw)
        bwd(g, *args, **kw)

    for _ in range(WARMUP):
        call()
    gc.collect()
    tracemalloc.start()
    snap0 = tracemalloc.take_snapshot()
    rss0 = _rss()
    for _ in range(CALLS):
        call()
    gc.collect()
    rss1 = _rss()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    flt = [tracemalloc.Filter(False, tracemalloc.__file__), tracemalloc.Filter(False, __file__)]
    py_growth = sum(s.size_diff for s in snap1.filter_traces(flt).compare_to(snap0.filter_traces(flt), "filename"))
    record_property("rss_growth", rss1 - rss0)
    record_property("python_growth", py_growth)
    print(f"{op}: {CALLS} fwd+bwd calls, RSS {(rss1 - rss0) / 1024:+.0f} KiB, Python heap {py_growth / 1024:+.1f} KiB")
    # 1 MiB over 10,000 calls: a leak of >= ~100 bytes per call would show
    assert rss1 - rss0 < (1 << 20), f"{op}: RSS grew by {(rss1 - rss0) / 1024:.0f} KiB over {CALLS} calls"
    assert py_growth < (64 << 10), f"{op}: Python heap grew by {py_growth / 1024:.1f} KiB over {CALLS} calls"
