"""The gradient checker itself, on deliberately wrong backwards, and the `tinyasc gradcheck` command.

A checker that passes everything is worse than none: here each kind of mistake a
backward can make (wrong factor, transposed gradient, mutated input, nonlinear in the
incoming gradient, wrong dtype or shape, nondeterministic) must be caught, and the full
Jacobian mode must name the entry where analytic and numeric differ most.
"""
import re

import numpy as np
import pytest
from click.testing import CliRunner

from tinyasc import Function, Tensor
from tinyasc.cli import main
from tinyasc.testing import GradcheckResult, assert_gradients, catalog, check_backward_properties, gradcheck


def leaf(array):
    return Tensor(np.asarray(array, dtype=np.float64), requires_grad=True)


def inputs(seed=0, shape=(3, 4)):
    return [leaf(np.random.default_rng(seed).uniform(0.5, 2.0, shape))]


class Square(Function):
    def forward(self, x):
        self.x = x
        return x * x

    def backward(self, grad):
        return 2 * self.x * grad


class SquareOffByAFactor(Square):
    def backward(self, grad):
        return 3 * self.x * grad


class RightMatMul(Function):
    """x @ w for a constant square w: dx = grad @ w.T."""

    def forward(self, x, w):
        self.w = w
        return x @ w

    def backward(self, grad):
        return grad @ self.w.T


class RightMatMulTransposedGradient(RightMatMul):
    def backward(self, grad):
        return grad @ self.w  # forgot the transpose


class MutatesItsInput(Square):
    def backward(self, grad):
        g = 2 * self.x * grad
        self.x *= 0.5  # writes into the leaf's array
        return g


class MutatesTheIncomingGradient(Square):
    def backward(self, grad):
        grad *= 2 * self.x
        return grad


class NonlinearInTheGradient(Square):
    def backward(self, grad):
        return 2 * self.x * grad * np.abs(grad)


class ReturnsFloat32(Square):
    def backward(self, grad):
        return (2 * self.x * grad).astype(np.float32)


class ReturnsTransposedShape(Square):
    def backward(self, grad):
        return np.ascontiguousarray((2 * self.x * grad).T)


class Nondeterministic(Square):
    def backward(self, grad):
        return 2 * self.x * grad + np.random.default_rng().standard_normal(grad.shape) * 1e-3


# ---------------------------------------------------------------- gradcheck


@pytest.mark.parametrize("mode", ["directional", "full"])
def test_a_correct_backward_passes(mode):
    result = gradcheck(Square.apply, inputs(), name="square", mode=mode)
    assert result.passed and result.max_error < 1e-7 and result.mode == mode
    assert check_backward_properties(Square.apply, inputs()) == []


@pytest.mark.parametrize("mode", ["directional", "full"])
@pytest.mark.parametrize("wrong", [SquareOffByAFactor, "transposed"])
def test_a_wrong_backward_fails(mode, wrong):
    if wrong == "transposed":
        w = np.random.default_rng(1).standard_normal((4, 4))
        fn, args = (lambda x: RightMatMulTransposedGradient.apply(x, w)), inputs()
        assert gradcheck(lambda x: RightMatMul.apply(x, w), args, mode=mode).passed  # the fixture is sound
    else:
        fn, args = wrong.apply, inputs()
    result = gradcheck(fn, args, name="wrong", mode=mode)
    assert not result.passed
    assert result.max_error > 0.1
    assert "FAIL" in result.line() and "wrong" in result.line()


def test_full_mode_names_the_worst_entry_with_both_values():
    x = np.array([[0.5, -1.0, 2.5], [1.5, -0.75, 1.0]])
    result = gradcheck(SquareOffByAFactor.apply, [leaf(x)], mode="full")
    # analytic d out_k / d x_k = 3 x_k against the true 2 x_k: worst where |x| is largest
    worst = result.worst
    assert tuple(worst["input_index"]) == (0, 2) and tuple(worst["output_index"]) == (0, 2)
    assert worst["input"] == 0
    assert worst["analytic"] == pytest.approx(7.5) and worst["numeric"] == pytest.approx(5.0, rel=1e-8)
    assert result.max_error == pytest.approx(2.5, rel=1e-8)
    assert "out(0, 2)" in result.detail and "input0(0, 2)" in result.detail
    assert "7.5" in result.detail and re.search(r"numeric 5(\.0*\d*)?\b", result.detail)


def test_full_mode_worst_entry_agrees_with_an_independent_jacobian():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((3, 3))
    x = rng.standard_normal((2, 3))
    result = gradcheck(lambda a: RightMatMulTransposedGradient.apply(a, w), [leaf(x)], mode="full")
    # out[i, q] = sum_r x[i, r] w[r, q]: true d out[i,q] / d x[i',r] = [i == i'] w[r, q];
    # the wrong backward gives w[q, r] instead.
    true = np.einsum("ij,rq->iqjr", np.eye(2), w)
    wrong = np.einsum("ij,qr->iqjr", np.eye(2), w)
    errors = np.abs(wrong - true)
    assert not result.passed
    assert result.max_error == pytest.approx(errors.max(), rel=1e-6)
    out_idx, in_idx = tuple(result.worst["output_index"]), tuple(result.worst["input_index"])
    assert errors[out_idx + in_idx] == pytest.approx(errors.max(), rel=1e-6)
    assert result.worst["analytic"] == pytest.approx(wrong[out_idx + in_idx], rel=1e-12)
    assert result.worst["numeric"] == pytest.approx(true[out_idx + in_idx], rel=1e-6)


def test_directional_mode_reports_both_numbers():
    result = gradcheck(SquareOffByAFactor.apply, inputs(), mode="directional")
    worst = result.worst
    assert worst["analytic"] == pytest.approx(1.5 * worst["numeric"], rel=1e-6)
    assert "analytic" in result.detail and "numeric" in result.detail


def test_gradcheck_restores_the_inputs_and_checks_every_input():
    x, b = leaf(np.array([1.0, 2.0])), leaf(np.array([0.5, -0.5]))
    before = (x.data.copy(), b.data.copy())

    class WrongOnlyForTheSecondInput(Function):
        def forward(self, a, c):
            self.a, self.c = a, c
            return a * c

        def backward(self, grad):
            return grad * self.c, grad * self.a * 2

    assert not gradcheck(WrongOnlyForTheSecondInput.apply, [x, b], mode="full").passed
    assert gradcheck(WrongOnlyForTheSecondInput.apply, [x, b], mode="full").worst["input"] == 1
    assert not gradcheck(WrongOnlyForTheSecondInput.apply, [x, b], mode="directional").passed
    np.testing.assert_array_equal(x.data, before[0])
    np.testing.assert_array_equal(b.data, before[1])


def test_gradcheck_refuses_float32_unknown_modes_and_huge_jacobians():
    x32 = Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        gradcheck(Square.apply, [x32])
    with pytest.raises(ValueError, match="mode"):
        gradcheck(Square.apply, inputs(), mode="sideways")
    with pytest.raises(ValueError, match="directional"):
        gradcheck(Square.apply, [leaf(np.ones((50, 50)))], mode="full")


def test_gradcheck_handles_an_empty_output():
    result = gradcheck(lambda a: a[np.zeros(3, bool)] * 2, [leaf(np.ones(3))], mode="full")
    assert result.passed


# ---------------------------------------------------------------- backward properties


@pytest.mark.parametrize("op, message", [
    (MutatesItsInput, "input was modified"),
    (NonlinearInTheGradient, "not linear"),
    (ReturnsFloat32, "float32"),
    (Nondeterministic, "twice"),
    (MutatesTheIncomingGradient, ""),
])
def test_backward_properties_flag_each_kind_of_mistake(op, message):
    problems = check_backward_properties(op.apply, inputs(), name="bad")
    assert problems, f"{op.__name__} was not flagged"
    assert any(message in p for p in problems), problems
    assert all(p.startswith("bad:") for p in problems)


def test_a_wrong_dtype_is_flagged_even_though_the_leaf_grad_is_cast_back():
    x = inputs()[0]
    ReturnsFloat32.apply(x).sum().backward()
    assert x.grad.dtype == np.float64  # the engine casts at the leaf, as torch does...
    problems = check_backward_properties(lambda a: ReturnsFloat32.apply(a * 1.0) * 2.0, inputs())
    assert any("dtype" in p or "float32" in p for p in problems), problems  # ...so the check looks at each op


def test_a_gradient_of_the_wrong_shape_is_an_error_not_a_silent_reshape():
    x = inputs()[0]  # (3, 4); the backward returns (4, 3)
    with pytest.raises(ValueError, match="shape"):
        ReturnsTransposedShape.apply(x).sum().backward()


def test_assert_gradients_raises_with_every_failure_and_returns_results_when_fine():
    with pytest.raises(AssertionError) as info:
        assert_gradients(SquareOffByAFactor.apply, inputs(), name="off")
    text = str(info.value)
    assert "directional" in text and "full" in text and "off" in text
    results = assert_gradients(Square.apply, inputs(), name="ok")
    assert [r.mode for r in results] == ["directional", "full"]
    assert all(isinstance(r, GradcheckResult) and r.passed for r in results)
    # the full Jacobian only on small problems unless asked
    big = [leaf(np.random.default_rng(0).uniform(0.5, 2, (80, 80)))]
    assert [r.mode for r in assert_gradients(Square.apply, big)] == ["directional"]


# ---------------------------------------------------------------- the catalog and the CLI


def test_the_catalog_covers_every_op_and_layer_of_the_spec():
    names = " ".join(name for name, _ in catalog.cases())
    for op in ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "matmul", "sum", "mean",
               "amax", "max", "reshape", "permute", "slicing", "indexing", "pad", "cat", "where", "clamp",
               "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "batch_norm (training)",
               "batch_norm (eval)", "relu", "leaky_relu", "silu", "sigmoid", "tanh", "softmax", "log_softmax",
               "dropout", "dropout2d", "cross_entropy", "kl_div", "mse_loss", "nn.Conv2d", "nn.ConvTranspose2d",
               "nn.Linear", "nn.BatchNorm2d", "nn.SubSpectralNorm", "nn.FreqIN", "nn.ResNorm",
               "nn.GlobalFreqNorm", "nn.Dropout2d",
               # the device translator (paper 2.3): SSN with the paper's 16 sub-bands, its blocks, the LSGAN loss
               "nn.SubSpectralNorm (16 sub-bands)", "translator ResBlock (SSN 16)",
               "translator ConvSSN (transposed, stride 2)", "translator UNetGenerator", "translator PatchDiscriminator",
               "lsgan_loss"]:
        assert op in names, op


def _matching(select):
    return [name for name, _ in catalog.cases() if select.lower() in name.lower()]


def test_cli_gradcheck_prints_one_line_per_check_and_a_summary():
    expected_cases = _matching("relu")
    assert len(expected_cases) >= 3
    result = CliRunner().invoke(main, ["gradcheck", "-k", "relu"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    checks = 3 * len(expected_cases)  # directional, full, properties
    assert len(lines) == checks + 1
    assert lines[-1] == f"{checks} passed, 0 failed"
    for line in lines[:-1]:
        assert line.rstrip().endswith("pass"), line
        assert any(line.startswith(name) for name in expected_cases), line
    modes = [re.search(r"\s(\w+)\s+max_err=", line).group(1) for line in lines[:-1]]
    assert modes.count("directional") == modes.count("full") == modes.count("properties") == len(expected_cases)


def test_cli_gradcheck_passes_the_whole_catalog():
    """What a learner runs first: every op and layer, all three checks (a few seconds)."""
    result = CliRunner().invoke(main, ["gradcheck"])
    checks = 3 * len(list(catalog.cases()))
    assert result.output.strip().splitlines()[-1] == f"{checks} passed, 0 failed", result.output
    assert result.exit_code == 0


def test_cli_gradcheck_no_full_skips_the_jacobian_mode():
    result = CliRunner().invoke(main, ["gradcheck", "--select", "softmax", "--no-full", "--seed", "3"])
    assert result.exit_code == 0, result.output
    n = len(_matching("softmax"))
    assert result.output.strip().splitlines()[-1] == f"{2 * n} passed, 0 failed"
    assert " full " not in result.output


def test_cli_gradcheck_with_a_bogus_select_is_a_one_line_error():
    result = CliRunner().invoke(main, ["gradcheck", "--select", "no-such-op"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: no gradient check matches --select 'no-such-op'; run without it to list them all"]
    assert "Traceback" not in result.output


def test_cli_gradcheck_exits_non_zero_when_a_check_fails(monkeypatch):
    def broken_cases():
        yield "square (wrong)", lambda g: (SquareOffByAFactor.apply, [leaf(g.uniform(0.5, 2, (2, 2)))])

    monkeypatch.setattr(catalog, "cases", broken_cases)
    result = CliRunner().invoke(main, ["gradcheck"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1] == "1 passed, 2 failed"
    assert sum("FAIL" in line for line in lines) == 2
