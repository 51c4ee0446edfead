"""activation operators (native kernels)."""
__all__: list = []
DIFFERENTIABLE: dict = {}
