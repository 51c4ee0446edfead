#!/usr/bin/env bash
# Fast in-place development build: compiles convkern._C into build/dev and copies it into
# python/convkern/, so `PYTHONPATH=python pytest` runs against the working tree.
# Usage: scripts/dev_build.sh [extra cmake -D options], e.g. -DCONVKERN_CUDA=OFF
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${CK_BUILD_DIR:-build/dev}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONVKERN_CUDA=${CONVKERN_CUDA:-OFF} "$@" >/dev/null
cmake --build "$BUILD" -j "${CK_JOBS:-2}"
cp "$BUILD"/_C*.so python/convkern/
echo "built $(ls python/convkern/_C*.so)"
