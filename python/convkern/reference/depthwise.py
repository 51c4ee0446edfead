"""depthwise: plain NumPy forward and backward (the oracle; never calls native code)."""
__all__: list = []
DIFFERENTIABLE: dict = {}
