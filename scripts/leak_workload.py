"""Workload for scripts/leak_check.sh: every operator forward + backward, every ISA, both
dtypes, N times each (argv[1]), plus error paths (C++ exceptions thrown from the bindings)."""
import sys

import numpy as np

import convkern
import convkern.functional as F
from convkern import _C
from test_threads import OPS, _cases

n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
calls = 0
for isa in convkern.available_isas():
    with convkern.isa(isa):
        for dtype in (np.float32, np.float64):
            cases = _cases(1, dtype)
            for op in OPS:
                args, kw = cases[op]
                for _ in range(n):
                    y = getattr(F, op)(*args, **kw)
                    y0 = y[0] if isinstance(y, tuple) else y
                    getattr(F, op + "_backward")(np.ones_like(y0), *args, **kw)
                    calls += 2
# error paths: a ValueError raised in C++ (bindings re-check sizes), many times
for _ in range(200):
    try:
        _C.gemm(np.ones((2, 3)), np.ones((4, 2)), np.ones((2, 2)))
    except ValueError:
        calls += 1
print(f"leak workload: {calls} calls")
