"""The native operators, one family per module; convkern.functional re-exports them.

Each module defines ``__all__`` and ``DIFFERENTIABLE``: for every op with a backward,
the names of the forward arguments it returns gradients for, in order. ``<op>_backward
(grad_output, *forward args)`` returns one gradient per name (None for an absent input).
"""
