"""Optimizers (SGD, Adam, AdamW) and learning-rate schedules (step, cosine, linear warmup).

An optimizer moves all its parameters into one flat buffer (``params.flatten``) so each step is a
single kernel call over the whole model. Build it after ``model.to(device)``: moving the model
afterwards breaks the flat views, and ``step`` says so.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np

from .layers.params import Parameter, flatten
from .runtime.devices import device_of


def _finite_at_least_zero(owner, **values):
    """ValueError naming the first hyper-parameter that is NaN, infinite or negative."""
    for name, value in values.items():
        if not (math.isfinite(float(value)) and float(value) >= 0.0):
            raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")


class Optimizer:
    def __init__(self, params, lr, state_names):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        _finite_at_least_zero(type(self).__name__, lr=lr)
        self.device = device_of(params[0].data)
        self.storage = flatten(params, self.device)
        self.lr = float(lr)
        self.steps = 0
        total = self.storage.data.shape[0]
        self.state = {name: self.device.zeros((total,), self.storage.data.dtype) for name in state_names}

    @property
    def params(self):
        return self.storage.params

    def all_finite(self) -> bool:
        """True when every parameter and every optimizer state value is finite (one pass over the
        flat buffers; on CUDA a copy to the host: call it per checkpoint, not per step)."""
        arrays = [self.storage.data, *self.state.values()]
        return all(bool(np.isfinite(self.device.to_host(a)).all()) for a in arrays)

    def zero_grad(self) -> None:
        self.device.ops.fill(self.storage.grad, 0)

    def _check_intact(self):
        if not self.storage.is_intact():
            if any(p.storage is not self.storage for p in self.storage.params):
                raise RuntimeError(
                    f"{type(self).__name__}: another optimizer was built on these parameters after this "
                    f"one and took over their memory; an optimizer owns its parameters, so use one "
                    f"optimizer per model (or rebuild this one)"
                )
            raise RuntimeError(
                f"{type(self).__name__}: the model's parameters were moved or replaced "
                f"(model.to(...) after the optimizer was built); build the optimizer "
                f"after moving the model"
            )

    def step(self) -> None:
        """One update of every trainable parameter; frozen ones (requires_grad False, also when
        frozen after this optimizer was built) are neither updated nor decayed."""
        self._check_intact()
        self.steps += 1
        runs = self.storage.trainable_runs()
        total = self.storage.data.shape[0]
        for start, stop in runs:
            # Nothing frozen: the whole buffers themselves (no new views per step).
            self._update(None if (start, stop) == (0, total) else slice(start, stop))

    def _span(self, span):
        """The flat data, grad and state arrays, or their ``span`` slices."""
        arrays = (self.storage.data, self.storage.grad, *self.state.values())
        return arrays if span is None else tuple(a[span] for a in arrays)

    def hyperparameters(self):
        return {"lr": self.lr}

    def state_dict(self) -> dict[str, np.ndarray]:
        """{name: numpy array}: step count, hyper-parameters and per-parameter state."""
        out = {"steps": np.array(self.steps, dtype=np.int64)}
        for k, v in self.hyperparameters().items():
            out["hp." + k] = np.array(v, dtype=np.float64)
        for k, v in self.state.items():
            out["state." + k] = np.array(self.device.to_host(v), copy=True)
        return out

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        for k, v in self.state.items():
            key = "state." + k
            if key not in state:
                raise KeyError(f"{type(self).__name__}.load_state_dict: missing key '{key}'")
            value = np.asarray(state[key])
            if value.shape != tuple(v.shape):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: key '{key}' has shape "
                    f"{value.shape}, expected {tuple(v.shape)} (a different model?)"
                )
            self.device.ops.copy(v, self.device.asarray(value.astype(v.dtype)))
        self.steps = int(state.get("steps", 0))
        if "hp.lr" in state:
            self.lr = float(state["hp.lr"])


class SGD(Optimizer):
    """PyTorch's SGD: weight decay as L2, momentum (dampening 0), optional Nesterov."""

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 0.01,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        _finite_at_least_zero("SGD", momentum=momentum, weight_decay=weight_decay)
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov needs momentum > 0")
        super().__init__(params, lr, ["velocity"])
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)

    def _update(self, span):
        data, grad, velocity = self._span(span)
        self.device.ops.sgd_step(data, grad, velocity, self.lr, self.momentum, self.weight_decay, self.nesterov)


class Adam(Optimizer):
    """Adam with bias correction; weight decay added to the gradient (L2)."""

    decoupled = False

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        if not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"{type(self).__name__}: betas must lie in [0, 1), got {betas!r}")
        _finite_at_least_zero(type(self).__name__, eps=eps, weight_decay=weight_decay)
        super().__init__(params, lr, ["exp_avg", "exp_avg_sq"])
        self.betas, self.eps, self.weight_decay = (float(betas[0]), float(betas[1])), float(eps), float(weight_decay)

    def _update(self, span):
        data, grad, exp_avg, exp_avg_sq = self._span(span)
        self.device.ops.adam_step(
            data,
            grad,
            exp_avg,
            exp_avg_sq,
            self.lr,
            self.betas[0],
            self.betas[1],
            self.eps,
            self.weight_decay,
            self.decoupled,
            self.steps,
        )


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter); PyTorch's default decay 0.01."""

    decoupled = True

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ):
        super().__init__(params, lr, betas, eps, weight_decay)


class LRSchedule:
    """Sets ``optimizer.lr`` from a step counter; call ``step()`` once per optimizer step.

    ``warmup_steps`` ramps the rate linearly from base_lr / warmup_steps up to the schedule.
    """

    def __init__(self, optimizer, warmup_steps=0):
        self.optimizer = optimizer
        self.base_lr = optimizer.lr
        self.warmup_steps = int(warmup_steps)
        self.last_step = 0
        optimizer.lr = self.lr_at(0)

    def lr_at(self, step):
        if self.warmup_steps and step < self.warmup_steps:
            return self.base_lr * (step + 1) / self.warmup_steps
        return self._after_warmup(step - self.warmup_steps)

    def _after_warmup(self, step):
        return self.base_lr

    def step(self) -> None:
        self.last_step += 1
        self.optimizer.lr = self.lr_at(self.last_step)

    def state_dict(self) -> dict[str, np.ndarray]:
        return {
            "last_step": np.array(self.last_step, dtype=np.int64),
            "base_lr": np.array(self.base_lr, dtype=np.float64),
        }

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        self.last_step = int(state["last_step"])
        self.base_lr = float(state["base_lr"])
        self.optimizer.lr = self.lr_at(self.last_step)


class ConstantLR(LRSchedule):
    """The base rate throughout (after an optional warmup)."""


class StepLR(LRSchedule):
    """base_lr * gamma ** (step // step_size)."""

    def __init__(self, optimizer, step_size, gamma=0.1, warmup_steps=0):
        if step_size < 1:
            raise ValueError(f"StepLR: step_size must be >= 1, got {step_size}")
        self.step_size, self.gamma = int(step_size), float(gamma)
        super().__init__(optimizer, warmup_steps)

    def _after_warmup(self, step):
        return self.base_lr * self.gamma ** (step // self.step_size)


class CosineAnnealingLR(LRSchedule):
    """Half a cosine from base_lr down to min_lr over total_steps (after warmup), then min_lr."""

    def __init__(self, optimizer, total_steps, min_lr=0.0, warmup_steps=0):
        if total_steps < 1:
            raise ValueError(f"CosineAnnealingLR: total_steps must be >= 1, got {total_steps}")
        self.total_steps, self.min_lr = int(total_steps), float(min_lr)
        super().__init__(optimizer, warmup_steps)

    def _after_warmup(self, step):
        span = max(1, self.total_steps - self.warmup_steps)
        t = min(step, span) / span
        return self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + math.cos(math.pi * t))
