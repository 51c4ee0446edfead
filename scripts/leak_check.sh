#!/usr/bin/env bash
# LeakSanitizer run of every operator (forward + backward, every ISA, both dtypes, default
# thread count) on the ASan build, reporting only leaks allocated by convkern's own code.
#   scripts/leak_check.sh            # builds build/asan if needed (as scripts/sanitize.sh)
# CPython and NumPy keep (and never free) lots of memory at exit, so LeakSanitizer's report of a
# Python process is long; scripts/lsan_filter.py keeps the leak records whose allocation stack
# passes through convkern's _C module and exits non-zero if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${CK_BUILD_DIR:-build/asan}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCONVKERN_CUDA=OFF \
      -DCONVKERN_SANITIZE=address,undefined >/dev/null
cmake --build "$BUILD" -j "${CK_JOBS:-2}"
PKG=$(mktemp -d)
LOG="$BUILD/lsan"  # the raw reports stay here for inspection
rm -rf "$LOG" && mkdir -p "$LOG"
trap 'rm -rf "$PKG"' EXIT
cp -r python/convkern "$PKG/"
rm -f "$PKG"/convkern/_C*.so
cp "$BUILD"/_C*.so "$PKG/convkern/"
# the real interpreter (a pyenv-style shell shim would itself run under the sanitizer)
PY=$(python -c 'import sys; print(sys.executable)')
export LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so)"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:malloc_context_size=40:fast_unwind_on_malloc=0:log_path=$LOG/lsan"
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
PYTHONMALLOC=malloc PYTHONPATH="$PKG:tests" "$PY" scripts/leak_workload.py "${CK_LEAK_CALLS:-20}" || status=$?
echo "workload exit status: $status (LeakSanitizer exits 23 when it reports any leak, CPython's included)"
LD_PRELOAD= ASAN_OPTIONS= "$PY" scripts/lsan_filter.py "$LOG"/lsan.*
