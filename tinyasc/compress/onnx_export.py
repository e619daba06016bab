"""Export a BC-ResNet-Mod (or an Ensemble of them) to ONNX, for inference outside tinyasc.

The graph is the eval-mode forward pass, layer for layer, built with onnx.helper; every
weight and running statistic is an initializer (float32). Input "logmel" is
N x 1 x F x T float32 with N and T dynamic (T fixed when `frames` is given); output
"logits" is N x K. For an Ensemble the output is what Ensemble.forward returns,
log(mean_k softmax(z_k)).

The mapping (ONNX opset 17):

  ResNorm / FreqIN   m = ReduceMean_{1,3}(x); d = x - m; v = ReduceMean_{1,3}(d * d);
                     y = d / Sqrt(v + eps) [+ lam * x]        (FreqIN: lam = 0)
  GlobalFreqNorm     (x - mean) / std, constants shaped 1 x 1 x F x 1
  Conv2d             Conv (pads top, left, bottom, right), bias when the layer has one
  BatchNorm2d        BatchNormalization with the running statistics [-> Relu]
  SubSpectralNorm    Reshape [0, C*S, F/S, -1] -> BatchNormalization -> Reshape [0, C, F, -1]
  F1                 ReduceMean_2 (keepdims) -> depthwise 1x3 -> BN -> x * Sigmoid(x) -> conv 1x1
                     (Dropout2d is the identity in eval)
  BC-ResBlock        Relu(x2 + f1 [+ x]) with ONNX broadcasting over frequency
  max-pool 2x2       MaxPool kernel 2, stride 2, floor
  classifier, mean   Conv 1x1 with bias -> ReduceMean_{2,3} (keepdims 0)

A pruned or quantized model (tinyasc.compress.load_compressed) is a BCResNetMod whose conv
weights are the dequantized values: they are exported as they are, in float32.

onnx is an optional dependency (`pip install tinyasc[onnx]`): it is imported only when
export_onnx is called.
"""
import os
from dataclasses import dataclass

import numpy as np

from tinyasc.fileio import atomic_write_bytes, write_through

OPSET = 17
INPUT_NAME = "logmel"
OUTPUT_NAME = "logits"


@dataclass
class OnnxExportSummary:
    path: str
    bytes: int
    opset: int
    nodes: int
    initializers: int
    parameters: int

    def line(self):
        return (f"wrote {self.path}: {self.bytes:,} bytes, ONNX opset {self.opset}, "
                f"{self.nodes} nodes, {self.initializers} initializers ({self.parameters:,} values)")


def _require_onnx():
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as exc:  # pragma: no cover - depends on the environment
        from tinyasc.errors import TinyAscError
        raise TinyAscError("ONNX export needs the onnx package: pip install 'tinyasc[onnx]' "
                           "(or pip install onnx onnxruntime)") from exc
    return onnx, helper, numpy_helper


def _array(value):
    """The float32 numpy array of a Parameter / Tensor / buffer."""
    data = getattr(value, "data", value)
    return np.ascontiguousarray(np.asarray(data, dtype=np.float32))


class _GraphBuilder:
    """Collects nodes and initializers with unique names."""

    def __init__(self, helper, numpy_helper):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.nodes, self.initializers = [], []
        self._names = set()
        self._constants = {}

    def name(self, base):
        base = base.replace("/", ".")
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def initializer(self, array, name):
        name = self.name(name)
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array), name=name))
        return name

    def constant(self, array, name):
        """A shared initializer for a small constant (reused when the same value and dtype)."""
        array = np.asarray(array)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            self._constants[key] = self.initializer(array, name)
        return self._constants[key]

    def op(self, op_type, inputs, name, outputs=1, **attrs):
        node_name = self.name(name)
        outs = [node_name] if outputs == 1 else [f"{node_name}:{i}" for i in range(outputs)]
        for out in outs:
            self._names.add(out)
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=node_name, **attrs))
        return outs[0] if outputs == 1 else outs


class _Exporter:
    def __init__(self, builder):
        self.g = builder

    # ------------------------------------------------------------------ layers

    def conv(self, module, x, name):
        from tinyasc.nn.layers import Conv2d

        if not isinstance(module, Conv2d):
            raise TypeError(f"{name}: expected a Conv2d, got {type(module).__name__}")
        if isinstance(module.padding, str):
            raise ValueError(f"{name}: string padding {module.padding!r} is not exported; use explicit padding")
        ph, pw = module.padding
        inputs = [x, self.g.initializer(_array(module.weight), f"{name}.weight")]
        if module.bias is not None:
            inputs.append(self.g.initializer(_array(module.bias), f"{name}.bias"))
        return self.g.op("Conv", inputs, name, kernel_shape=list(module.kernel_size), strides=list(module.stride),
                         pads=[ph, pw, ph, pw], dilations=list(module.dilation), group=module.groups)

    def batch_norm(self, module, x, name, relu=False, eps=None):
        if module.running_mean is None:
            raise ValueError(f"{name}: a BatchNorm without running statistics has no eval-mode ONNX equivalent")
        n = module.running_mean.shape[0]
        weight = _array(module.weight) if module.weight is not None else np.ones(n, np.float32)
        bias = _array(module.bias) if module.bias is not None else np.zeros(n, np.float32)
        inputs = [x,
                  self.g.initializer(weight, f"{name}.weight"),
                  self.g.initializer(bias, f"{name}.bias"),
                  self.g.initializer(_array(module.running_mean), f"{name}.running_mean"),
                  self.g.initializer(_array(module.running_var), f"{name}.running_var")]
        y = self.g.op("BatchNormalization", inputs, name, epsilon=float(module.eps if eps is None else eps))
        return self.g.op("Relu", [y], f"{name}.relu") if relu else y

    def freq_norm(self, x, name, lam, eps):
        """lam * x + (x - mean_{C,T}) / sqrt(var_{C,T} + eps), per sample and frequency bin."""
        g = self.g
        mean = g.op("ReduceMean", [x], f"{name}.mean", axes=[1, 3], keepdims=1)
        d = g.op("Sub", [x, mean], f"{name}.centered")
        var = g.op("ReduceMean", [g.op("Mul", [d, d], f"{name}.square")], f"{name}.var", axes=[1, 3], keepdims=1)
        std = g.op("Sqrt", [g.op("Add", [var, g.constant(np.float32(eps), "eps")], f"{name}.var_eps")],
                   f"{name}.std")
        y = g.op("Div", [d, std], f"{name}.normalized")
        if lam:
            scaled = g.op("Mul", [x, g.constant(np.float32(lam), f"{name}.lam")], f"{name}.shortcut")
            y = g.op("Add", [scaled, y], f"{name}.out")
        return y

    def norm_module(self, module, x, name):
        from tinyasc.nn.layers import Identity
        from tinyasc.nn.norm import FreqIN, GlobalFreqNorm, ResNorm

        if isinstance(module, Identity):
            return x
        if isinstance(module, ResNorm):
            return self.freq_norm(x, name, module.lam, module.eps)
        if isinstance(module, FreqIN):
            return self.freq_norm(x, name, 0.0, module.eps)
        if isinstance(module, GlobalFreqNorm):
            mean = self.g.initializer(_array(module.mean).reshape(1, 1, -1, 1), f"{name}.mean")
            std = self.g.initializer(_array(module.std).reshape(1, 1, -1, 1), f"{name}.std")
            return self.g.op("Div", [self.g.op("Sub", [x, mean], f"{name}.centered"), std], name)
        raise TypeError(f"{name}: no ONNX mapping for {type(module).__name__}")

    def sub_spectral_norm(self, module, x, name, freq):
        c, s = module.num_features, module.subbands
        if freq % s:
            raise ValueError(f"{name}: {freq} frequency bins are not divisible by {s} sub-bands")
        split = self.g.constant(np.array([0, c * s, freq // s, -1], np.int64), f"{name}.split_shape")
        merge = self.g.constant(np.array([0, c, freq, -1], np.int64), f"{name}.merge_shape")
        y = self.g.op("Reshape", [x, split], f"{name}.split")
        y = self.batch_norm(module, y, f"{name}.bn")
        return self.g.op("Reshape", [y, merge], f"{name}.merge")

    def block(self, block, x, name, freq):
        f2, f1 = block.f2, block.f1
        h = x
        if f2.transition:
            h = self.batch_norm(f2.pw_bn, self.conv(f2.pw, h, f"{name}.f2.pw"), f"{name}.f2.pw_bn", relu=True)
        x2 = self.sub_spectral_norm(f2.ssn, self.conv(f2.dw, h, f"{name}.f2.dw"), f"{name}.f2.ssn", freq)
        pooled = self.g.op("ReduceMean", [x2], f"{name}.f1.freq_mean", axes=[2], keepdims=1)
        z = self.batch_norm(f1.bn, self.conv(f1.dw, pooled, f"{name}.f1.dw"), f"{name}.f1.bn")
        z = self.g.op("Mul", [z, self.g.op("Sigmoid", [z], f"{name}.f1.sigmoid")], f"{name}.f1.silu")
        z = self.conv(f1.pw, z, f"{name}.f1.pw")  # Dropout2d: identity in eval
        y = self.g.op("Add", [x2, z], f"{name}.broadcast_add")
        if not block.transition:
            y = self.g.op("Add", [y, x], f"{name}.residual")
        return self.g.op("Relu", [y], f"{name}.relu")

    # ------------------------------------------------------------------ models

    def bcresnet(self, model, x, prefix, freq):
        p = f"{prefix}." if prefix else ""
        x = self.norm_module(model.input_norm, x, f"{p}input_norm")
        head = model.head
        x = self.batch_norm(head.bn, self.conv(head.conv, x, f"{p}head.conv"), f"{p}head.bn", relu=True)
        freq = _conv_out(freq, head.conv, 0)
        for s, (stage, stage_norm) in enumerate(zip(model.stages, model.stage_norms)):
            for b, block in enumerate(stage):
                x = self.block(block, x, f"{p}stages.{s}.{b}", freq)
            x = self.norm_module(stage_norm, x, f"{p}stage_norms.{s}")
            if s < 2:
                x = self.g.op("MaxPool", [x], f"{p}pool{s + 1}", kernel_shape=[2, 2], strides=[2, 2], ceil_mode=0)
                freq //= 2
        x = self.conv(model.classifier, x, f"{p}classifier")
        return self.g.op("ReduceMean", [x], f"{p}mean", axes=[2, 3], keepdims=0)

    def model(self, model, x, freq):
        from tinyasc.compress.distill import Ensemble
        from tinyasc.models.bcresnet_mod import BCResNetMod

        if isinstance(model, BCResNetMod):
            return self.bcresnet(model, x, "", freq)
        if isinstance(model, Ensemble):
            probs = []
            for i, member in enumerate(model.members):
                if not isinstance(member, BCResNetMod):
                    raise TypeError(f"ensemble member {i}: ONNX export supports BCResNetMod, "
                                    f"got {type(member).__name__}")
                logits = self.bcresnet(member, x, f"members.{i}", freq)
                probs.append(self.g.op("Softmax", [logits], f"members.{i}.softmax", axis=1))
            total = probs[0] if len(probs) == 1 else self.g.op("Sum", probs, "ensemble.sum")
            count = self.g.constant(np.float32(len(probs)), "ensemble.count")
            return self.g.op("Log", [self.g.op("Div", [total, count], "ensemble.mean")], "ensemble.log")
        raise TypeError(f"ONNX export supports BCResNetMod and Ensemble of them, got {type(model).__name__}")


def _conv_out(size, conv, axis):
    k, s, p, d = conv.kernel_size[axis], conv.stride[axis], conv.padding[axis], conv.dilation[axis]
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _input_bins(model, num_bins):
    """The model's own bin count when it fixes one (GlobalFreqNorm), else num_bins."""
    from tinyasc.compress.distill import Ensemble
    from tinyasc.nn.norm import GlobalFreqNorm

    members = list(model.members) if isinstance(model, Ensemble) else [model]
    for m in members:
        norm = getattr(m, "input_norm", None)
        if isinstance(norm, GlobalFreqNorm):
            bins = int(norm.mean.shape[0])
            if num_bins is not None and int(num_bins) != bins:
                raise ValueError(f"num_bins={num_bins}, but the model's GlobalFreqNorm has {bins} bins")
            return bins
    return int(num_bins)


def build_onnx(model, num_bins=256, frames=None, opset=OPSET, name="tinyasc"):
    """The onnx.ModelProto of `model`'s eval-mode forward pass (see the module docstring)."""
    onnx, helper, numpy_helper = _require_onnx()
    num_bins = _input_bins(model, num_bins)
    if frames is not None and int(frames) < 1:
        raise ValueError(f"frames must be positive, got {frames}")
    num_classes = int(getattr(model, "num_classes"))
    builder = _GraphBuilder(helper, numpy_helper)
    builder._names.add(INPUT_NAME)
    out = _Exporter(builder).model(model, INPUT_NAME, num_bins)
    builder.nodes.append(helper.make_node("Identity", [out], [OUTPUT_NAME], name=builder.name("output")))
    t = int(frames) if frames is not None else "T"
    graph = helper.make_graph(
        builder.nodes, name,
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, ["N", 1, num_bins, t])],
        [helper.make_tensor_value_info(OUTPUT_NAME, onnx.TensorProto.FLOAT, ["N", num_classes])],
        initializer=builder.initializers)
    doc = f"tinyasc {type(model).__name__}: {model.extra_repr()}" if hasattr(model, "extra_repr") else "tinyasc"
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="tinyasc", doc_string=doc)
    proto.ir_version = min(proto.ir_version, 8)  # opset 17 needs IR 8; older runtimes reject newer IRs
    onnx.checker.check_model(proto)
    return proto


def export_onnx(model, path, num_bins=256, frames=None, opset=OPSET, atomic=True):
    """Write `model` (a BCResNetMod, or an Ensemble of them) as an ONNX file; returns a summary.

    Input "logmel" N x 1 x num_bins x T (T = frames if given, else dynamic), output
    "logits" N x num_classes. The model is exported in eval mode whatever its mode;
    it is not modified. atomic=False writes `path` directly, for a caller that already
    writes through a temporary name (and names the file it stands for in its errors).
    """
    proto = build_onnx(model, num_bins=num_bins, frames=frames, opset=opset)
    data = proto.SerializeToString()
    path = os.fspath(path)
    if atomic:
        atomic_write_bytes(path, lambda f: f.write(data))
    else:
        write_through(path, lambda f: f.write(data))
    values = sum(int(np.prod(init.dims)) for init in proto.graph.initializer)
    return OnnxExportSummary(path=path, bytes=len(data), opset=int(opset), nodes=len(proto.graph.node),
                             initializers=len(proto.graph.initializer), parameters=values)


def onnxruntime_installed():
    """Whether onnxruntime can be found, without importing it (an import can fail for other
    reasons: Ctrl-C during onnxruntime's import surfaces as an ImportError)."""
    import importlib.util

    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):  # a module entry set to None, or one without a spec
        return False


def onnx_predict(path, x):
    """Run an exported file with onnxruntime on x (N x 1 x F x T); returns the N x K output."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        from tinyasc.errors import TinyAscError
        if not onnxruntime_installed():
            raise TinyAscError("running an ONNX model needs onnxruntime: pip install 'tinyasc[onnx]'") from None
        # installed, but its import failed: a broken install, or Ctrl-C during the import (which
        # onnxruntime's extension reports as an ImportError)
        raise TinyAscError(f"onnxruntime is installed but failed to import ({' '.join(str(exc).split())}); "
                           "run again, or reinstall it: pip install --force-reinstall onnxruntime") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(x, dtype=np.float32)})[0]
