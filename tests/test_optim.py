"""tinyasc.optim: SGD and Adam step for step like torch.optim, and the warm-up cosine schedule.

The trajectories are driven by gradients that depend on the current parameters (a
quadratic), so any difference in one update shows in every later step. Hand-computed
cases pin the same rules down without torch.
"""
import math

import numpy as np
import pytest

from tinyasc import nn
from tinyasc.optim import SGD, Adam, WarmupCosine, warmup_cosine

A = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 1.5]])


def gradient(value, step):
    """A gradient that depends on the current value (M p - c_k): a wrong update changes all later ones."""
    c = np.cos(np.arange(value.size) + step).reshape(value.shape)
    flat = value.reshape(-1)
    return ((np.resize(A, (flat.size, flat.size)) @ flat).reshape(value.shape) - c)


def make_params(dtype=np.float64):
    rng = np.random.default_rng(0)
    return [nn.Parameter(rng.standard_normal((2, 3)).astype(dtype)), nn.Parameter(rng.standard_normal(4).astype(dtype))]


def run_ours(optimizer_class, steps, dtype=np.float64, **kwargs):
    params = make_params(dtype)
    optimizer = optimizer_class(params, **kwargs)
    trajectory = []
    for step in range(steps):
        for p in params:
            p.grad = gradient(p.data, step).astype(dtype)
        optimizer.step()
        trajectory.append([p.data.copy() for p in params])
    return trajectory


def run_torch(torch, optimizer_class, steps, dtype=np.float64, **kwargs):
    params = [torch.nn.Parameter(torch.tensor(p.data)) for p in make_params(dtype)]
    optimizer = optimizer_class(params, **kwargs)
    trajectory = []
    for step in range(steps):
        for p in params:
            p.grad = torch.tensor(gradient(p.detach().numpy(), step).astype(dtype))
        optimizer.step()
        trajectory.append([p.detach().numpy().copy() for p in params])
    return trajectory


def assert_same_trajectory(ours, theirs, dtype):
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == np.float64 else dict(rtol=1e-5, atol=1e-6)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            assert x.dtype == dtype
            np.testing.assert_allclose(x, y, **tol, err_msg=f"step {step}")


SGD_SETTINGS = [
    dict(lr=0.1),
    dict(lr=0.1, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, weight_decay=1e-2),
    dict(lr=0.05, momentum=0.8, weight_decay=1e-3, nesterov=True),
    dict(lr=0.06, momentum=0.9, weight_decay=1e-3),  # the paper's recipe
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("settings", SGD_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_sgd_trajectory_equals_torch(torch, settings, dtype):
    theirs = run_torch(torch, torch.optim.SGD, 8, dtype, **settings)
    assert_same_trajectory(run_ours(SGD, 8, dtype, **settings), theirs, dtype)


ADAM_SETTINGS = [dict(lr=0.01), dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6), dict(lr=0.01, weight_decay=0.1)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("settings", ADAM_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_adam_trajectory_equals_torch(torch, settings, dtype):
    theirs = run_torch(torch, torch.optim.Adam, 8, dtype, **settings)
    assert_same_trajectory(run_ours(Adam, 8, dtype, **settings), theirs, dtype)


def test_warmup_cosine_equals_torchs_linear_then_cosine_schedulers(torch):
    warmup, total, peak = 5, 23, 0.06
    p = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p], lr=peak)
    schedulers = torch.optim.lr_scheduler
    schedule = schedulers.SequentialLR(optimizer, [schedulers.LinearLR(optimizer, 1 / warmup, 1.0, warmup - 1),
                                                   schedulers.CosineAnnealingLR(optimizer, total - warmup)],
                                       milestones=[warmup])
    theirs = []
    for _ in range(total + 1):
        theirs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        schedule.step()
    ours = [warmup_cosine(step, peak, warmup, total) for step in range(total + 1)]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------- torch-free


def test_sgd_first_momentum_step_is_a_plain_sgd_step_then_the_buffer_accumulates():
    p = nn.Parameter(np.array([1.0, -2.0]))
    optimizer = SGD([p], lr=0.1, momentum=0.9, dampening=0.5, weight_decay=0.01)
    g1 = np.array([0.5, 0.25])
    p.grad = g1.copy()
    optimizer.step()
    d1 = g1 + 0.01 * np.array([1.0, -2.0])  # the buffer starts as the gradient, undamped
    p1 = np.array([1.0, -2.0]) - 0.1 * d1
    np.testing.assert_allclose(p.data, p1)
    g2 = np.array([-1.0, 1.0])
    p.grad = g2.copy()
    optimizer.step()
    buf = 0.9 * d1 + 0.5 * (g2 + 0.01 * p1)
    np.testing.assert_allclose(p.data, p1 - 0.1 * buf)


def test_sgd_nesterov_uses_the_gradient_plus_momentum_times_the_buffer():
    p = nn.Parameter(np.array([1.0]))
    optimizer = SGD([p], lr=0.1, momentum=0.5, nesterov=True)
    for g in ([2.0], [4.0]):
        p.grad = np.array(g)
        optimizer.step()
    # step 1: buf = 2, d = 2 + 0.5 * 2 = 3; step 2: buf = 0.5 * 2 + 4 = 5, d = 4 + 2.5 = 6.5
    np.testing.assert_allclose(p.data, [1.0 - 0.3 - 0.65])
    with pytest.raises(ValueError):
        SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        SGD([p], lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)


def test_adam_first_step_moves_each_weight_by_lr_times_the_sign_of_its_gradient():
    p = nn.Parameter(np.array([1.0, 1.0, 1.0]))
    optimizer = Adam([p], lr=0.01, eps=1e-8)
    p.grad = np.array([3.0, -0.5, 1e-3])
    optimizer.step()
    # bias-corrected m / sqrt(v) = g / |g| on step 1: update lr * g / (|g| + eps)
    np.testing.assert_allclose(p.data, 1 - 0.01 * p.grad / (np.abs(p.grad) + 1e-8), rtol=1e-12)
    assert optimizer.state[id(p)]["step"] == 1


def test_optimizers_update_in_place_keep_float32_and_skip_missing_grads():
    w = nn.Parameter(np.ones(3, np.float32))
    unused = nn.Parameter(np.ones(2, np.float32))
    data = w.data
    for optimizer in (SGD([w, unused], lr=0.1, momentum=0.9), Adam([w, unused])):
        w.grad = np.ones(3, np.float32)
        optimizer.step()
        assert w.data is data and w.dtype == np.float32
        np.testing.assert_array_equal(unused.data, 1.0)
        assert id(unused) not in optimizer.state
        optimizer.zero_grad()
        assert w.grad is None


def test_parameter_groups_have_their_own_settings():
    a, b = nn.Parameter(np.array([1.0])), nn.Parameter(np.array([1.0]))
    optimizer = SGD([{"params": [a]}, {"params": [b], "lr": 0.5}], lr=0.1)
    a.grad, b.grad = np.array([1.0]), np.array([1.0])
    optimizer.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [0.9, 0.5])
    with pytest.raises(ValueError):
        SGD([], lr=0.1)


@pytest.mark.parametrize("make", [lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
                                  lambda ps: Adam(ps, lr=0.01, weight_decay=1e-2)])
def test_optimizer_state_dict_resumes_the_same_trajectory(make):
    straight = run_ours(lambda ps, **_: make(ps), 6)
    params = make_params()
    optimizer = make(params)
    for step in range(3):
        for p in params:
            p.grad = gradient(p.data, step)
        optimizer.step()
    saved = optimizer.state_dict()
    resumed_params = [nn.Parameter(p.data.copy()) for p in params]
    resumed = make(resumed_params)
    resumed.load_state_dict(saved)
    for step in range(3, 6):
        for p in resumed_params:
            p.grad = gradient(p.data, step)
        resumed.step()
    for a, b in zip(resumed_params, straight[-1]):
        np.testing.assert_allclose(a.data, b, rtol=1e-14)
    bad = {"state": {"0.momentum_buffer": np.zeros(5)}, "param_groups": saved["param_groups"]}
    if "0.momentum_buffer" in saved["state"]:
        with pytest.raises(ValueError):
            resumed.load_state_dict(bad)


def test_warmup_cosine_endpoints_and_shape():
    peak, warmup, total = 0.06, 5, 100
    lrs = [warmup_cosine(step, peak, warmup, total) for step in range(total + 3)]
    assert lrs[0] == pytest.approx(peak / warmup)  # the first step is not a wasted lr = 0 step
    assert lrs[warmup - 1] == pytest.approx(peak)  # the peak on the last warm-up step...
    assert lrs[warmup] == pytest.approx(peak)  # ...where the cosine starts
    assert lrs[total] == pytest.approx(0.0, abs=1e-15)
    assert lrs[total + 2] == pytest.approx(0.0, abs=1e-15)  # and stays there
    middle = warmup + (total - warmup) // 2
    expected = 0.5 * peak * (1 + math.cos(math.pi * (middle - warmup) / (total - warmup)))
    assert lrs[middle] == pytest.approx(expected)
    assert np.all(np.diff(lrs[:warmup]) > 0)
    assert np.all(np.diff(lrs[warmup:total + 1]) < 0)
    np.testing.assert_allclose(np.diff(lrs[:warmup]), peak / warmup)  # linear


def test_warmup_cosine_without_warmup_starts_at_the_peak():
    assert warmup_cosine(0, 0.1, 0, 10) == pytest.approx(0.1)
    assert warmup_cosine(5, 0.1, 0, 10) == pytest.approx(0.05)
    assert warmup_cosine(10, 0.1, 0, 10) == pytest.approx(0.0, abs=1e-15)


def test_warmup_cosine_scheduler_drives_the_optimizer_and_resumes():
    p = nn.Parameter(np.zeros(1))
    optimizer = SGD([p], lr=123.0, momentum=0.9)
    schedule = WarmupCosine(optimizer, peak_lr=0.06, warmup_steps=3, total_steps=10)
    seen = []
    for _ in range(10):
        seen.append(optimizer.param_groups[0]["lr"])
        assert schedule.get_lr() == seen[-1]
        schedule.step()
    np.testing.assert_allclose(seen, [warmup_cosine(s, 0.06, 3, 10) for s in range(10)])
    state = schedule.state_dict()
    again = WarmupCosine(SGD([p], lr=1.0), peak_lr=0.06, warmup_steps=3, total_steps=10)
    again.load_state_dict(state)
    assert again.get_lr() == pytest.approx(warmup_cosine(10, 0.06, 3, 10))
    later = WarmupCosine(SGD([p], lr=1.0), peak_lr=0.06, warmup_steps=3, total_steps=10, last_step=4)
    assert later.get_lr() == pytest.approx(warmup_cosine(4, 0.06, 3, 10))
