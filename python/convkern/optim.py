"""Optimizers and learning-rate schedules with torch.optim's update rules.

``SGD(params, lr, momentum=0, dampening=0, weight_decay=0, nesterov=False)``,
``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0)``; schedules
``StepLR(opt, step_size, gamma=0.1)`` and ``ReduceLROnPlateau(opt, mode='min', factor=0.1,
patience=10, threshold=1e-4, cooldown=0, min_lr=0)`` (the AlexNet/VGG/ResNet recipe: divide the
learning rate by 10 when the validation metric stops improving).
"""
from __future__ import annotations

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "StepLR", "ReduceLROnPlateau"]


class Optimizer:
    def __init__(self, params, lr):
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("params: the optimizer got no parameters")
        if lr < 0:
            raise ValueError(f"lr: must be >= 0, got {lr}")
        self.lr = float(lr)
        self.state = {}
        self.step_count = 0

    def zero_grad(self, set_to_none: bool = True):
        for p in self.params:
            p.grad = None if set_to_none or p.grad is None else np.zeros_like(p.grad)

    def state_dict(self) -> dict:
        """Flat {name: array} (saveable with convkern.io): lr, step count, per-parameter buffers."""
        out = {"lr": np.array(self.lr), "step_count": np.array(self.step_count)}
        for i, p in enumerate(self.params):
            for k, v in self.state.get(id(p), {}).items():
                out[f"state.{i}.{k}"] = v
        return out

    def load_state_dict(self, sd: dict):
        self.lr = float(sd["lr"])
        self.step_count = int(sd["step_count"])
        self.state = {}
        for key, v in sd.items():
            if key.startswith("state."):
                _, i, k = key.split(".", 2)
                p = self.params[int(i)]
                self.state.setdefault(id(p), {})[k] = np.array(v, dtype=p.data.dtype)


class SGD(Optimizer):
    """torch.optim.SGD: g += wd*p; buf = momentum*buf + (1-dampening)*g; step = g + momentum*buf
    (nesterov) or buf; p -= lr*step."""

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(params, lr)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov: needs momentum > 0 and dampening 0")
        self.momentum, self.dampening, self.weight_decay, self.nesterov = momentum, dampening, weight_decay, nesterov

    def step(self):
        self.step_count += 1
        for p in self.params:
            if p.grad is None or not p.requires_grad:
                continue
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                st = self.state.setdefault(id(p), {})
                buf = st.get("momentum_buffer")
                if buf is None:
                    buf = np.array(g, dtype=p.data.dtype, copy=True)
                else:
                    buf *= self.momentum
                    buf += (1 - self.dampening) * g
                st["momentum_buffer"] = buf
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= (self.lr * g).astype(p.data.dtype, copy=False)


class Adam(Optimizer):
    """torch.optim.Adam (L2 weight decay added to the gradient, bias-corrected moments)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, lr)
        self.betas, self.eps, self.weight_decay = betas, eps, weight_decay

    def step(self):
        self.step_count += 1
        b1, b2 = self.betas
        for p in self.params:
            if p.grad is None or not p.requires_grad:
                continue
            g = p.grad
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            st = self.state.setdefault(id(p), {})
            if "exp_avg" not in st:
                st["exp_avg"] = np.zeros_like(p.data)
                st["exp_avg_sq"] = np.zeros_like(p.data)
                st["step"] = np.zeros((), np.int64)
            st["step"] = st["step"] + 1
            t = int(st["step"])
            m, v = st["exp_avg"], st["exp_avg_sq"]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            denom = np.sqrt(v / (1 - b2 ** t)) + self.eps
            p.data -= ((self.lr / (1 - b1 ** t)) * m / denom).astype(p.data.dtype, copy=False)


class StepLR:
    """lr = base_lr * gamma ** (epoch // step_size); call ``step()`` once per epoch."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.optimizer, self.step_size, self.gamma = optimizer, int(step_size), float(gamma)
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def step(self):
        self.last_epoch += 1
        self.optimizer.lr = self.base_lr * self.gamma ** (self.last_epoch // self.step_size)
        return self.optimizer.lr


class ReduceLROnPlateau:
    """Multiply lr by ``factor`` when the metric has not improved for ``patience`` epochs."""

    def __init__(self, optimizer, mode="min", factor=0.1, patience=10, threshold=1e-4, cooldown=0, min_lr=0.0):
        if mode not in ("min", "max"):
            raise ValueError(f"mode: expected 'min' or 'max', got {mode!r}")
        if not 0 < factor < 1:
            raise ValueError(f"factor: must be in (0, 1), got {factor}")
        self.optimizer, self.mode, self.factor, self.patience = optimizer, mode, factor, int(patience)
        self.threshold, self.cooldown, self.min_lr = threshold, int(cooldown), float(min_lr)
        self.best = np.inf if mode == "min" else -np.inf
        self.bad_epochs = 0
        self.cooldown_counter = 0

    def _better(self, a):
        if self.mode == "min":
            return a < self.best * (1 - self.threshold) if self.best > 0 else a < self.best - abs(self.best) * self.threshold
        return a > self.best * (1 + self.threshold) if self.best > 0 else a > self.best + abs(self.best) * self.threshold

    def step(self, metric):
        metric = float(metric)
        if self._better(metric):
            self.best, self.bad_epochs = metric, 0
        else:
            self.bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.bad_epochs = 0
        if self.bad_epochs > self.patience:
            self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
            self.cooldown_counter = self.cooldown
            self.bad_epochs = 0
        return self.optimizer.lr
