"""Losses as differentiable ops: cross-entropy, NLL, KL divergence, MSE, L1.

The classifier minimises `cross_entropy`, with class indices or Mixup's class probabilities
(paper section 3.1); knowledge distillation (section 2.4) adds `kl_div` between temperature-softened
teacher and student outputs, and the device translator (section 2.3) trains on `mse_loss`.
"""
import numpy as np

from tinyasc.autograd.function import Function
from tinyasc.autograd.tensor import Tensor
from tinyasc.functional.activation import _log_softmax


def _reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")


class CrossEntropyFunction(Function):
    """Cross-entropy from logits with per-sample, per-class coefficients A.

    Every target form reduces to loss_i = -sum_c A_ic log p_ic (p = softmax of the logits),
    divided by `denominator` for the mean. Then d loss_i / d z_ic = p_ic sum_k A_ik - A_ic.
    """

    def forward(self, logits, coef, denominator, reduction):
        self.coef, self.reduction, self.denominator = coef, reduction, denominator
        logp = _log_softmax(logits, 1)
        self.p = np.exp(logp)
        loss = -(coef * logp).sum(axis=1)
        if reduction == "none":
            return loss
        total = loss.sum()
        return np.asarray(total / denominator if reduction == "mean" else total, dtype=logits.dtype)

    def backward(self, grad):
        g = self.p * self.coef.sum(axis=1, keepdims=True) - self.coef
        if self.reduction == "none":
            return g * grad[:, None]
        if self.reduction == "mean":
            return g * (grad / self.denominator)
        return g * grad


def cross_entropy(input, target, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
    """torch.nn.functional.cross_entropy for N x C (or N x C x d...) logits.

    `target` holds class indices (N,) or class probabilities (N, C).
    """
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    target = target.data if isinstance(target, Tensor) else np.asarray(target)
    w = None if weight is None else (weight.data if isinstance(weight, Tensor) else np.asarray(weight))
    if input.ndim > 2:
        # Move the class axis last and flatten, then restore the extra dims for 'none'.
        extra = input.shape[2:]
        logits = input.permute((0,) + tuple(range(2, input.ndim)) + (1,)).reshape(-1, input.shape[1])
        if target.ndim == input.ndim:
            target = np.moveaxis(target, 1, -1).reshape(-1, input.shape[1])
        else:
            target = target.reshape(-1)
        loss = cross_entropy(logits, target, weight, ignore_index, reduction, label_smoothing)
        return loss.reshape((input.shape[0],) + extra) if reduction == "none" else loss
    n, num_classes = input.shape
    dtype = input.dtype
    w_c = np.ones(num_classes, dtype) if w is None else w.astype(dtype)
    ls = float(label_smoothing)
    if target.dtype.kind in "iu":
        if target.shape != (n,):
            raise ValueError(f"class-index target must have shape ({n},), got {target.shape}")
        valid = target != ignore_index
        safe = np.where(valid, target, 0)
        if np.any((safe < 0) | (safe >= num_classes)):
            raise ValueError(f"target class indices must be in [0, {num_classes}), got {np.unique(target)}")
        w_i = w_c[safe] * valid
        coef = np.zeros((n, num_classes), dtype)
        coef[np.arange(n), safe] = (1 - ls) * w_i
        if ls:
            coef += (ls / num_classes) * w_c[None, :] * valid[:, None]
        denominator = w_i.sum()
    else:
        if target.shape != (n, num_classes):
            raise ValueError(f"probability target must have shape {(n, num_classes)}, got {target.shape}")
        probs = target.astype(dtype)
        if ls:
            probs = probs * (1 - ls) + ls / num_classes
        coef = probs * w_c[None, :]
        denominator = n
    return CrossEntropyFunction.apply(input, coef=coef, denominator=dtype.type(denominator), reduction=reduction)


def nll_loss(input, target, reduction="mean"):
    target = target.data if isinstance(target, Tensor) else np.asarray(target)
    picked = input[np.arange(input.shape[0]), target]
    return _reduce(-picked, reduction)


class KLDivFunction(Function):
    """Pointwise KL term t * (log t - x) for log-probabilities x, with 0 log 0 = 0."""

    def forward(self, x, t, log_target):
        self.x, self.t, self.log_target = x, t, log_target
        if log_target:
            return np.exp(t) * (t - x)
        safe = np.where(t > 0, t, 1)
        return np.where(t > 0, t * (np.log(safe) - x), 0).astype(x.dtype)

    def backward(self, grad):
        x, t = self.x, self.t
        gx = gt = None
        if self.needs_grad[0]:
            gx = -grad * (np.exp(t) if self.log_target else t)
        if self.needs_grad[1]:
            if self.log_target:
                gt = grad * np.exp(t) * (t - x + 1)
            else:
                safe = np.where(t > 0, t, 1)
                gt = np.where(t > 0, grad * (np.log(safe) + 1 - x), 0).astype(grad.dtype)
        return gx, gt


def kl_div(input, target, reduction="mean", log_target=False):
    """torch.nn.functional.kl_div: `input` is log-probabilities; 'batchmean' divides by N."""
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    pointwise = KLDivFunction.apply(input, target, log_target=bool(log_target))
    if reduction == "batchmean":
        return pointwise.sum() / input.shape[0]
    return _reduce(pointwise, reduction)


def mse_loss(input, target, reduction="mean"):
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    diff = input - target
    return _reduce(diff * diff, reduction)


def l1_loss(input, target, reduction="mean"):
    if not isinstance(target, Tensor):
        target = Tensor(np.asarray(target, dtype=input.dtype))
    return _reduce((input - target).abs(), reduction)
