"""Pruning (paper 2.4): magnitude-based, one shot, unstructured, on every convolution.

After training, the conv weights of smallest magnitude are set to zero and a boolean mask
(True = kept) remembers which survive; fine-tuning then keeps the pruned ones at exactly
zero. The paper follows Kim et al. (NeurIPS 2020, PSG [20]) and prunes 89% (Table 3,
models 1-3) or 84% (model 4) of the 300,320 conv weights of BC-ResNet-Mod-8.

One threshold for the whole network ("global", the default), not one per layer: the
depthwise 3x1 and 1x3 kernels hold 3 weights per channel, so pruning every layer at 89%
would empty the kernels of most channels; one global cut lets those few large weights
survive and takes the cut from the 1x1 convolutions, which hold 96% of the weights.
A pure global cut can empty a whole layer, though (at 89% it removes every weight of the
small-valued 1x1 convs of the 1-D path in stages 3 and 4 of a trained BC-ResNet-Mod-1), so
no conv loses more than `max_layer_ratio` (0.95) of its weights: a capped layer keeps its
largest 5% and the global threshold rises until the total is again exactly `ratio`.
`scope="layer"` prunes each layer at the same ratio instead.

Why holding a mask needs care: SGD's update at a pruned position is lr * buf with
buf = momentum * buf + grad + weight_decay * w. Weight decay alone cannot revive a zero
(w = 0 makes its term 0), but the gradient of a pruned weight is not zero (the loss still
depends on it) and the momentum buffer still carries the pre-pruning updates. So the
gradient is masked before every step and the weights and every optimizer state array
(momentum; Adam's two moments) are masked after it; from then on each pruned update is
exactly lr * 0 = 0.
"""
from collections import OrderedDict

import numpy as np

from tinyasc import nn

SCOPES = ("global", "layer")


def conv_modules(model):
    """weight name -> nn.Conv2d module, for every convolution, in registration order."""
    return OrderedDict((f"{name}.weight" if name else "weight", module)
                       for name, module in model.named_modules() if isinstance(module, nn.Conv2d))


def conv_weights(model):
    """weight name -> Parameter of every nn.Conv2d (the 4-D weights the paper prunes)."""
    return OrderedDict((name, module.weight) for name, module in conv_modules(model).items())


def magnitude_masks(model, ratio, scope="global", max_layer_ratio=0.95):
    """Boolean keep-masks that prune the fraction `ratio` of conv weights of smallest |w|.

    Exactly round(ratio * count) weights are pruned: over all convs for scope="global"
    (no conv beyond max_layer_ratio of its own weights; None lifts the cap), per conv for
    scope="layer". Ties in |w| are broken by position, so the masks are a deterministic
    function of the weights.
    """
    if not 0 <= ratio < 1:
        raise ValueError(f"pruning ratio must be in [0, 1), got {ratio}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {scope!r}")
    weights = conv_weights(model)
    if not weights:
        raise ValueError(f"{type(model).__name__} has no Conv2d layers to prune")
    magnitudes = [np.abs(p.data).ravel() for p in weights.values()]
    if scope == "layer":
        counts = [int(round(ratio * m.size)) for m in magnitudes]
    else:
        counts = _global_counts(magnitudes, ratio, 1.0 if max_layer_ratio is None else max_layer_ratio)
    return OrderedDict((name, _keep_largest(m, pruned).reshape(p.shape))
                       for (name, p), m, pruned in zip(weights.items(), magnitudes, counts))


def _global_counts(magnitudes, ratio, cap):
    """How many weights each layer loses under one global threshold, none beyond cap * its size.

    Water-filling: cut globally among the uncapped layers; any layer that would lose more
    than its cap is fixed at the cap and the remaining budget is cut again from the others.
    """
    sizes = np.array([m.size for m in magnitudes])
    limits = np.floor(cap * sizes).astype(int)
    total = int(round(ratio * sizes.sum()))
    if total > limits.sum():
        raise ValueError(f"cannot prune {ratio:.1%} of the conv weights with no layer beyond "
                         f"{cap:.1%}; raise max_layer_ratio")
    capped = np.zeros(len(magnitudes), dtype=bool)
    while True:
        free = np.flatnonzero(~capped)
        budget = total - limits[capped].sum()
        owner = np.concatenate([np.full(sizes[i], i) for i in free])
        flat = np.concatenate([magnitudes[i] for i in free])
        cut = owner[np.argsort(flat, kind="stable")[:budget]]
        counts = np.where(capped, limits, 0)
        counts[free] = np.bincount(cut, minlength=len(magnitudes))[free]
        over = ~capped & (counts > limits)
        if not over.any():
            return [int(c) for c in counts]
        capped |= over


def _keep_largest(magnitudes, pruned):
    keep = np.ones(magnitudes.size, dtype=bool)
    keep[np.argsort(magnitudes, kind="stable")[:pruned]] = False
    return keep


def _check(model, masks):
    weights = conv_weights(model)
    for name, mask in masks.items():
        if name not in weights:
            raise KeyError(f"mask {name!r} names no Conv2d weight of {type(model).__name__}")
        if mask.shape != weights[name].shape or mask.dtype != np.bool_:
            raise ValueError(f"mask {name!r} must be a bool array of shape {weights[name].shape}, "
                             f"got {mask.dtype} {mask.shape}")
    return weights


def apply_masks(model, masks):
    """Zero the pruned weights in place."""
    weights = _check(model, masks)
    for name, mask in masks.items():
        weights[name].data[~mask] = 0


def prune(model, ratio, scope="global", max_layer_ratio=0.95):
    """One-shot magnitude pruning: compute the masks, zero the pruned weights, return the masks."""
    masks = magnitude_masks(model, ratio, scope, max_layer_ratio)
    apply_masks(model, masks)
    return masks


def mask_gradients(model, masks):
    """Zero the gradient of every pruned weight (call between backward and optimizer.step)."""
    weights = _check(model, masks)
    for name, mask in masks.items():
        if weights[name].grad is not None:
            weights[name].grad[~mask] = 0


def hold_masks(model, masks, optimizer=None):
    """Zero the pruned weights and, at their positions, every optimizer state array.

    Call after every optimizer.step() (and once when the optimizer is made or its state
    loaded: momentum from before pruning must not leak in). With the gradients masked
    before the step as well (mask_gradients) the pruned weights never leave zero; without,
    this still puts them back to exactly zero after each step.
    """
    weights = _check(model, masks)
    for name, mask in masks.items():
        p = weights[name]
        p.data[~mask] = 0
        if optimizer is not None:
            for value in optimizer.state.get(id(p), {}).values():
                if isinstance(value, np.ndarray) and value.shape == p.shape:
                    value[~mask] = 0


def layer_sparsity(model):
    """name -> fraction of exactly-zero weights, for every conv (to see where a global cut fell)."""
    return OrderedDict((name, float(np.mean(p.data == 0))) for name, p in conv_weights(model).items())


def masks_state(masks):
    """The masks as uint8 arrays, for a checkpoint (save under a prefix such as 'mask/')."""
    return OrderedDict((name, mask.astype(np.uint8)) for name, mask in masks.items())


def masks_from_state(state):
    """Inverse of masks_state."""
    return OrderedDict((name, np.asarray(value) != 0) for name, value in state.items())
