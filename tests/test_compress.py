"""tinyasc.compress: pruning masks, QAT, distillation, size accounting and the compressed file.

The claims tested are the ones the compressed model's numbers rest on: pruned weights stay
exactly zero through SGD with momentum and weight decay; the STE gradient is the defined
one; quantization is exact on its grid; the size table reproduces Table 3's arithmetic; the
file reloads to the very predictions of the fake-quantized model; the KD loss is the formula.
"""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinyasc import functional as F
from tinyasc import nn
from tinyasc import random as ta_random
from tinyasc.autograd import Tensor, no_grad
from tinyasc.compress import (Distiller, Ensemble, QuantizationAware, QuantizedConv2d, conv_modules, accounted_bytes,
                              apply_masks, compress_weights_, conv_weights, dequantize, distillation_loss,
                              ensemble_probabilities, fake_quantize, half_precision_, hold_masks,
                              load_compressed, magnitude_masks, mask_gradients, masks_from_state, masks_state,
                              model_size, prune, qmax, quantization_scale, quantize, save_compressed)
from tinyasc.models import BCResNetMod
from tinyasc.optim import SGD, Adam
from tinyasc.testing.gradcheck import check_backward_properties
from tinyasc.run.checkpoint import CheckpointError, save_checkpoint
from tinyasc.train.classifier import train_step

X_SHAPE = (2, 1, 32, 16)  # the smallest input whose frequency bins every SubSpectralNorm can split in 4


def trained_like(c=4, seed=0):
    """A BC-ResNet-Mod with non-trivial norm parameters and statistics (as after training)."""
    rng = np.random.default_rng(seed)
    ta_random.manual_seed(seed)
    model = BCResNetMod(c=c)
    convs = {id(p) for p in conv_weights(model).values()}
    for _, p in model.named_parameters():
        if id(p) not in convs:
            p.data[...] = rng.uniform(0.5, 1.5, p.shape) * rng.choice([-1, 1], p.shape)
    for _, b in model.named_buffers():
        b[...] = rng.uniform(0.5, 1.5, b.shape)
    return model


def copy_model(model):
    other = BCResNetMod(c=model.c)
    other.load_state_dict(model.state_dict())
    return other


def logits(model, x):
    model.eval()
    with no_grad():
        return model(Tensor(x)).data


# ------------------------------------------------------------------ pruning


def test_global_pruning_removes_exactly_the_ratio_and_caps_every_layer():
    model = trained_like(c=8)
    total = sum(p.data.size for p in conv_weights(model).values())
    masks = magnitude_masks(model, 0.89)
    assert total - sum(int(m.sum()) for m in masks.values()) == round(0.89 * total)
    assert all(1 - m.mean() <= 0.95 + 1e-12 for m in masks.values())
    # Each kept weight is at least as large as every pruned one of an uncapped layer.
    uncapped = [n for n, m in masks.items() if 1 - m.mean() < 0.95 - 1 / m.size]
    weights = conv_weights(model)
    smallest_kept = min(np.abs(weights[n].data[masks[n]]).min() for n in uncapped)
    largest_pruned = max(np.abs(weights[n].data[~masks[n]]).max() for n in uncapped if (~masks[n]).any())
    assert smallest_kept >= largest_pruned
    # Deterministic, and per-layer scope prunes each layer at the ratio.
    again = magnitude_masks(model, 0.89)
    assert all(np.array_equal(masks[n], again[n]) for n in masks)
    for name, mask in magnitude_masks(model, 0.5, scope="layer").items():
        assert (~mask).sum() == round(0.5 * mask.size), name


def test_pruning_rejects_impossible_requests():
    model = trained_like()
    with pytest.raises(ValueError, match="ratio"):
        magnitude_masks(model, 1.0)
    with pytest.raises(ValueError, match="max_layer_ratio"):
        magnitude_masks(model, 0.9, max_layer_ratio=0.8)
    with pytest.raises(ValueError, match="scope"):
        magnitude_masks(model, 0.5, scope="channel")


@pytest.mark.parametrize("make_optimizer", [
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3),
    lambda ps: SGD(ps, lr=0.05, momentum=0.9, weight_decay=1e-3, nesterov=True),
    lambda ps: Adam(ps, lr=1e-2, weight_decay=1e-3),
], ids=["sgd-momentum-wd", "sgd-nesterov-wd", "adam-wd"])
def test_masks_hold_exactly_through_many_steps(make_optimizer):
    model = trained_like()
    optimizer = make_optimizer(list(model.parameters()))
    rng = np.random.default_rng(1)

    def random_gradients():
        for p in model.parameters():
            p.grad = rng.standard_normal(p.shape).astype(p.dtype)

    for _ in range(5):  # momentum built up before pruning, as after real training
        random_gradients()
        optimizer.step()
    masks = prune(model, 0.8)
    hold_masks(model, masks, optimizer)  # the momentum from before pruning must not leak in
    weights = conv_weights(model)
    before = {n: weights[n].data.copy() for n in masks}
    for _ in range(300):
        random_gradients()  # pruned positions get non-zero gradients every step
        mask_gradients(model, masks)  # as train_step does with masks
        optimizer.step()
        hold_masks(model, masks, optimizer)
    for name, mask in masks.items():
        p = weights[name]
        assert np.all(p.data[~mask] == 0), name
        for value in optimizer.state[id(p)].values():
            if isinstance(value, np.ndarray) and value.shape == p.shape:
                assert np.all(value[~mask] == 0), name
        assert not np.array_equal(p.data[mask], before[name][mask]), f"{name}: kept weights did not train"


def test_momentum_and_gradients_would_revive_pruned_weights():
    """Why both halves of the holding are needed (the control for the test above)."""
    rng = np.random.default_rng(2)
    w = nn.Parameter(rng.standard_normal((3, 2, 1, 1)).astype(np.float32))
    optimizer = SGD([w], lr=0.1, momentum=0.9, weight_decay=1e-3)
    w.grad = np.ones_like(w.data)
    optimizer.step()  # a momentum buffer of ones
    w.data[...] = 0
    w.grad = np.zeros_like(w.data)  # gradient masked, momentum not: w moves
    optimizer.step()
    assert np.all(w.data != 0)
    w.data[...] = 0
    optimizer.state[id(w)]["momentum_buffer"][...] = 0
    w.grad = np.ones_like(w.data)  # momentum zeroed, gradient not: w moves
    optimizer.step()
    assert np.all(w.data != 0)
    w.data[...] = 0
    optimizer.state[id(w)]["momentum_buffer"][...] = 0
    for _ in range(50):  # both zeroed: weight decay alone never revives 0
        w.grad = np.zeros_like(w.data)
        optimizer.step()
    assert np.all(w.data == 0)


def test_pruned_qat_training_steps_keep_zeros_and_learn():
    model = trained_like()
    masks = prune(model, 0.8)
    optimizer = SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-3)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(X_SHAPE).astype(np.float32)
    y = np.array([1, 7])
    losses = []
    with QuantizationAware(model, bits=8, masks=masks):
        assert "QuantizedConv2d" in repr(model)  # QAT is visible in the model
        for _ in range(4):
            loss, _ = train_step(model, optimizer, x, y, masks=masks)
            losses.append(loss)
    assert "QuantizedConv2d" not in repr(model)
    assert min(losses[1:]) < losses[0]
    weights = conv_weights(model)
    assert all(np.all(weights[n].data[~m] == 0) for n, m in masks.items())


def test_mask_helpers_round_trip_and_check_shapes():
    model = trained_like()
    masks = prune(model, 0.6)
    restored = masks_from_state(masks_state(masks))
    assert all(np.array_equal(masks[n], restored[n]) for n in masks)
    name = next(iter(masks))
    with pytest.raises(ValueError, match="bool array"):
        apply_masks(model, {name: masks[name].astype(np.uint8)})
    with pytest.raises(KeyError):
        hold_masks(model, {"head.bn.weight": np.ones(8, bool)})
    p = conv_weights(model)[name]
    p.grad = np.ones_like(p.data)
    mask_gradients(model, masks)
    assert np.all(p.grad[~masks[name]] == 0) and np.all(p.grad[masks[name]] == 1)


# ------------------------------------------------------------- quantization

weights_4d = hnp.arrays(np.float32, hnp.array_shapes(min_dims=4, max_dims=4, min_side=1, max_side=4),
                        elements=st.floats(-4, 4, width=32))


@given(w=weights_4d, bits=st.integers(2, 8), per_channel=st.booleans())
def test_quantization_is_symmetric_and_exact_on_its_grid(w, bits, per_channel):
    w = np.where(np.abs(w) < 1e-3, np.float32(0), w)  # real weights: zeros (pruned) or not tiny
    assume(np.abs(w).max() > 0)
    q = qmax(bits)
    codes, scale = quantize(w, bits, per_channel)
    assert codes.dtype == np.int8 and np.abs(codes).max() <= q
    # The largest magnitude (of every channel, per channel) maps to +-Q.
    axes = tuple(range(1, 4)) if per_channel else None
    top = np.abs(codes).max(axis=axes)
    assert np.all((top == q) | (np.abs(w).max(axis=axes) == 0))
    # Symmetric: -w gives -codes with the same scale; zero maps to zero.
    neg_codes, neg_scale = quantize(-w, bits, per_channel)
    assert np.array_equal(neg_codes, -codes) and np.array_equal(neg_scale, scale)
    assert np.all(codes[w == 0] == 0)
    # The values are integer multiples of the scale, and quantizing again changes nothing.
    w_hat = fake_quantize(Tensor(w), bits, per_channel).data
    assert np.array_equal(w_hat, dequantize(codes, scale))
    assert np.array_equal(np.round(w_hat / scale), codes)
    assert np.array_equal(quantization_scale(w_hat, bits, per_channel), scale)
    assert np.array_equal(fake_quantize(Tensor(w_hat), bits, per_channel).data, w_hat)


def test_straight_through_estimator_is_the_defined_surrogate():
    """d w_hat / d w := 1 where round(w / s) is not clipped and the weight is kept, else 0."""
    rng = np.random.default_rng(4)
    w = Tensor(rng.uniform(-2, 2, (4, 3, 3, 3)), requires_grad=True)
    scale = np.float64(1.2 / 127)  # a fixed scale below max|w| / Q: some weights clip
    mask = rng.random(w.shape) > 0.3
    passes = (np.abs(np.round(w.data / scale)) <= 127) & mask
    assert passes.any() and (~passes & mask).any()

    def fn(t):
        return fake_quantize(t, 8, mask=mask, scale=scale)

    u = rng.standard_normal(w.shape)
    w.grad = None
    fn(w).backward(u)
    assert np.array_equal(w.grad, u * passes)  # the full Jacobian is diag(passes)
    # gradcheck-style: u^T J v against central differences of the surrogate w * passes.
    v, eps = rng.standard_normal(w.shape), 1e-6
    surrogate = lambda t: np.sum(u * t * passes)  # noqa: E731
    numeric = (surrogate(w.data + eps * v) - surrogate(w.data - eps * v)) / (2 * eps)
    assert abs(np.sum(w.grad * v) - numeric) <= 1e-6 * (1 + abs(numeric))
    assert check_backward_properties(fn, [w], name="fake_quantize") == []
    # With the default scale (max|w| / Q) nothing clips: the identity on the kept weights.
    w.grad = None
    fake_quantize(w, 8, mask=mask).backward(u)
    assert np.array_equal(w.grad, u * mask)


def test_quantization_aware_swaps_the_convs_and_restores_them():
    model = trained_like()
    x = np.random.default_rng(5).standard_normal(X_SHAPE).astype(np.float32)
    plain = logits(model, x)
    names = list(model.state_dict())
    params = [id(p) for p in model.parameters()]
    convs = list(conv_modules(model).values())
    qat = QuantizationAware(model, bits=4)
    with qat:
        quantized = logits(model, x)
        assert list(model.state_dict()) == names              # same names, same order
        assert [id(p) for p in model.parameters()] == params  # the optimizer's Parameters, unchanged
        swapped = list(conv_modules(model).values())
        assert all(isinstance(c, QuantizedConv2d) and c.bits == 4 for c in swapped)
        assert repr(model).count("QuantizedConv2d") == len(convs)
        with pytest.raises(RuntimeError, match="already"):
            qat.attach()
    assert not np.array_equal(plain, quantized)
    assert np.array_equal(logits(model, x), plain)
    assert list(conv_modules(model).values()) == convs and "QuantizedConv2d" not in repr(model)
    with pytest.raises(ValueError, match="bits"):
        QuantizationAware(model, bits=16)


def test_half_precision_rounds_everything_but_conv_weights():
    model = trained_like()
    convs = {n: p.data.copy() for n, p in conv_weights(model).items()}
    half_precision_(model)
    for name, value in model.state_dict().items():
        if name in convs:
            assert np.array_equal(value, convs[name])
        else:
            assert np.array_equal(value, value.astype(np.float16).astype(np.float32)), name
    model.head.bn.running_var[0] = 1e6
    with pytest.raises(OverflowError, match="head.bn.running_var"):
        half_precision_(model)


# --------------------------------------------------------------------- size


def test_size_table_counts_known_layers():
    model = trained_like()
    for p in conv_weights(model).values():
        p.data[...] = 0
    model.head.conv.weight.data[0, 0, :2, :2] = 1.0          # 4 non-zero codes
    model.head.conv.weight.data[1, 0, 0, 0] = 1e-3           # quantizes to 0: free
    model.classifier.weight.data[:3, 0] = -0.5               # 3
    model.head.bn.bias.data[:] = 0                           # 8 zeros: free
    report = model_size(model)
    rows = {(r.group, r.kind): r for r in report.rows}
    assert rows["head", "conv weight"].nonzero == 4 and rows["head", "conv weight"].bytes == 4
    assert rows["classifier", "conv weight"].nonzero == 3
    assert rows["stage 1", "conv weight"].nonzero == 0
    assert rows["classifier", "bias"].bytes == 10 * 2
    norms = sum(p.data.size for n, p in model.named_parameters() if p.ndim == 1 and n != "classifier.bias")
    assert rows["norms", "norm weight, bias"].nonzero == norms - 8
    assert rows["scales", "float32 conv scales"].bytes == 33 * 4
    assert report.total_bytes == 4 + 3 + 20 + 2 * (norms - 8) + 132
    assert "pass" in report.table()
    buffers = sum(b.size for _, b in model.named_buffers())
    assert model_size(model, count_buffers=True).total_bytes == report.total_bytes + 2 * buffers
    assert model_size(model, conv_bits=16).total_bytes == 2 * 5 + 2 * 3 + 20 + 2 * (norms - 8)


def test_table3_arithmetic_needs_kb_of_1024_bytes():
    # Model 4: 48.0k non-zero conv + 14.7k others, all 16-bit -> 122.5 KB.
    model4 = accounted_bytes([(48_000, 16), (14_700, 16)])
    assert round(model4 / 1024, 1) == 122.5 and round(model4 / 1000, 1) == 125.4
    # Models 1-3: 66.1k 8-bit conv + 29.4k 16-bit others (two models) -> 121.9 KB.
    models13 = accounted_bytes([(66_100, 8), (29_400, 16)])
    assert abs(models13 / 1024 - 121.9) < 0.1 and abs(models13 / 1000 - 121.9) > 2


def test_table3_from_exact_counts_of_bcresnet_mod_8():
    model = trained_like(c=80)
    counts = {"conv": sum(p.data.size for p in conv_weights(model).values()),
              "other": sum(p.data.size for p in model.parameters()) - 300_320}
    assert counts == {"conv": 300_320, "other": 14_650}
    student = copy_model(model)
    prune(model, 0.89)
    one = model_size(model)
    assert one.nonzero == 33_035 + 14_650
    assert one.total_bytes == 33_035 + 2 * 14_650 + 33 * 4 and round(one.kib, 1) == 61.0
    two = model_size([model, model])
    assert round(two.kib, 1) == 122.0 and two.passes  # Table 3 prints 121.9 (see size.py)
    prune(student, 0.84)
    model4 = model_size(student, conv_bits=16)
    assert model4.total_bytes == 2 * (48_051 + 14_650) and round(model4.kib, 1) == 122.5
    assert not model_size(student, conv_bits=16, count_buffers=True).passes


# ------------------------------------------------------------------- export


@pytest.mark.parametrize("bits,per_channel", [(8, False), (8, True), (4, False), (16, False)])
def test_compressed_file_reloads_to_the_fake_quantized_predictions(tmp_path, bits, per_channel):
    model = trained_like(seed=bits)
    masks = prune(model, 0.8)
    x = np.random.default_rng(6).standard_normal(X_SHAPE).astype(np.float32)
    reference = copy_model(model)
    if bits == 16:
        half_precision_(reference, conv=True)
        expected = logits(reference, x)
    else:
        half_precision_(reference)
        with QuantizationAware(reference, bits, per_channel, masks):
            expected = logits(reference, x)
    summary = save_compressed(tmp_path / "m.npz", model, bits, per_channel, prune_ratio=0.8, config={"width": 4})
    state = ta_random.get_state()
    loaded, meta = load_compressed(tmp_path / "m.npz", return_meta=True)
    assert ta_random.get_state() == state
    assert isinstance(loaded, BCResNetMod) and not loaded.training
    assert np.array_equal(logits(loaded, x), expected)
    assert meta["bits"] == bits and meta["config"] == {"width": 4}
    assert summary.file_bytes == (tmp_path / "m.npz").stat().st_size > 0
    assert meta["accounted_bytes"] == summary.size.total_bytes
    with np.load(tmp_path / "m.npz", allow_pickle=False) as npz:
        assert all(npz[k].dtype.kind in "iuf" for k in npz.files)
    # A compress_weights_ model predicts the same and exports the same file contents.
    final = compress_weights_(copy_model(model), bits, per_channel)
    assert np.array_equal(logits(final, x), expected)
    save_compressed(tmp_path / "f.npz", final, bits, per_channel, prune_ratio=0.8, config={"width": 4})
    with np.load(tmp_path / "m.npz", allow_pickle=False) as a, np.load(tmp_path / "f.npz", allow_pickle=False) as b:
        assert all(np.array_equal(a[k], b[k]) for k in a.files)


def test_ensemble_file_averages_probabilities(tmp_path):
    models = [trained_like(seed=s) for s in (1, 2)]
    for m in models:
        prune(m, 0.7)
    x = np.random.default_rng(7).standard_normal(X_SHAPE).astype(np.float32)
    save_compressed(tmp_path / "e.npz", models, 8)
    ensemble = load_compressed(tmp_path / "e.npz")
    assert isinstance(ensemble, Ensemble) and len(ensemble) == 2
    finals = [compress_weights_(copy_model(m)) for m in models]
    expected = np.mean([F.softmax(Tensor(logits(m, x)), dim=1).data for m in finals], axis=0)
    with no_grad():
        got = F.softmax(ensemble(Tensor(x)), dim=1).data
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


def test_loading_a_file_that_is_not_a_compressed_model_fails_clearly(tmp_path):
    save_checkpoint(tmp_path / "c.npz", {"model/w": np.zeros(2)}, {"kind": "tinyasc-classifier"})
    with pytest.raises(CheckpointError, match="not a compressed"):
        load_compressed(tmp_path / "c.npz")


# -------------------------------------------------------------- distillation


class Fixed(nn.Module):
    """A 'model' with given logits for given inputs: x @ W."""

    def __init__(self, weight):
        super().__init__()
        self.weight = nn.Parameter(weight)
        self.num_classes = weight.shape[1]

    def forward(self, x):
        return x @ self.weight


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("mixup", [False, True])
def test_distillation_loss_equals_the_hand_computation(mixup):
    rng = np.random.default_rng(8)
    n, k, alpha, temperature = 5, 4, 0.3, 2.5
    x = rng.standard_normal((n, 6))
    teachers = [Fixed(rng.standard_normal((6, k))) for _ in range(2)]
    z = rng.standard_normal((n, k))
    y = rng.dirichlet(np.ones(k), n) if mixup else rng.integers(0, k, n)
    onehot = y if mixup else np.eye(k)[y]

    p_t = np.mean([softmax(x @ t.weight.data / temperature) for t in teachers], axis=0)
    assert np.allclose(ensemble_probabilities(teachers, x, temperature), p_t)
    p_s = softmax(z / temperature)
    ce = -np.sum(onehot * np.log(softmax(z))) / n
    kl = np.sum(p_t * (np.log(p_t) - np.log(p_s))) / n
    expected = alpha * ce + (1 - alpha) * temperature ** 2 * kl

    student = Tensor(z, requires_grad=True)
    loss = Distiller(teachers, alpha, temperature).loss(student, y, x)
    assert np.isclose(float(loss.data), expected, rtol=1e-10)
    loss.backward()
    grad = alpha * (softmax(z) - onehot) / n + (1 - alpha) * temperature * (p_s - p_t) / n
    np.testing.assert_allclose(student.grad, grad, rtol=1e-9, atol=1e-12)
    # alpha = 1 is plain cross-entropy; the teacher is left in its own mode.
    assert np.isclose(float(distillation_loss(Tensor(z), y, p_t, 1.0, temperature).data), ce)
    assert all(t.training for t in teachers)


def test_ensemble_forward_is_the_log_of_averaged_probabilities():
    rng = np.random.default_rng(9)
    members = [Fixed(rng.standard_normal((3, 4))) for _ in range(3)]
    x = rng.standard_normal((2, 3))
    ensemble = Ensemble(members)
    with no_grad():
        out = ensemble(Tensor(x)).data
    np.testing.assert_allclose(np.exp(out), ensemble.probabilities(x), rtol=1e-12)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(Tensor(x @ members[0].weight.data), np.array([0, 1]), np.exp(out), alpha=1.5)
