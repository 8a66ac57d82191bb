"""Feature taps: functional sub-models over a model's own layers."""

import keras

from keras_distill import _compat

#: Key of the model's final output in a feature extractor's output dict.
FINAL_OUTPUT = "final_output"


def build_feature_extractor(model, layer_names, *, include_output=True, name=None):
    """A functional model returning named intermediate outputs of `model`.

    The extractor reuses `model`'s layers (and so its weights): training it
    trains `model`. `model` itself is never edited. Calling the extractor
    runs the model once and returns every tap of that one forward pass.

    Args:
        model: A Functional or Sequential `keras.Model` (built, with known
            inputs). Subclassed models have no graph to tap: wrap them first.
        layer_names: str or list of str. Names of layers of `model`. A layer
            inside a nested model is named by its path, e.g.
            `"backbone/conv3"` for layer `conv3` of the nested model
            `backbone`.
        include_output: bool. Also return the model's final output under
            the key `keras_distill.features.FINAL_OUTPUT`. `False` builds
            only the layers needed for the taps, so that the layers after
            them are neither run nor trained.
        name: Name of the extractor. Defaults to `"{model.name}_features"`.

    Returns:
        A `keras.Model` whose output is a dict mapping each name in
        `layer_names` (and `FINAL_OUTPUT`) to a tensor.

    Examples:

    ```python
    extractor = keras_distill.features.build_feature_extractor(
        model, ["block1_conv", "backbone/conv3"]
    )
    outputs = extractor(images)
    outputs["block1_conv"], outputs[keras_distill.features.FINAL_OUTPUT]
    ```
    """
    if isinstance(layer_names, str):
        layer_names = [layer_names]
    layer_names = list(layer_names)
    _check_names(model, layer_names)
    functional = as_functional(model)
    nested = {name.split("/")[0] for name in layer_names if "/" in name}
    if nested:
        outputs = _retrace(functional, layer_names, nested)
    else:
        outputs = {name: find_layer(functional, name).output for name in layer_names}
        outputs[FINAL_OUTPUT] = functional.output
    inputs = outputs.pop("__inputs__", functional.input)
    if not include_output:
        outputs.pop(FINAL_OUTPUT)
    return keras.Model(inputs, outputs, name=name or f"{model.name}_features")


def map_layers(teacher_layers, student_layers):
    """Pairs each student layer with a teacher layer, spread uniformly.

    With `n` teacher and `m` student layers, student layer `i` (0-based)
    learns from teacher layer `(i + 1) * n // m - 1`: the last layer of
    each of `m` equal blocks (DistilBERT / TinyBERT's "every k-th layer").

    Args:
        teacher_layers: list of teacher layer names (paths), bottom first.
        student_layers: list of student layer names, at most as many.

    Returns:
        A list of `(teacher_layer, student_layer)` pairs, the `pairs`
        argument of `keras_distill.FeatureDistiller`.

    Examples:

    ```python
    pairs = keras_distill.features.map_layers(
        [f"teacher_backbone/transformer_layer_{i}" for i in range(12)],
        [f"student_backbone/transformer_layer_{i}" for i in range(6)],
    )  # student layer 0 <- teacher layer 1, 1 <- 3, ..., 5 <- 11
    ```
    """
    teacher_layers, student_layers = list(teacher_layers), list(student_layers)
    if not student_layers or len(student_layers) > len(teacher_layers):
        raise ValueError(
            "map_layers needs 1 to len(teacher_layers) student layers. "
            f"Received {len(teacher_layers)} teacher and {len(student_layers)} "
            "student layer names."
        )
    count, total = len(student_layers), len(teacher_layers)
    return [(teacher_layers[(index + 1) * total // count - 1], name) for index, name in enumerate(student_layers)]


def as_functional(model):
    """`model` itself if it is Functional, its graph if it is Sequential."""
    if isinstance(model, keras.Sequential):
        try:
            inputs, outputs = model.inputs, model.outputs
        except (AttributeError, ValueError):
            inputs = outputs = None
        if not inputs:
            raise ValueError(
                f"The Sequential model {model.name!r} has no known input, so "
                "its layers' outputs cannot be tapped. Start it with "
                "keras.Input(shape=...), e.g. keras.Sequential("
                "[keras.Input((28, 28, 1)), ...])."
            )
        return keras.Model(_single(inputs), _single(outputs), name=model.name)
    try:
        inputs = model.inputs
    except AttributeError:
        inputs = None
    if not inputs or not _compat.is_graph_model(model):
        raise ValueError(
            f"Cannot tap the layers of {model.name!r} "
            f"(a subclassed {type(model).__name__}): only Functional and "
            "Sequential models have a graph of layer outputs. Rebuild it "
            "with the functional API, e.g. inputs = keras.Input(shape); "
            "x = block1(inputs); features = block2(x); logits = head(features); "
            "model = keras.Model(inputs, logits), or use a distiller that "
            "needs only the model's final outputs (keras_distill.Distiller)."
        )
    return model


def find_layer(model, path):
    """The layer at `path` (`"name"` or `"nested_model/name"`) in `model`."""
    layer = model
    for depth, part in enumerate(path.split("/")):
        names = [sub.name for sub in getattr(layer, "layers", [])]
        if part not in names:
            where = "/".join(path.split("/")[:depth]) or model.name
            raise ValueError(
                f"No layer named {part!r} in {where!r} (looking up "
                f"{path!r}). Its layers are: {', '.join(names) or 'none'}. "
                "Pass one of these names; name a layer inside a nested "
                "model as 'nested_model_name/layer_name'."
            )
        layer = layer.get_layer(part)
    return layer


def _single(tensors):
    return tensors[0] if len(tensors) == 1 else tensors


def _check_names(model, layer_names):
    if not layer_names:
        raise ValueError(
            f"No layer names were given to tap in {model.name!r}. Pass at least one, e.g. layer_names=['block1_conv']."
        )
    for name in layer_names:
        if not isinstance(name, str):
            raise TypeError(
                f"Layer names must be strings. Received: {name!r} (of type {type(name).__name__}) in {layer_names!r}."
            )
    if FINAL_OUTPUT in layer_names:
        raise ValueError(
            f"{FINAL_OUTPUT!r} is reserved for the model's final output in "
            "the extractor's output dict. Rename that layer."
        )


def _retrace(model, layer_names, nested):
    """Runs `model`'s graph again with nested models replaced by their own
    extractors, collecting the taps; every layer is reused, not copied."""
    inner_names = {
        outer: [name.split("/", 1)[1] for name in layer_names if name.split("/")[0] == outer and "/" in name]
        for outer in nested
    }
    tapped = {name: find_layer(model, name) for name in layer_names if "/" not in name}
    extractors = {}
    for outer in nested:
        layer = find_layer(model, outer)
        if not isinstance(layer, keras.Model):
            raise ValueError(
                f"{outer!r} in {model.name!r} is a {type(layer).__name__}, "
                "not a nested model, so it has no layers to look up by path. "
                f"Tap it by its own name, {outer!r}."
            )
        extractors[id(layer)] = (outer, build_feature_extractor(layer, inner_names[outer]))
    taps = {}

    def call_function(layer, *args, **kwargs):
        if id(layer) in extractors:
            outer, extractor = extractors[id(layer)]
            outputs = dict(extractor(*args, **kwargs))
            final = outputs.pop(FINAL_OUTPUT)
            _record(taps, outer, {f"{outer}/{k}": v for k, v in outputs.items()})
            return final
        output = layer(*args, **kwargs)
        for name, target in tapped.items():
            if target is layer:
                _record(taps, name, {name: output})
        return output

    clone = keras.models.clone_model(model, clone_function=lambda layer: layer, call_function=call_function)
    return {**taps, FINAL_OUTPUT: clone.output, "__inputs__": clone.input}


def _record(taps, name, outputs):
    if any(key in taps for key in outputs):
        raise ValueError(
            f"Layer {name!r} is called more than once in the model, so which "
            "of its outputs to tap is ambiguous. Tap a layer that is called "
            "once, e.g. one right after it."
        )
    taps.update(outputs)
