"""convkern CUDA kernels vs PyTorch (cuDNN / cuBLAS) on real layer shapes, float32.

    python benchmarks/bench_cuda.py [--batches 1 32] [--repeat 50] [--out results/cuda]

* convolutions: ResNet-50, VGG-16, GoogLeNet (4a) and MobileNetV2 layer shapes
  (benchmarks/shapes.py, VGG-16 below) at batch 1 and 32, forward, convkern's two GEMM
  algorithms ('implicit', 'im2col') and torch.nn.functional.conv2d with cuDNN;
* pooling and batch norm: achieved bandwidth (bytes read + written per second) next to the
  measured device-to-device copy bandwidth (cudaMemcpy of a 256 MiB buffer);
* timing: CUDA events around `repeat` launches after warm-up, median of 5 rounds.

TF32 is disabled in torch (``allow_tf32 = False``) so both sides compute in true float32.
Writes ``<out>.md`` (a Markdown table) and ``<out>.json``. Without a GPU, CuPy or torch it
prints why and exits with status 0 (nothing to measure), so CI can import / smoke it.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from shapes import GOOGLENET_4A_CONV, MOBILENETV2_CONV, NORM, POOL, RESNET50_CONV  # noqa: E402

# (name, C, H, W, K, R, S, stride, pad, groups)
VGG16_CONV = [
    ("vgg16.conv1_1 3->64", 3, 224, 224, 64, 3, 3, 1, 1, 1),
    ("vgg16.conv1_2 64->64", 64, 224, 224, 64, 3, 3, 1, 1, 1),
    ("vgg16.conv2_2 128->128", 128, 112, 112, 128, 3, 3, 1, 1, 1),
    ("vgg16.conv3_3 256->256", 256, 56, 56, 256, 3, 3, 1, 1, 1),
    ("vgg16.conv4_3 512->512", 512, 28, 28, 512, 3, 3, 1, 1, 1),
    ("vgg16.conv5_3 512->512", 512, 14, 14, 512, 3, 3, 1, 1, 1),
]

CONV_SETS = [("ResNet-50", RESNET50_CONV), ("VGG-16", VGG16_CONV), ("GoogLeNet", GOOGLENET_4A_CONV),
             ("MobileNetV2", MOBILENETV2_CONV)]


def _unavailable(reason: str) -> int:
    print(f"bench_cuda: skipped - {reason}")
    return 0


def _imports():
    try:
        import cupy as cp
    except ImportError:
        return None, None, None, "CuPy is not installed (pip install cupy-cuda12x)"
    try:
        import torch
    except ImportError:
        return None, None, None, "PyTorch is not installed"
    import convkern
    if not convkern.info()["cuda_built"]:
        return None, None, None, "convkern was built without CUDA"
    try:
        if cp.cuda.runtime.getDeviceCount() == 0 or not torch.cuda.is_available():
            return None, None, None, "no CUDA device visible (to CuPy or torch)"
    except Exception as e:  # no driver
        return None, None, None, f"no CUDA device ({e})"
    return cp, torch, convkern, ""


class Timer:
    """Median milliseconds per call of fn() over rounds of `repeat` calls, CUDA events on CuPy's stream."""

    def __init__(self, cp, repeat: int, rounds: int = 5, warmup: int = 5):
        self.cp, self.repeat, self.rounds, self.warmup = cp, repeat, rounds, warmup

    def __call__(self, fn) -> float:
        cp = self.cp
        for _ in range(self.warmup):
            fn()
        cp.cuda.get_current_stream().synchronize()
        times = []
        for _ in range(self.rounds):
            start, stop = cp.cuda.Event(), cp.cuda.Event()
            start.record()
            for _ in range(self.repeat):
                fn()
            stop.record()
            stop.synchronize()
            times.append(cp.cuda.get_elapsed_time(start, stop) / self.repeat)
        return statistics.median(times)


def bench_conv(cp, torch, ck, timer, batches):
    F = ck.functional
    rows = []
    for net, layers in CONV_SETS:
        for (name, C, H, W, K, R, S, stride, pad, groups) in layers:
            for N in batches:
                rng = cp.random.default_rng(0)
                x = rng.standard_normal((N, C, H, W), dtype=cp.float32)
                w = rng.standard_normal((K, C // groups, R, S), dtype=cp.float32)
                tx, tw = torch.as_tensor(x, device="cuda"), torch.as_tensor(w, device="cuda")
                P = (H + 2 * pad - R) // stride + 1
                Q = (W + 2 * pad - S) // stride + 1
                flops = 2.0 * N * K * P * Q * (C // groups) * R * S
                row = {"net": net, "layer": name, "batch": N, "gflop": flops / 1e9}
                algos = ["implicit", "im2col"] if groups == 1 else ["depthwise"]
                for algo in algos:
                    if algo == "depthwise":
                        ms = timer(lambda: F.conv2d(x, w, stride=stride, padding=pad, groups=groups))
                    else:
                        ck.cuda.set_conv_algo(algo)
                        ms = timer(lambda: F.conv2d(x, w, stride=stride, padding=pad, groups=groups, algo="im2col"))
                    row[f"convkern_{algo}_ms"] = ms
                ck.cuda.set_conv_algo("auto")
                # cuDNN on CuPy's stream (torch.cuda.ExternalStream keeps both on one stream)
                with torch.cuda.stream(torch.cuda.ExternalStream(cp.cuda.get_current_stream().ptr)):
                    row["cudnn_ms"] = timer(lambda: torch.nn.functional.conv2d(tx, tw, stride=stride, padding=pad,
                                                                             groups=groups))
                best = min(v for k, v in row.items() if k.startswith("convkern_"))
                row["convkern_best_ms"] = best
                row["convkern_tflops"] = flops / best / 1e9
                row["cudnn_tflops"] = flops / row["cudnn_ms"] / 1e9
                row["ratio_vs_cudnn"] = row["cudnn_ms"] / best
                rows.append(row)
                print(f"{net:12s} {name:34s} N={N:3d}  convkern {best:8.3f} ms  cuDNN {row['cudnn_ms']:8.3f} ms")
    return rows


def copy_bandwidth(cp, timer) -> float:
    """Device-to-device copy bandwidth in GB/s (bytes read + written)."""
    n = 256 << 20
    a, b = cp.empty(n, cp.uint8), cp.empty(n, cp.uint8)
    ms = timer(lambda: b.data.copy_from_device_async(a.data, n))
    return 2 * n / ms / 1e6


def bench_bandwidth(cp, torch, ck, timer, batches):
    F = ck.functional
    rows = []
    for N in batches:
        rng = cp.random.default_rng(0)
        for (name, C, H, W, k, s, p) in POOL:
            x = rng.standard_normal((N, C, H, W), dtype=cp.float32)
            y = F.max_pool2d(x, k, stride=s, padding=p)
            moved = (x.size + y.size) * 4
            ms = timer(lambda: F.max_pool2d(x, k, stride=s, padding=p))
            tx = torch.as_tensor(x, device="cuda")
            tms = timer(lambda: torch.nn.functional.max_pool2d(tx, k, stride=s, padding=p))
            rows.append({"op": "max_pool2d", "shape": name, "batch": N, "convkern_ms": ms, "torch_ms": tms,
                         "convkern_gbs": moved / ms / 1e6, "torch_gbs": moved / tms / 1e6})
        for (name, C, H, W) in NORM:
            x = rng.standard_normal((N, C, H, W), dtype=cp.float32)
            rm, rv = cp.zeros(C, cp.float32), cp.ones(C, cp.float32)
            wt, bs = cp.ones(C, cp.float32), cp.zeros(C, cp.float32)
            tx = torch.as_tensor(x, device="cuda")
            trm, trv = torch.zeros(C, device="cuda"), torch.ones(C, device="cuda")
            for training in (True, False):
                # training reads x twice (statistics, then normalize) and writes y once
                moved = x.size * 4 * (3 if training else 2)
                ms = timer(lambda: F.batch_norm(x, rm, rv, wt, bs, training=training))
                tms = timer(lambda: torch.nn.functional.batch_norm(tx, trm, trv, training=training))
                rows.append({"op": f"batch_norm({'train' if training else 'eval'})", "shape": name, "batch": N,
                             "convkern_ms": ms, "torch_ms": tms, "convkern_gbs": moved / ms / 1e6,
                             "torch_gbs": moved / tms / 1e6})
    return rows


def write(out: str, meta: dict, conv_rows, bw_rows, copy_gbs: float) -> None:
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump({"meta": meta, "conv": conv_rows, "bandwidth": bw_rows, "copy_gbs": copy_gbs}, f, indent=1)
    lines = [f"# convkern CUDA vs PyTorch ({meta['gpu']})", "",
             f"torch {meta['torch']} (cuDNN {meta['cudnn']}), CuPy {meta['cupy']}, convkern {meta['convkern']}; "
             "float32, TF32 off, CUDA events, median of 5 rounds.", "",
             "## Convolution forward", "",
             "| net | layer | N | GFLOP | convkern implicit ms | convkern im2col ms | cuDNN ms | convkern TFLOP/s |"
             " cuDNN TFLOP/s | cuDNN time / convkern time |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in conv_rows:
        imp = r.get("convkern_implicit_ms", r.get("convkern_depthwise_ms"))
        i2c = r.get("convkern_im2col_ms")
        lines.append(f"| {r['net']} | {r['layer']} | {r['batch']} | {r['gflop']:.2f} | {imp:.3f} | "
                     f"{'-' if i2c is None else f'{i2c:.3f}'} | {r['cudnn_ms']:.3f} | {r['convkern_tflops']:.2f} | "
                     f"{r['cudnn_tflops']:.2f} | {r['ratio_vs_cudnn']:.2f} |")
    lines += ["", f"## Bandwidth (device-to-device copy: {copy_gbs:.0f} GB/s)", "",
              "| op | shape | N | convkern ms | torch ms | convkern GB/s | torch GB/s | convkern % of copy |",
              "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in bw_rows:
        lines.append(f"| {r['op']} | {r['shape']} | {r['batch']} | {r['convkern_ms']:.3f} | {r['torch_ms']:.3f} | "
                     f"{r['convkern_gbs']:.0f} | {r['torch_gbs']:.0f} | {100 * r['convkern_gbs'] / copy_gbs:.0f}% |")
    with open(out + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {out}.md and {out}.json")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--out", default="results/bench_cuda")
    ap.add_argument("--skip-conv", action="store_true")
    args = ap.parse_args(argv)
    cp, torch, ck, why = _imports()
    if cp is None:
        return _unavailable(why)
    torch.backends.cudnn.enabled = True
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    timer = Timer(cp, args.repeat)
    meta = {"gpu": ck.info()["cuda_devices"][0], "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version(), "cupy": cp.__version__, "convkern": ck.__version__,
            "python": platform.python_version(), "batches": args.batches, "repeat": args.repeat}
    conv_rows = [] if args.skip_conv else bench_conv(cp, torch, ck, timer, args.batches)
    copy_gbs = copy_bandwidth(cp, timer)
    bw_rows = bench_bandwidth(cp, torch, ck, timer, args.batches)
    write(args.out, meta, conv_rows, bw_rows, copy_gbs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
