"""A student cut from its teacher: fewer transformer layers, fewer heads,
fewer MLP units and a narrower hidden width, its weights copied from the
teacher's.

DistilBERT (Sanh et al., 2019) started its student from every other layer of
its teacher; Minitron (Muralidharan et al., 2024) prunes the teacher's depth
and width by activation importance on a calibration batch, then distils.
`cut_student` does both for keras-hub backbones whose transformer blocks are
layers named `transformer_layer_i` (GPT-2, Llama, Mistral, Qwen, ...) or
`decoder_block_i` (Gemma).

The importance scores (Minitron, section 2.2), from the teacher's activations
on the calibration batch, over its non-padded tokens:

- a layer: 1 - the mean cosine similarity between the hidden states entering
  and leaving it (ShortGPT's block influence): a layer that changes little is
  cut first;
- an attention head: the mean L2 norm of its output (the per-head context,
  before the output projection), per layer;
- an MLP unit: the mean absolute value of its activation (the input of the
  MLP's output projection), per layer;
- a hidden channel: the mean absolute value of the residual stream (every
  layer's output), shared by all layers.
"""

import re

import keras
import numpy as np
from keras import ops

from keras_distill import _compat

_BLOCK_NAMES = ("transformer_layer_", "decoder_block_")
_LAYER_CHOICES = ("even", "importance")


def cut_student(
    teacher,
    *,
    num_layers=None,
    layers="even",
    num_heads=None,
    intermediate_dim=None,
    hidden_dim=None,
    calibration=None,
    name=None,
):
    """A smaller keras-hub model made from `teacher`, weights copied.

    The student has the teacher's class and configuration but for the sizes
    asked for; every weight it keeps is the teacher's (sliced where it is
    narrower), so it starts where the teacher's knowledge is, not from
    random weights. Distil it from the teacher afterwards
    (`keras_distill.Distiller`, `CausalLMDistiller`, `OnPolicyDistiller`).
    The teacher is not changed.

    Args:
        teacher: A keras-hub backbone, or a task model (`GPT2CausalLM`,
            `LlamaCausalLM`, ...) holding one in `.backbone`.
        num_layers: int, the student's number of transformer layers.
            Defaults to the teacher's.
        layers: Which teacher layers the student keeps: `"even"` (default;
            teacher layer `floor(j * L / num_layers)` for student layer `j`,
            every other layer at half depth, as DistilBERT), `"importance"`
            (the `num_layers` layers with the highest block influence on
            `calibration`, in their order), or a list of teacher layer
            indices.
        num_heads: int, attention heads per layer (query heads; models with
            grouped key/value heads keep theirs). Defaults to the teacher's.
        intermediate_dim: int, the MLP width, in the unit of the backbone's
            own `intermediate_dim` argument. Defaults to the teacher's.
        hidden_dim: int, the hidden width. Defaults to the teacher's.
        calibration: the backbone's inputs (a dict such as `{"token_ids":
            ..., "padding_mask": ...}`), or a list of strings for a task
            model with a preprocessor. Needed for `layers="importance"` and
            for any narrower width; a few hundred sequences are enough.
        name: Optional name of the student backbone (of the task model:
            `name` without `_backbone`).

    Returns:
        A model of the teacher's class: a task model sharing the teacher's
        preprocessor, or a backbone. It saves, loads and trains like any
        keras-hub model.

    Example:

    ```python
    student = keras_distill.cut_student(
        teacher, num_layers=teacher.backbone.num_layers // 2
    )
    ```
    """
    backbone = getattr(teacher, "backbone", teacher)
    blocks = _blocks(backbone)
    config = backbone.get_config()
    keys = _size_keys(backbone, config)
    teacher_heads = config[keys["heads"]]
    sizes = {
        "layers": len(blocks) if num_layers is None else num_layers,
        "heads": teacher_heads if num_heads is None else num_heads,
        "intermediate": config["intermediate_dim"] if intermediate_dim is None else intermediate_dim,
        "hidden": config["hidden_dim"] if hidden_dim is None else hidden_dim,
    }
    _check_sizes(backbone, config, keys, len(blocks), sizes)
    kept_layers = _kept_layers(layers, len(blocks), sizes["layers"], calibration)
    narrower = (sizes["heads"], sizes["intermediate"], sizes["hidden"]) != (
        teacher_heads,
        config["intermediate_dim"],
        config["hidden_dim"],
    )
    if (narrower or isinstance(layers, str) and layers == "importance") and calibration is None:
        raise ValueError(
            "Cutting by importance reads the teacher's activations on a calibration batch. Received: "
            "calibration=None. Pass calibration= the backbone's inputs (or a list of strings for a task "
            "model with a preprocessor), e.g. a few hundred training sequences, or use layers='even' "
            "without narrower widths."
        )
    scores = None if calibration is None else _importance(teacher, backbone, blocks, calibration)
    if scores is not None and isinstance(layers, str) and layers == "importance":
        kept_layers = sorted(np.argsort(-scores["layers"], kind="stable")[: sizes["layers"]].tolist())

    student_config = dict(config)
    student_config.update(
        {"num_layers": sizes["layers"], keys["heads"]: sizes["heads"], "intermediate_dim": sizes["intermediate"]}
    )
    student_config["hidden_dim"] = sizes["hidden"]
    if keys.get("kv_heads"):
        student_config[keys["kv_heads"]] = sizes["heads"]
    if name is not None:
        student_config["name"] = name
    elif "name" in student_config:
        student_config["name"] = f"cut_{config['name']}"
    student_backbone = type(backbone).from_config(student_config)
    student_blocks = _blocks(student_backbone)
    _copy_weights(backbone, blocks, student_backbone, student_blocks, kept_layers, scores, _widths(student_blocks[0]))
    if backbone is teacher:
        return student_backbone
    task_name = name[: -len("_backbone")] if name and name.endswith("_backbone") else f"cut_{teacher.name}"
    return type(teacher)(backbone=student_backbone, preprocessor=teacher.preprocessor, name=task_name)


def _blocks(backbone):
    """The backbone's transformer layers, in order."""
    for prefix in _BLOCK_NAMES:
        found = {}
        for layer in getattr(backbone, "layers", ()):
            match = re.fullmatch(re.escape(prefix) + r"(\d+)", layer.name)
            if match:
                found[int(match.group(1))] = layer
        if found:
            return [found[i] for i in sorted(found)]
    raise ValueError(
        "cut_student cuts keras-hub backbones made of transformer layers named transformer_layer_i "
        f"(GPT-2, Llama, Qwen, Mistral, ...) or decoder_block_i (Gemma). Received: "
        f"{type(backbone).__name__} {getattr(backbone, 'name', '')!r} with layers "
        f"{[layer.name for layer in getattr(backbone, 'layers', ())][:8]}. Pass a keras-hub task model "
        "or backbone, or build a smaller model of your own and distil it."
    )


def _size_keys(backbone, config):
    """The configuration keys of the sizes cut_student changes."""
    heads = "num_query_heads" if "num_query_heads" in config else "num_heads"
    missing = [key for key in ("num_layers", heads, "intermediate_dim", "hidden_dim") if key not in config]
    if missing:
        raise ValueError(
            f"cut_student sets the backbone's num_layers, number of heads, intermediate_dim and hidden_dim. "
            f"Received: {type(backbone).__name__}, whose get_config() has no {missing}. Build a smaller "
            "model of your own and distil it."
        )
    keys = {"heads": heads}
    if "num_key_value_heads" in config:
        keys["kv_heads"] = "num_key_value_heads" if config["num_key_value_heads"] == config[heads] else None
    return keys


def _check_sizes(backbone, config, keys, teacher_layers, sizes):
    limits = {
        "layers": ("num_layers", teacher_layers),
        "heads": ("num_heads", config[keys["heads"]]),
        "intermediate": ("intermediate_dim", config["intermediate_dim"]),
        "hidden": ("hidden_dim", config["hidden_dim"]),
    }
    for kind, (argument, largest) in limits.items():
        value = sizes[kind]
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 1 <= value <= largest:
            raise ValueError(
                f"`{argument}` must be an int from 1 to the teacher's {largest}. Received: {argument}={value!r}. "
                f"A student is cut smaller than its teacher, e.g. {argument}={max(1, largest // 2)}."
            )
    if "kv_heads" in keys and keys["kv_heads"] is None and sizes["heads"] != config[keys["heads"]]:
        raise ValueError(
            f"The teacher's attention groups {config[keys['heads']]} query heads over "
            f"{config['num_key_value_heads']} key/value heads, and cut_student removes whole heads only where "
            f"each query head has its own key and value. Received: num_heads={sizes['heads']}. Keep "
            "num_heads=None, and cut layers, intermediate_dim or hidden_dim."
        )
    derived_head_dim = "head_dim" not in config
    if derived_head_dim and sizes["hidden"] % sizes["heads"]:
        raise ValueError(
            f"{type(backbone).__name__} splits hidden_dim evenly between the heads, so hidden_dim must be a "
            f"multiple of num_heads. Received: hidden_dim={sizes['hidden']}, num_heads={sizes['heads']}. "
            f"Use e.g. hidden_dim={sizes['heads'] * max(1, sizes['hidden'] // sizes['heads'])}."
        )
    teacher_head_dim = config["hidden_dim"] // config[keys["heads"]]
    if derived_head_dim and sizes["hidden"] // sizes["heads"] > teacher_head_dim:
        raise ValueError(
            f"{type(backbone).__name__} splits hidden_dim between the heads, and hidden_dim={sizes['hidden']} "
            f"over num_heads={sizes['heads']} makes heads of {sizes['hidden'] // sizes['heads']} channels, larger "
            f"than the teacher's {teacher_head_dim}: there are no teacher weights to fill them. Cut hidden_dim "
            f"with the heads, e.g. hidden_dim={sizes['heads'] * teacher_head_dim} with num_heads={sizes['heads']}."
        )
    if derived_head_dim and _has_rotary(backbone) and sizes["hidden"] // sizes["heads"] != teacher_head_dim:
        raise ValueError(
            f"{type(backbone).__name__} rotates each head's {teacher_head_dim} channels by position (rotary "
            "embeddings), so a cut must keep the head size hidden_dim / num_heads. Received: "
            f"hidden_dim={sizes['hidden']}, num_heads={sizes['heads']} (head size "
            f"{sizes['hidden'] / sizes['heads']:g}). Cut both in proportion, e.g. "
            f"hidden_dim={max(1, sizes['hidden'] // teacher_head_dim) * teacher_head_dim} with "
            f"num_heads={max(1, sizes['hidden'] // teacher_head_dim)}."
        )


def _has_rotary(backbone):
    return any("Rotary" in type(layer).__name__ for layer in _compat.all_layers(backbone))


def _kept_layers(layers, teacher_layers, count, calibration):
    if isinstance(layers, str):
        if layers not in _LAYER_CHOICES:
            raise ValueError(
                f"`layers` must be 'even', 'importance' or a list of teacher layer indices. Received: "
                f"layers={layers!r}. Use layers='even' (DistilBERT) or layers='importance' (Minitron)."
            )
        return [j * teacher_layers // count for j in range(count)]
    chosen = list(layers)
    if (
        len(chosen) != count
        or len(set(chosen)) != count
        or not all(isinstance(i, (int, np.integer)) and 0 <= i < teacher_layers for i in chosen)
    ):
        raise ValueError(
            f"`layers` as a list names num_layers={count} distinct teacher layers from 0 to "
            f"{teacher_layers - 1}. Received: layers={layers!r}. Use e.g. layers="
            f"{[j * teacher_layers // count for j in range(count)]}."
        )
    return sorted(int(i) for i in chosen)


class _Recorder:
    """Records a layer's inputs and outputs while a copy of the teacher runs
    eagerly (the copy's `call`, never the teacher's, is wrapped)."""

    def __init__(self, layer, keep):
        self.records = []
        call = layer.call

        def recording_call(*args, **kwargs):
            outputs = call(*args, **kwargs)
            first = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
            self.records.append(keep(args[0], first))
            return outputs

        layer.call = recording_call


def _sublayers(block):
    """The attention output projection and the MLP output projection of a
    transformer block: the one 3-D kernel (heads, head_dim, hidden), and the
    2-D kernel (units, hidden) with units other than hidden."""
    attention, mlp = None, None
    for layer in _compat.all_layers(block)[1:]:
        kernel = getattr(layer, "kernel", None)
        if kernel is None or len(_compat.all_layers(layer)) > 1:  # a layer of layers
            continue
        shape = tuple(kernel.shape)
        if len(shape) == 3 and attention is None and re.search(r"output", layer.name):
            attention = layer
        elif len(shape) == 2 and re.search(r"output|linear", layer.name):
            mlp = layer
    if attention is None or mlp is None:
        raise ValueError(
            f"cut_student found no attention output projection or MLP output projection in {block.name!r} "
            f"(sublayers {[layer.name for layer in _compat.all_layers(block)[1:]]}). Use "
            "layers='even' without narrower widths, which copies whole layers."
        )
    return attention, mlp


def _calibration_inputs(teacher, calibration):
    if isinstance(calibration, (list, tuple)) and calibration and isinstance(calibration[0], str):
        preprocessor = getattr(teacher, "preprocessor", None)
        if preprocessor is None:
            raise ValueError(
                "A calibration batch of strings needs the teacher's preprocessor. Received: a teacher "
                "without one. Pass calibration= the backbone's inputs, e.g. {'token_ids': ..., "
                "'padding_mask': ...}."
            )
        return keras.tree.map_structure(ops.convert_to_numpy, preprocessor(list(calibration))[0])
    return calibration


def _importance(teacher, backbone, blocks, calibration):
    """Block influence per layer, head / unit / head-channel norms per layer
    and hidden-channel magnitudes, on the calibration batch (numpy)."""
    inputs = _calibration_inputs(teacher, calibration)
    copy = type(backbone).from_config(backbone.get_config())
    copy.set_weights(backbone.get_weights())
    copy_blocks = _blocks(copy)
    mask = np.asarray(ops.convert_to_numpy(inputs["padding_mask"])).astype(bool)

    def tokens(value):
        return np.asarray(ops.convert_to_numpy(ops.cast(value, "float32")))[mask]

    layer_records, attention_records, mlp_records = [], [], []
    for block in copy_blocks:
        attention, mlp = _sublayers(block)
        layer_records.append(_Recorder(block, lambda x, y: (tokens(x), tokens(y))))
        attention_records.append(_Recorder(attention, lambda x, y: tokens(x)))
        mlp_records.append(_Recorder(mlp, lambda x, y: tokens(x)))
    copy(inputs, training=False)

    scores = {"layers": [], "heads": [], "head_dim": [], "intermediate": []}
    hidden = 0.0
    for layer, attention, mlp in zip(layer_records, attention_records, mlp_records):
        before, after = layer.records[0]
        cosine = np.sum(before * after, -1) / (np.linalg.norm(before, axis=-1) * np.linalg.norm(after, axis=-1) + 1e-12)
        scores["layers"].append(1.0 - float(cosine.mean()))
        context = attention.records[0]  # (tokens, heads, head_dim)
        scores["heads"].append(np.linalg.norm(context, axis=-1).mean(0))
        scores["head_dim"].append(np.abs(context).mean(axis=(0, 1)))
        scores["intermediate"].append(np.abs(mlp.records[0]).mean(0))
        hidden = hidden + np.abs(after).mean(0)
    scores["layers"] = np.asarray(scores["layers"])
    scores["hidden"] = hidden
    return scores


def _widths(block):
    """The widths of a transformer block, read from its projections."""
    attention, mlp = _sublayers(block)
    heads, head_dim, hidden = attention.kernel.shape
    return {"heads": heads, "head_dim": head_dim, "hidden": hidden, "intermediate": mlp.kernel.shape[0]}


def _top(values, count):
    """Indices of the `count` largest values, in increasing order."""
    return np.sort(np.argsort(-np.asarray(values), kind="stable")[:count])


def _copy_weights(teacher, teacher_blocks, student, student_blocks, kept_layers, scores, widths):
    """Every student variable from its teacher variable, sliced along each
    axis the student has narrower, to the teacher's most important indices
    of that axis's kind (told apart by their teacher and student sizes)."""
    in_blocks = {id(v) for block in teacher_blocks for v in block.weights}
    in_student_blocks = {id(v) for block in student_blocks for v in block.weights}
    pairs = [
        (
            None,
            [v for v in teacher.weights if id(v) not in in_blocks],
            [v for v in student.weights if id(v) not in in_student_blocks],
        )
    ]
    for j, i in enumerate(kept_layers):
        pairs.append((i, teacher_blocks[i].weights, student_blocks[j].weights))
    for layer_index, teacher_variables, student_variables in pairs:
        if len(teacher_variables) != len(student_variables):
            raise ValueError(
                f"cut_student expected the cut layer to hold the teacher layer's {len(teacher_variables)} "
                f"variables; it holds {len(student_variables)}. This backbone's layers change structure with "
                "their size: cut layers only (layers='even'), or build the student yourself."
            )
        for source, target in zip(teacher_variables, student_variables):
            value = _sliced(ops.convert_to_numpy(source), tuple(target.shape), layer_index, scores, widths, source)
            target.assign(value)


def _sliced(value, shape, layer_index, scores, widths, source):
    if value.shape == shape:
        return value
    if len(value.shape) != len(shape) or scores is None:
        raise ValueError(
            f"cut_student cannot map the teacher's {source.path} of shape {value.shape} onto the student's "
            f"shape {shape}. Narrower widths need calibration=; this variable's layout is not supported."
        )
    kinds = _axis_kinds(value.shape, shape, layer_index, scores, widths)
    for axis, indices in enumerate(kinds):
        if indices is not None:
            value = np.take(value, indices, axis=axis)
    return value


def _axis_kinds(teacher_shape, student_shape, layer_index, scores, widths):
    """The indices kept along each axis (None where it is not cut), the
    axis's kind told by its teacher and student sizes."""
    candidates = {"hidden": scores["hidden"]}
    if layer_index is not None:
        for kind in ("heads", "head_dim", "intermediate"):
            candidates[kind] = scores[kind][layer_index]
    kinds = [None] * len(teacher_shape)
    for axis, (size, target) in enumerate(zip(teacher_shape, student_shape)):
        if size == target:
            continue
        matches = {
            name: _top(values, target)
            for name, values in candidates.items()
            if len(values) == size and widths[name] == target
        }
        distinct = {tuple(indices) for indices in matches.values()}
        if len(distinct) > 1 and set(matches) == {"head_dim", "hidden"}:
            # One head's channels and the hidden width cut alike (one head
            # per layer): keras-hub's attention kernels put the head's
            # channels right after the heads axis, (hidden, heads, head_dim)
            # and (heads, head_dim, hidden).
            after_heads = axis > 0 and teacher_shape[axis - 1] == len(candidates["heads"])
            matches = {"head_dim": matches["head_dim"]} if after_heads else {"hidden": matches["hidden"]}
            distinct = {tuple(indices) for indices in matches.values()}
        if len(distinct) != 1:
            raise ValueError(
                f"cut_student cannot tell which width an axis of {size} -> {target} units is "
                f"({sorted(matches) or 'none'}). Cut one width at a time, or to sizes that differ."
            )
        kinds[axis] = list(next(iter(matches.values())))
    return kinds
