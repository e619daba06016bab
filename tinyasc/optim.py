"""Optimizers and the learning-rate schedule of the paper's recipe (section 3.1).

SGD and Adam follow PyTorch's update rules exactly (weight decay added to the gradient,
momentum buffer initialised with the first gradient), so a learner can compare runs.
Their state is plain arrays and numbers: `state_dict()` goes straight into a checkpoint.
"""
import math

import numpy as np


class Optimizer:
    STATE_ARRAYS = ()    # per-parameter state arrays (the parameter's shape, floating point)
    STATE_COUNTERS = ()  # per-parameter integer counters

    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if isinstance(params[0], dict):
            groups = params
        else:
            groups = [{"params": params}]
        self.param_groups = []
        for group in groups:
            full = dict(defaults)
            full.update(group)
            full["params"] = list(full["params"])
            self.param_groups.append(full)
        self.state = {}  # id(param) -> dict of arrays / numbers

    def _params(self):
        for group in self.param_groups:
            for p in group["params"]:
                yield group, p

    def zero_grad(self):
        for _, p in self._params():
            p.grad = None

    def step(self):
        for group, p in self._params():
            if p.grad is not None:
                self._update(group, p, self.state.setdefault(id(p), {}))

    def _update(self, group, p, state):
        raise NotImplementedError

    # Checkpoints: parameters are addressed by their position in the groups.
    def state_dict(self):
        state = {}
        for i, (_, p) in enumerate(self._params()):
            for key, value in self.state.get(id(p), {}).items():
                state[f"{i}.{key}"] = value
        groups = [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups]
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        params = [p for _, p in self._params()]
        if len(state_dict["param_groups"]) != len(self.param_groups):
            raise ValueError("optimizer state has a different number of parameter groups")
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            group.update(saved)
        state = {}
        for key, value in state_dict["state"].items():
            index, _, name = key.partition(".")
            if not index.isdigit() or int(index) >= len(params):
                raise ValueError(f"optimizer state {key!r} names no parameter (there are {len(params)})")
            p = params[int(index)]
            value = np.asarray(value)
            if name in self.STATE_ARRAYS:
                if value.dtype.kind != "f" or value.shape != p.shape:
                    raise ValueError(f"optimizer state {key} is {value.dtype} of shape {value.shape}, "
                                     f"the parameter's is float of shape {p.shape}")
                value = np.array(value, dtype=p.dtype, copy=True)
            elif name in self.STATE_COUNTERS:
                if value.dtype.kind not in "iu" or value.ndim or not 0 <= int(value) <= 2 ** 53:
                    raise ValueError(f"optimizer state {key} = {value!r} is not a step count")
                value = int(value)  # back to a Python int, so resumed steps compute bit-identically
            else:
                raise ValueError(f"optimizer state {key!r}: {type(self).__name__} keeps no {name!r}")
            state.setdefault(id(p), {})[name] = value
        self.state = state


class SGD(Optimizer):
    """p -= lr * v, v = momentum * v + (1 - dampening) * (g + weight_decay * p) (v = that on step 1)."""

    STATE_ARRAYS = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening 0")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov))

    def _update(self, group, p, state):
        d_p = p.grad
        if group["weight_decay"]:
            d_p = d_p + group["weight_decay"] * p.data
        momentum = group["momentum"]
        if momentum:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(d_p, dtype=p.dtype, copy=True)
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * d_p
            d_p = d_p + momentum * buf if group["nesterov"] else buf
        p.data -= np.asarray(group["lr"] * d_p, dtype=p.dtype)


class Adam(Optimizer):
    """Adam with PyTorch's bias correction (weight decay added to the gradient, L2 style)."""

    STATE_ARRAYS = ("exp_avg", "exp_avg_sq")
    STATE_COUNTERS = ("step",)

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def _update(self, group, p, state):
        g = p.grad
        if group["weight_decay"]:
            g = g + group["weight_decay"] * p.data
        beta1, beta2 = group["betas"]
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(p.data)
            state["exp_avg_sq"] = np.zeros_like(p.data)
        state["step"] += 1
        m, v, t = state["exp_avg"], state["exp_avg_sq"], state["step"]
        m *= beta1
        m += (1 - beta1) * g
        v *= beta2
        v += (1 - beta2) * g * g
        step_size = group["lr"] / (1 - beta1 ** t)
        denom = np.sqrt(v) / math.sqrt(1 - beta2 ** t) + group["eps"]
        p.data -= np.asarray(step_size * m / denom, dtype=p.dtype)


def warmup_cosine(step, peak_lr, warmup_steps, total_steps):
    """Learning rate of step `step` (0-based): linear up to peak_lr, then cosine down to 0.

    Step i < warmup_steps gets peak_lr * (i + 1) / warmup_steps, so the ramp starts just
    above 0 and reaches the peak on the last warm-up step; the cosine then runs from the
    peak at step warmup_steps to 0 at step total_steps.
    """
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    span = max(total_steps - warmup_steps, 1)
    progress = min((step - warmup_steps) / span, 1.0)
    return 0.5 * peak_lr * (1.0 + math.cos(math.pi * progress))


class WarmupCosine:
    """Sets the optimizer's learning rate before each step; call `step()` after optimizer.step()."""

    def __init__(self, optimizer, peak_lr, warmup_steps, total_steps, last_step=0):
        self.optimizer, self.peak_lr = optimizer, peak_lr
        self.warmup_steps, self.total_steps = warmup_steps, total_steps
        self.step_count = last_step
        self._apply()

    def _apply(self):
        lr = warmup_cosine(self.step_count, self.peak_lr, self.warmup_steps, self.total_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def get_lr(self):
        return self.optimizer.param_groups[0]["lr"]

    def step(self):
        self.step_count += 1
        self._apply()

    def state_dict(self):
        return {"step_count": self.step_count, "peak_lr": self.peak_lr,
                "warmup_steps": self.warmup_steps, "total_steps": self.total_steps}

    def load_state_dict(self, state):
        self.step_count = int(state["step_count"])
        self._apply()
