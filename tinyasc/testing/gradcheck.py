"""Gradient checking: does an operation's backward agree with its forward?

Two comparisons with float64 central differences, (f(x + eps v) - f(x - eps v)) / 2 eps:

- directional (any size): for a random output cotangent u and random input directions
  v_i, the analytic u^T J v = sum_i <grad_i(u), v_i> against the numeric directional
  derivative of <u, f>. One backward and two forwards, whatever the size.
- full (small inputs): every entry of every input's Jacobian, analytic (one backward per
  output element) against numeric (two forwards per input element); the worst entry is
  reported with its position and both values.

`check_backward_properties` adds what a correct backward must also satisfy: the same
result twice, linearity in the incoming gradient, untouched inputs, and gradients of
the inputs' shapes and dtypes.
"""
from dataclasses import dataclass, field

import numpy as np

from tinyasc.autograd.tensor import Tensor


@dataclass
class GradcheckResult:
    name: str
    passed: bool
    max_error: float
    mode: str
    detail: str = ""
    worst: dict = field(default_factory=dict)

    def line(self):
        status = "pass" if self.passed else "FAIL"
        extra = f"  {self.detail}" if self.detail and not self.passed else ""
        return f"{self.name:<40s} {self.mode:<11s} max_err={self.max_error:9.2e}  {status}{extra}"


def _leaves(inputs):
    return [x for x in inputs if isinstance(x, Tensor) and x.requires_grad]


def _evaluate(fn, inputs):
    out = fn(*inputs)
    if not isinstance(out, Tensor):
        raise TypeError(f"the checked function must return a Tensor, got {type(out).__name__}")
    return out


def _backward(fn, inputs, cotangent):
    for x in _leaves(inputs):
        x.grad = None
    out = _evaluate(fn, inputs)
    out.backward(cotangent)
    return [None if x.grad is None else x.grad.copy() for x in _leaves(inputs)]


def _numeric_directional(fn, inputs, directions, cotangent, eps):
    """d/dt <u, f(x + t v)> at t=0 by central differences; the inputs are restored after."""
    leaves = _leaves(inputs)
    saved = [x.data.copy() for x in leaves]
    values = []
    for sign in (+1, -1):
        for x, x0, v in zip(leaves, saved, directions):
            x.data = x0 + sign * eps * v
        values.append(float(np.sum(_evaluate(fn, inputs).data * cotangent)))
    for x, x0 in zip(leaves, saved):
        x.data = x0
    return (values[0] - values[1]) / (2 * eps)


def _check_float64(inputs, name):
    for x in _leaves(inputs):
        if x.dtype != np.float64:
            raise TypeError(f"{name}: gradient checks need float64 inputs, got {x.dtype}")


def gradcheck(fn, inputs, name="fn", mode="directional", eps=1e-6, atol=1e-6, rtol=1e-4, seed=0, repeats=2):
    """Check fn's backward against central differences (see the module docstring).

    fn: callable(*inputs) -> Tensor, deterministic (seed any randomness inside it).
    inputs: Tensors (float64, requires_grad where a gradient is checked) and other values.
    Passes when |analytic - numeric| <= atol + rtol * |numeric| everywhere.
    """
    _check_float64(inputs, name)
    rng = np.random.default_rng(seed)
    out = _evaluate(fn, inputs)
    if mode == "directional":
        worst_err, worst = 0.0, {}
        passed = True
        for r in range(repeats):
            u = rng.standard_normal(out.shape)
            directions = [rng.standard_normal(x.shape) for x in _leaves(inputs)]
            grads = _backward(fn, inputs, u)
            analytic = sum(float(np.sum(g * v)) for g, v in zip(grads, directions) if g is not None)
            numeric = _numeric_directional(fn, inputs, directions, u, eps)
            err = abs(analytic - numeric)
            ok = err <= atol + rtol * abs(numeric)
            passed &= ok
            if err >= worst_err:
                worst_err, worst = err, {"repeat": r, "analytic": analytic, "numeric": numeric}
        detail = f"u^T J v analytic {worst['analytic']:.8g} vs numeric {worst['numeric']:.8g}"
        return GradcheckResult(name, passed, worst_err, mode, detail, worst)
    if mode == "full":
        return _full_jacobian(fn, inputs, name, out, eps, atol, rtol)
    raise ValueError(f"mode must be 'directional' or 'full', got {mode!r}")


def _full_jacobian(fn, inputs, name, out, eps, atol, rtol):
    leaves = _leaves(inputs)
    if out.data.size * sum(x.data.size for x in leaves) > 200_000:
        raise ValueError(f"{name}: the full Jacobian is too large here; use mode='directional'")
    analytic = [np.zeros((out.data.size, x.data.size)) for x in leaves]
    for k in range(out.data.size):
        basis = np.zeros(out.data.size)
        basis[k] = 1.0
        grads = _backward(fn, inputs, basis.reshape(out.shape))
        for jac, g in zip(analytic, grads):
            if g is not None:
                jac[k] = g.ravel()
    worst_err, worst, passed = 0.0, {}, True
    for i, (x, jac) in enumerate(zip(leaves, analytic)):
        x0 = x.data.copy()
        flat = x0.ravel()
        for j in range(flat.size):
            cols = []
            for sign in (+1, -1):
                bumped = flat.copy()
                bumped[j] += sign * eps
                x.data = bumped.reshape(x0.shape)
                cols.append(_evaluate(fn, inputs).data.ravel())
            x.data = x0
            numeric = (cols[0] - cols[1]) / (2 * eps)
            errors = np.abs(jac[:, j] - numeric)
            bad = errors > atol + rtol * np.abs(numeric)
            passed &= not bad.any()
            if not errors.size:  # an empty output: nothing to compare
                continue
            k = int(np.argmax(errors))
            if errors[k] >= worst_err:
                worst_err = float(errors[k])
                worst = {"input": i, "input_index": np.unravel_index(j, x0.shape),
                         "output_index": np.unravel_index(k, out.shape),
                         "analytic": float(jac[k, j]), "numeric": float(numeric[k])}
    detail = (f"worst d out{tuple(int(v) for v in worst['output_index'])} / d input{worst['input']}"
              f"{tuple(int(v) for v in worst['input_index'])}: analytic {worst['analytic']:.8g}, "
              f"numeric {worst['numeric']:.8g}") if worst else ""
    return GradcheckResult(name, passed, worst_err, "full", detail, worst)


def check_backward_properties(fn, inputs, name="fn", seed=0, rtol=1e-10):
    """Properties every backward must have; returns a list of failure messages (empty = pass)."""
    rng = np.random.default_rng(seed)
    failures = []
    before = [np.array(x.data, copy=True) if isinstance(x, Tensor) else None for x in inputs]
    out = _evaluate(fn, inputs)
    u1, u2 = rng.standard_normal(out.shape), rng.standard_normal(out.shape)
    g1 = _backward(fn, inputs, u1)
    g1_again = _backward(fn, inputs, u1)
    for x, a, b in zip(_leaves(inputs), g1, g1_again):
        if a is None:
            continue
        if not np.array_equal(a, b):
            failures.append(f"{name}: backward twice differs by {np.max(np.abs(a - b)):.3g}")
        if a.shape != x.shape or a.dtype != x.dtype:
            failures.append(f"{name}: grad {a.shape} {a.dtype} for input {x.shape} {x.dtype}")
    g2 = _backward(fn, inputs, u2)
    g_mix = _backward(fn, inputs, 2.0 * u1 - 3.0 * u2)
    for a, b, c in zip(g1, g2, g_mix):
        if a is None:
            continue
        expected = 2.0 * a - 3.0 * b
        scale = np.max(np.abs(expected)) + 1e-300
        if np.max(np.abs(c - expected)) > rtol * scale + 1e-12:
            failures.append(f"{name}: backward is not linear in the incoming gradient "
                            f"(error {np.max(np.abs(c - expected)):.3g})")
    failures += _op_gradient_problems(_evaluate(fn, inputs), rng, name)
    for x, x0 in zip(inputs, before):
        if isinstance(x, Tensor) and not np.array_equal(x.data, x0):
            failures.append(f"{name}: an input was modified")
    return failures


def _op_gradient_problems(out, rng, name):
    """Each op's backward must give gradients of its inputs' dtypes and (broadcast) shapes.

    Tensor.backward casts what reaches a leaf to the leaf's dtype (as torch does), so a
    wrong dtype never shows in x.grad: call the backward of every op in the graph directly.
    """
    from tinyasc.autograd.tensor import _reverse_topological_order

    problems = []
    for node in _reverse_topological_order(out):
        op = node.grad_fn
        if op is None:
            continue
        grads = op.backward(rng.standard_normal(node.shape).astype(node.dtype))
        grads = grads if isinstance(grads, tuple) else (grads,)
        for i, (x, needs, g) in enumerate(zip(op.inputs, op.needs_grad, grads)):
            if not needs or g is None:
                continue
            g = np.asarray(g)
            trailing = g.shape[g.ndim - x.ndim:] if g.ndim >= x.ndim else None
            fits = trailing is not None and all(n in (1, m) for n, m in zip(x.shape, trailing))
            if g.dtype != x.dtype or not fits:
                problems.append(f"{name}: {type(op).__name__}.backward gives a {g.dtype} {g.shape} gradient "
                                f"for its input {i}, a {x.dtype} {x.shape} tensor")
    return problems


def assert_gradients(fn, inputs, name="fn", full=None, **kwargs):
    """Directional check, the full Jacobian when small (or asked), and the backward properties."""
    results = [gradcheck(fn, inputs, name=name, mode="directional", **kwargs)]
    size = _evaluate(fn, inputs).data.size * sum(x.data.size for x in _leaves(inputs))
    if full or (full is None and size <= 4000):
        results.append(gradcheck(fn, inputs, name=name, mode="full", **kwargs))
    problems = [r.line() for r in results if not r.passed]
    problems += check_backward_properties(fn, inputs, name=name)
    if problems:
        raise AssertionError("\n".join(problems))
    return results
