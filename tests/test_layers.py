"""The layers of the package, read from its import statements (function-level imports included).

    engine       tensor and autograd, functional ops, kernels, modules, optimizers, random,
                 gradient checking: NumPy, Numba and the standard library only
    models       the networks of the paper and its baselines: the engine
    base         errors, checks of outside values, atomic file writes
    data         the TAU reader, the synthetic stand-in, features, augmentation, batches
    run          what every training run shares: checkpoints, run folder, metrics, figures
    compress     pruning, quantization, distillation, export
    translator   the device translator
    train        the classifier's training, evaluation, experiments
    top          the command line, figures of experiments, benchmarks, the gradcheck catalog

Each layer imports only itself and the layers listed for it, and no group of modules imports
itself in a circle, except the autograd core (a Tensor's methods build ops, ops build Tensors).
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "tinyasc"

LAYERS = {  # layer -> module prefixes
    "engine": ("tinyasc", "tinyasc.autograd", "tinyasc.functional", "tinyasc.kernels", "tinyasc.nn",
               "tinyasc.optim", "tinyasc.random", "tinyasc.testing.gradcheck"),
    "models": ("tinyasc.models",),
    "base": ("tinyasc.errors", "tinyasc.checks", "tinyasc.fileio"),
    "data": ("tinyasc.data", "tinyasc.audio"),
    "run": ("tinyasc.run",),
    "compress": ("tinyasc.compress",),
    "translator": ("tinyasc.translator",),
    "train": ("tinyasc.train",),
    "top": ("tinyasc.cli", "tinyasc.__main__", "tinyasc.figures", "tinyasc.spectra", "tinyasc.testing",
            "tinyasc.progress", "tinyasc.bench", "tinyasc.bench_step"),
}
ALLOWED = {  # layer -> the layers it may import besides itself
    "engine": set(),
    "models": {"engine"},
    "base": set(),
    "data": {"engine", "base"},
    "run": {"engine", "base", "data"},
    "compress": {"engine", "models", "base", "data", "run"},
    "translator": {"engine", "models", "base", "data", "run"},
    "train": {"engine", "models", "base", "data", "run", "compress", "translator"},
    "top": set(LAYERS),
}
CYCLE_EXEMPT = "tinyasc.autograd"


def module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports(name, path, known):
    """The tinyasc modules `name` imports, anywhere in the file. `from a import b` counts as
    importing a.b when that is a module, else as importing a."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.add(full if full in known else base)
    return {m for m in found if m in known and m != name}


def layer_of(name):
    best = None
    for layer, prefixes in LAYERS.items():
        for prefix in prefixes:
            if (name == prefix or name.startswith(prefix + ".")) and (best is None or len(prefix) > len(best[1])):
                best = (layer, prefix)
    return best[0] if best else None


@pytest.fixture(scope="module")
def graph():
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_every_module_has_a_layer(graph):
    assert [name for name in graph if layer_of(name) is None] == []


def test_layers_import_only_what_is_below_them(graph):
    wrong = []
    for name, targets in graph.items():
        layer = layer_of(name)
        for target in targets:
            other = layer_of(target)
            if other != layer and other not in ALLOWED[layer]:
                wrong.append(f"{name} ({layer}) imports {target} ({other})")
    assert wrong == []


def strongly_connected(graph):
    """Tarjan's algorithm, iterative: the groups of modules that import each other in a circle."""
    index, low, stack, on_stack, groups = {}, {}, [], set(), []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return groups


def test_no_import_cycles(graph):
    cycles = [g for g in strongly_connected(graph)
              if not all(m == CYCLE_EXEMPT or m.startswith(CYCLE_EXEMPT + ".") for m in g)]
    assert cycles == []


def test_the_checks_catch_a_cycle_and_an_upward_import():
    """The tests above can fail: a made-up graph with a circle and an engine importing training."""
    made_up = {"tinyasc.nn.a": {"tinyasc.train.b"}, "tinyasc.train.b": {"tinyasc.nn.a"}}
    assert strongly_connected(made_up) == [["tinyasc.nn.a", "tinyasc.train.b"]]
    assert layer_of("tinyasc.nn.a") == "engine" and "train" not in ALLOWED["engine"]
