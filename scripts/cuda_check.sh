#!/usr/bin/env bash
# Everything the CUDA path needs checked on a machine WITH a GPU (see docs/CUDA.md):
# build for this GPU's architecture, run the CUDA tests, compute-sanitizer (memcheck on the
# main kernels, racecheck on the shared-memory reductions / GEMM), then the benchmark.
# Usage: scripts/cuda_check.sh [arch, default: detected, e.g. 90]   (needs cupy, torch for the benchmark)
set -euo pipefail
cd "$(dirname "$0")/.."
ARCH=${1:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)}
OUT=${CK_CUDA_OUT:-results}
mkdir -p "$OUT"
CONVKERN_CUDA=ON CK_BUILD_DIR=build/cuda scripts/dev_build.sh -DCMAKE_CUDA_ARCHITECTURES="$ARCH"
export PYTHONPATH=python
python -m convkern info
python -m pytest -q tests/test_cuda.py tests/test_cuda_plumbing.py 2>&1 | tee "$OUT/test_cuda.log"
if command -v compute-sanitizer >/dev/null 2>&1; then
  compute-sanitizer --tool memcheck --error-exitcode 1 \
    python -m pytest -q -x tests/test_cuda.py -k "conv2d and not direct or pool or linear or depthwise" \
    2>&1 | tee "$OUT/memcheck.log"
  compute-sanitizer --tool racecheck --error-exitcode 1 \
    python -m pytest -q -x tests/test_cuda.py -k "batch_norm or lrn_layer_norm or adaptive_global_pool or losses or prelu_softmax or linear" \
    2>&1 | tee "$OUT/racecheck.log"
fi
python benchmarks/bench_cuda.py --batches 1 32 --out "$OUT/bench_cuda_sm$ARCH"
