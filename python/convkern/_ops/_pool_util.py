"""Argument handling shared by the native pooling ops and their NumPy reference
(no native code here): input/unbatched handling, window parameters, output sizes."""
from __future__ import annotations

from ._util import as_float, as_int, check_flag, check_ndim, check_nonempty, check_shape, ntuple


def prep_input(input):
    """(4-d C-contiguous float array, batched flag). Accepts (N, C, H, W) or (C, H, W)."""
    x = as_float(input, "input")
    check_ndim(x, (3, 4), "input", "(N, C, H, W) or unbatched (C, H, W)")
    check_nonempty(x, "input", range(x.ndim - 3, x.ndim))  # batch 0 gives an empty output, like torch
    batched = x.ndim == 4
    return (x if batched else x[None]), batched


def unbatch(y, batched):
    return y if batched else y[0]


def prep_grad(grad_output, x4, batched, out_shape4):
    """grad_output as a 4-d array of the forward output's shape (and the input's dtype)."""
    g = as_float(grad_output, "grad_output", like=x4)
    check_shape(g, out_shape4 if batched else out_shape4[1:], "grad_output")
    return g if batched else g[None]


def pool_out_size(n, k, s, pad, d, ceil_mode):
    """torch's pooling_output_shape: floor division (also of negative numerators), and in
    ceil mode the last window must start inside the input or the left padding."""
    out = (n + 2 * pad - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + pad:
        out -= 1
    return out


def _stride(stride, kernel):
    if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0):
        return kernel
    return ntuple(stride, 2, "stride", 1)


def window(x4, kernel_size, stride, padding, dilation, ceil_mode):
    """Validated (k, s, p, d, (P, Q)) of a max/avg pooling window, torch's rules."""
    k = ntuple(kernel_size, 2, "kernel_size", 1)
    s = _stride(stride, k)
    p = ntuple(padding, 2, "padding", 0)
    d = ntuple(dilation, 2, "dilation", 1)
    ceil_mode = check_flag(ceil_mode, "ceil_mode")
    for i in range(2):
        if p[i] > k[i] // 2:
            raise ValueError(f"padding: should be at most half of kernel_size, got padding={p} and kernel_size={k}")
    if max(k + s + d) > 2**30:
        raise ValueError(f"kernel_size: window parameters too large (kernel_size={k}, stride={s}, dilation={d})")
    H, W = x4.shape[2:]
    P = pool_out_size(H, k[0], s[0], p[0], d[0], ceil_mode)
    Q = pool_out_size(W, k[1], s[1], p[1], d[1], ceil_mode)
    if P < 1 or Q < 1:
        raise ValueError(f"input: spatial size {(H, W)} is too small for kernel_size={k}, dilation={d}, "
                         f"padding={p}: the output would be {(P, Q)}")
    return k, s, p, d, ceil_mode, (P, Q)


def divisor(divisor_override):
    if divisor_override is None:
        return 0
    v = as_int(divisor_override, "divisor_override")
    if v == 0:
        raise ValueError("divisor_override: must not be zero")
    if abs(v) > 2**62:
        raise ValueError(f"divisor_override: too large ({v})")
    return v


def adaptive_size(output_size, x4):
    """(P, Q) from an int, a pair, with None entries keeping the input's size."""
    H, W = x4.shape[2:]
    if isinstance(output_size, (list, tuple)):
        if len(output_size) != 2:
            raise ValueError(f"output_size: expected an int or 2 values, got {output_size!r}")
        vals = tuple(output_size)
    elif output_size is None:
        raise TypeError("output_size: expected an int or a pair, got None")
    else:
        vals = (output_size, output_size)
    out = []
    for v, n in zip(vals, (H, W)):
        out.append(n if v is None else as_int(v, "output_size", 1))
    if out[0] * out[1] > 2**40:
        raise ValueError(f"output_size: {tuple(out)} is too large")
    return tuple(out)
