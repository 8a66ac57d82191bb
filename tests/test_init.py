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
                    targets = [node.module]
                    if node.module == "keras_distill":
                        # `from keras_distill import losses` is a module; `import Distiller` the public API.
                        targets = [
                            f"keras_distill.{alias.name}" if _is_module(alias.name) else "keras_distill"
                            for alias in node.names
                        ]
                elif isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names if alias.name.startswith("keras_distill")]
                else:
                    continue
                for target in targets:
                    yield module, target, node.lineno


def _is_module(name):
    return os.path.exists(os.path.join(PACKAGE, name + ".py")) or os.path.isdir(os.path.join(PACKAGE, name))


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
    assert ("keras_distill.distillers.distiller", "keras_distill._training") in pairs
    assert ("keras_distill.cli", "keras_distill._training.hyperparameters") in pairs


def test_the_distiller_reads_on_one_screen():
    """Its checks, entry points and settings live in _training/."""
    with open(os.path.join(PACKAGE, "distillers", "distiller.py")) as f:
        assert len(f.readlines()) < 350


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
