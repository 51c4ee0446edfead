#!/usr/bin/env bash
# Builds convkern with AddressSanitizer + UndefinedBehaviorSanitizer and runs the tests under it.
#   scripts/sanitize.sh                      # whole suite
#   scripts/sanitize.sh tests/test_conv.py -k im2col
#   CK_SAN_TIMEOUT=300 scripts/sanitize.sh tests/test_fuzz.py   # time-boxed (.ci/run)
# See docs/RELIABILITY.md (leaks: scripts/leak_check.sh).
# Python itself is not instrumented, so libasan must be preloaded; libstdc++ is preloaded
# with it, otherwise ASan cannot find the real __cxa_throw at start-up and every C++
# exception (a ValueError raised from a binding) aborts the process.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${CK_BUILD_DIR:-build/asan}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVKERN_CUDA=OFF \
      -DCONVKERN_SANITIZE=address,undefined >/dev/null
cmake --build "$BUILD" -j "${CK_JOBS:-2}"
PKG=$(mktemp -d)
trap 'rm -rf "$PKG"' EXIT
cp -r python/convkern "$PKG/"
rm -f "$PKG"/convkern/_C*.so
cp "$BUILD"/_C*.so "$PKG/convkern/"
# the real interpreter (a pyenv-style shell shim would itself run under the sanitizer)
PY=$(python -c 'import sys; print(sys.executable)')
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
# Leaks: CPython's own allocations at exit swamp LeakSanitizer; leaks are checked separately.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1:strict_init_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# CK_SAN_TIMEOUT=<seconds>: time-box the test run (CI); exit status 124 when it runs out.
TIMEOUT=()
if [ -n "${CK_SAN_TIMEOUT:-}" ]; then TIMEOUT=(timeout "$CK_SAN_TIMEOUT"); fi
# --capture=sys: a sanitizer report goes to fd 2 as the process halts; fd-level capture would
# swallow it (a UBSan halt in CI once showed only "rc=1" after a row of dots).
PYTHONPATH="$PKG" "${TIMEOUT[@]}" "$PY" -m pytest -q -p no:cacheprovider --capture=sys "${@:-tests}"
