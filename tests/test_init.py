"""The package as a whole: its public names, and imports that only point down."""

import ast
import os

import keras_distill as kd

PACKAGE = os.path.dirname(os.path.abspath(kd.__file__))

# Bottom first. A module may import from a lower layer, or from its own
# group; never from a layer above it.
LAYERS = (
    {
        "internals": ("keras_distill._compat", "keras_distill._validate", "keras_distill._defaults"),
        "tables": ("keras_distill.tables",),
    },
    {
        "datasets": ("keras_distill.datasets",),
        "features": ("keras_distill.features",),
        "losses": ("keras_distill.losses",),
        "sharding": ("keras_distill.sharding",),
        "sampling": ("keras_distill.sampling", "keras_distill.on_policy_evaluation"),
        "cutting": ("keras_distill.cutting",),
    },
    {"training pieces": ("keras_distill._training",), "callbacks": ("keras_distill.callbacks",)},
    {
        "distillers": ("keras_distill.distillers",),
        "teacher cache": ("keras_distill.teacher_cache", "keras_distill.cache_directory"),
        "export": ("keras_distill.export",),
        "sequence data": ("keras_distill.sequence_data",),
    },
    {"tuning": ("keras_distill.tuning",), "quantization": ("keras_distill.quantize",)},
    {"deployment": ("keras_distill.deploy",)},
    {"public API": ("keras_distill",)},
    {
        "command line": (
            "keras_distill.cli",
            "keras_distill.__main__",
            "keras_distill.distill_command",
        )
    },
)


def place(module):
    """(layer, group) of a module name, by its longest matching prefix."""
    best = None
    for layer, groups in enumerate(LAYERS):
        for group, prefixes in groups.items():
            for prefix in prefixes:
                if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[2]):
                    best = (layer, group, len(prefix))
    assert best is not None, f"{module} is in no layer: add it to LAYERS"
    return best[:2]


def package_imports():
    """(importing module, imported module, line) for every keras_distill import."""
    for directory, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(directory, name)
            relative = os.path.relpath(path, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
            module = relative[: -len(".__init__")] if relative.endswith(".__init__") else relative
            for node in ast.walk(ast.parse(open(path).read())):
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("keras_distill"):
                    # `from keras_distill import losses` imports a module;
                    # `from keras_distill import Distiller` the public API.
                    targets = [
                        f"{node.module}.{alias.name}" if _is_module(f"{node.module}.{alias.name}") else node.module
                        for alias in node.names
                    ]
                elif isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names if alias.name.startswith("keras_distill")]
                else:
                    continue
                for target in targets:
                    yield module, target, node.lineno


def _is_module(name):
    path = os.path.join(os.path.dirname(PACKAGE), *name.split("."))
    return os.path.exists(path + ".py") or os.path.isdir(path)


def test_no_module_imports_from_a_layer_above_it():
    upward = []
    for module, target, line in package_imports():
        (layer, group), (target_layer, target_group) = place(module), place(target)
        if target_layer > layer or (target_layer == layer and target_group != group):
            upward.append(f"{module}:{line} imports {target} ({target_group}, above {group})")
    assert not upward, "\n".join(upward)


def test_the_layering_check_sees_an_upward_import():
    assert place("keras_distill._training.step") == (2, "training pieces")
    assert place("keras_distill.tuning")[0] == place("keras_distill.distillers.distiller")[0] + 1
    assert place("keras_distill.distillers.distiller")[0] > place("keras_distill._training.checks")[0]
    assert place("keras_distill.distill_command")[0] > place("keras_distill")[0]
    imports = list(package_imports())
    pairs = {(a, b) for a, b, _ in imports}
    assert ("keras_distill.distillers.distiller", "keras_distill._training.step") in pairs
    assert ("keras_distill.cli", "keras_distill._training.checks.arguments") in pairs


def import_graph():
    """{module: modules it imports}, each import also importing the
    packages above the module it names (their `__init__` runs first), the
    top package aside: every module is under it."""
    graph = {}
    for module, target, _ in package_imports():
        parts = target.split(".")
        implied = [".".join(parts[:end]) for end in range(2, len(parts))]
        # A package's own modules run while it is imported: not a circle.
        implied = [package for package in implied if not (module + ".").startswith(package + ".")]
        graph.setdefault(module, set()).update([target, *implied])
    return graph


def cycles(graph):
    """The import cycles of `graph`, each as the list of its modules."""
    found, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target) :] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def test_no_import_circle():
    assert cycles(import_graph()) == []


def test_the_circle_check_sees_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    graph = import_graph()
    assert "keras_distill._training.checks" in graph["keras_distill._training.outputs"]


def _step_path(distiller, x, y):
    """`(module, function, lines of code)` of every function of the package
    that one eager `compute_loss` call runs."""
    import inspect
    import sys

    y_pred = distiller(x)
    seen = {}

    def profile(frame, event, argument):
        code = frame.f_code
        if event == "call" and code.co_filename.startswith(PACKAGE) and code.co_name[0] != "<":
            seen.setdefault((code.co_filename, code.co_firstlineno), code)

    sys.setprofile(profile)
    try:
        distiller.compute_loss(x, y, y_pred)
    finally:
        sys.setprofile(None)
    path = []
    for (filename, _), code in seen.items():
        module = os.path.relpath(filename, os.path.dirname(PACKAGE))[:-3].replace(os.sep, ".")
        source, _ = inspect.getsourcelines(code)
        tree = ast.parse("".join(line[len(source[0]) - len(source[0].lstrip()) :] for line in source))
        function = tree.body[0]
        body = function.body[1:] if isinstance(function.body[0], ast.Expr) and len(function.body) > 1 else function.body
        lines = function.end_lineno - body[0].lineno + 2
        path.append((module, code.co_qualname, lines))
    return path


def test_one_step_reads_in_the_distiller_the_step_and_the_losses():
    """The reading rule: from `Distiller.compute_loss` to the loss
    arithmetic through at most two modules beyond distiller.py (the step's
    pieces and the losses), no function on the way longer than 40 lines."""
    import keras
    import numpy as np

    def model(name, outputs):
        inputs = keras.Input((6,))
        hidden = keras.layers.Dense(8, activation="relu")(inputs)
        if outputs == "one":
            return keras.Model(inputs, keras.layers.Dense(4)(hidden), name=name)
        return keras.Model(inputs, {"a": keras.layers.Dense(4)(hidden), "b": keras.layers.Dense(1)(hidden)}, name=name)

    x = np.random.default_rng(0).random((4, 6), dtype="float32")
    labels = np.array([0, 1, 2, 3])
    single = kd.Distiller(student=model("s", "one"), teacher=model("t", "one"))
    single.compile("sgd", "sparse_categorical_crossentropy", alpha=0.5)
    several = kd.Distiller(student=model("s2", "two"), teacher=model("t2", "two"))
    several.compile(
        "sgd",
        {"a": "sparse_categorical_crossentropy"},
        distillation_loss={"a": "kl", "b": keras.losses.MeanSquaredError()},
    )
    cached = kd.with_teacher_outputs(labels, kd.precompute_teacher_outputs(single.teacher, x))
    paths = [
        _step_path(single, x, labels),
        _step_path(several, x, {"a": labels}),
        _step_path(single, x, cached),
    ]
    for path in paths:
        modules = {module for module, _, _ in path}
        assert {"keras_distill.distillers.distiller", "keras_distill._training.step"} <= modules
        assert all(
            module in ("keras_distill.distillers.distiller", "keras_distill._training.step")
            or module.startswith("keras_distill.losses.")
            for module in modules
        ), sorted(modules)
        long = [(function, lines) for _, function, lines in path if lines > 40]
        assert not long, long
    assert any(function == "Distiller.compute_loss" for _, function, _ in paths[0])
    assert any(function == "soft_target_kl_divergence" for _, function, _ in paths[0])


def test_the_application_uses_the_package_as_a_user_does():
    """The reproductions, examples and benchmarks live outside the package
    and import none of its private modules."""
    root = os.path.dirname(PACKAGE)
    private = []
    for folder in ("reproductions", "examples", "benchmarks"):
        for directory, _, files in os.walk(os.path.join(root, folder)):
            for name in (name for name in files if name.endswith(".py")):
                path = os.path.join(directory, name)
                for node in ast.walk(ast.parse(open(path).read())):
                    modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
                    if isinstance(node, ast.Import):
                        modules = [alias.name for alias in node.names]
                    private += [f"{path}:{node.lineno} {m}" for m in modules if m.startswith("keras_distill._")]
    assert os.path.isdir(os.path.join(root, "reproductions")) and not os.path.exists(
        os.path.join(PACKAGE, "experiments")
    )
    assert not private, "\n".join(private)


def test_the_public_names():
    for name in (
        "Distiller",
        "FeatureDistiller",
        "HintDistiller",
        "FSPDistiller",
        "MutualLearner",
        "AssistantChain",
        "BornAgain",
        "precompute_teacher_outputs",
        "with_teacher_outputs",
    ):
        assert hasattr(kd, name), name
    assert sorted(
        kd.distillers.__all__
        if hasattr(kd.distillers, "__all__")
        else [name for name in dir(kd.distillers) if name[0].isupper()]
    ) == [
        "AssistantChain",
        "BornAgain",
        "Distiller",
        "FSPDistiller",
        "FeatureDistiller",
        "HintDistiller",
        "MutualLearner",
        "OnPolicyDistiller",
    ]


def test_the_public_names_are_listed_once():
    from keras_distill import _public

    names = {name for name in vars(_public) if not name.startswith("_")}
    assert names == set(kd.__all__)
