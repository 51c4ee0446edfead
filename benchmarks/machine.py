"""This machine's FP32 FMA peak and DRAM bandwidth, measured now, for the % of peak columns.

A cloud VM is not always placed on the same CPU: the 2-core VM of this project has been an
AVX-512 Zen 4 (about 230 GFLOP/s for 2 cores) and an AVX2-only Zen 3 (about 140), so a peak read
from a file written on another day can be off by 1.6x. `measure()` compiles a small C program
(gcc, OpenMP) once per CPU model and runs it (about 1.5 s):

* FMA peak: each thread runs 12 independent chains of vector FMAs (AVX-512 when the CPU has
  it, else AVX2+FMA); GFLOP/s = 2 * lanes * FMAs / s.
* DRAM triad: a[i] = b[i] + s * c[i] over 3 x 80 MB arrays with all threads, STREAM counting
  (24 bytes per element, no write-allocate).

Falls back to ../shared/tools/peak.json (and says so) when no compiler is found.
"""
from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

_SRC = r"""
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <omp.h>
#define CHAINS 12
#if defined(USE512)
typedef __m512 V;
#define LANES 16
#define FMA _mm512_fmadd_ps
#define SET1 _mm512_set1_ps
#else
typedef __m256 V;
#define LANES 8
#define FMA _mm256_fmadd_ps
#define SET1 _mm256_set1_ps
#endif
static float fma_chains(long iters, float seed) {
  V a[CHAINS], m = SET1(0.999999f), c = SET1(seed * 1e-7f);
  for (int i = 0; i < CHAINS; i++) a[i] = SET1(seed + i);
  for (long it = 0; it < iters; it++) {
#pragma GCC unroll 12
    for (int i = 0; i < CHAINS; i++) a[i] = FMA(a[i], m, c);
  }
  float s = 0, o[LANES];
  for (int i = 0; i < CHAINS; i++) { _mm256_storeu_ps(o, *(__m256 *)&a[i]); s += o[0]; }
  return s;
}
int main(int argc, char **argv) {
  int nt = atoi(argv[1]);
  long iters = 20000000;
  float sink = 0;
  double best = 0;
  for (int rep = 0; rep < 3; rep++) {
    double t = omp_get_wtime();
#pragma omp parallel num_threads(nt) reduction(+ : sink)
    sink += fma_chains(iters, 1.0f + omp_get_thread_num());
    t = omp_get_wtime() - t;
    double g = 2.0 * LANES * CHAINS * (double)iters * nt / t / 1e9;
    if (g > best) best = g;
  }
  long n = 20000000;
  float *a = aligned_alloc(64, n * 4), *b = aligned_alloc(64, n * 4), *c = aligned_alloc(64, n * 4);
#pragma omp parallel for num_threads(nt) schedule(static)
  for (long i = 0; i < n; i++) { a[i] = 0; b[i] = 1; c[i] = 2; }
  double bw = 0;
  for (int rep = 0; rep < 4; rep++) {
    double t = omp_get_wtime();
#pragma omp parallel for num_threads(nt) schedule(static)
    for (long i = 0; i < n; i++) a[i] = b[i] + 0.5f * c[i];
    t = omp_get_wtime() - t;
    if (24.0 * n / t / 1e9 > bw) bw = 24.0 * n / t / 1e9;
  }
  printf("%.3f %.3f %g\n", best, bw, sink + a[n / 2]);
  return 0;
}
"""


def _cpu() -> tuple[str, bool]:
    model, avx512 = platform.processor() or "unknown", False
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    avx512 = " avx512f " in f" {line.split(':', 1)[1].strip()} "
                    break
    except OSError:
        pass
    return model, avx512


def _from_file(threads: int) -> dict:
    p = os.path.join(HERE, "..", "..", "shared", "tools", "peak.json")
    try:
        d = json.load(open(p))
        return dict(gflops=d["fp32_fma_gflops"]["avx2"][str(threads)], dram_gbs=d["triad_dram_gbs"][str(threads)],
                    source=f"{os.path.normpath(p)} (not measured now)")
    except (OSError, KeyError, ValueError):
        return dict(gflops=115.0 * threads, dram_gbs=33.0, source="built-in guess (nothing measured)")


def measure(threads: int = 2) -> dict:
    """{'gflops', 'dram_gbs', 'isa', 'cpu', 'source'} of this machine with `threads` threads."""
    model, avx512 = _cpu()
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        return dict(_from_file(threads), isa="?", cpu=model)
    key = hashlib.sha1(f"{model}{avx512}{_SRC}".encode()).hexdigest()[:12]
    exe = os.path.join(tempfile.gettempdir(), f"convkern_peak_{key}")
    try:
        if not os.path.exists(exe):
            src = exe + ".c"
            with open(src, "w") as f:
                f.write(_SRC)
            flags = ["-mavx512f", "-DUSE512"] if avx512 else ["-mavx2", "-mfma"]
            subprocess.run([cc, "-O2", "-fopenmp", *flags, "-o", exe, src], check=True, capture_output=True)
        out = subprocess.run([exe, str(threads)], check=True, capture_output=True, text=True, timeout=60).stdout
        g, bw = (float(v) for v in out.split()[:2])
    except (OSError, subprocess.SubprocessError, ValueError):
        return dict(_from_file(threads), isa="?", cpu=model)
    return dict(gflops=g, dram_gbs=bw, isa="avx512" if avx512 else "avx2", cpu=model, source="measured now")


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    print(json.dumps(measure(ap.parse_args().threads), indent=1))
