"""convkern as an ONNX backend (``onnx.backend.base.Backend``): run ONNX CNN models on
convkern's kernels, without onnxruntime or PyTorch.  Needs ``pip install convkern[onnx]``.

    import convkern.onnx as ckonnx
    rep = ckonnx.prepare("model.onnx")
    outputs = rep.run([x])
"""
from .backend import (Backend, BackendRep, ModelLoadError, UnsupportedOperatorError, is_compatible, load_model,
                      prepare, run_model, run_node, supports_device)
from .ops import OPS, OnnxRuntimeError

__all__ = ["Backend", "BackendRep", "prepare", "run_model", "run_node", "supports_device", "is_compatible",
           "load_model", "ModelLoadError", "UnsupportedOperatorError", "OnnxRuntimeError", "OPS", "supported_ops"]


def supported_ops():
    """Sorted list of the ai.onnx operator types this backend executes."""
    return sorted(OPS)
