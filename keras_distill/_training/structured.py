"""Students and teachers whose outputs are a dict (or a list) of tensors.

`compile` takes, in Keras' own convention, a loss per output (`loss`,
`loss_weights`) and a distillation loss per output (`distillation_loss`,
`distillation_loss_weights`); the step's response loss is

    alpha * sum_o loss_weights[o] * loss[o](y[o], student[o])
    + (1 - alpha) * sum_o distillation_loss_weights[o] * D_o(teacher[o], student[o])

over the outputs named in each. Outputs are named by their dict keys, or
for a list by the functional model's `output_names` (or their position).
"""

import collections

import keras
from keras import ops

from keras_distill import _compat
from keras_distill._training import loss_specs
from keras_distill._training import step
from keras_distill._validate import check_number

#: `kind` is "dict" or "list"; `names` the outputs' names, in order.
Structure = collections.namedtuple("Structure", ["kind", "names"])


def of_value(outputs, names=None):
    """The structure of a model's outputs (symbolic or computed), or None for
    one tensor. `names` names a list's outputs (else their positions)."""
    if isinstance(outputs, dict):
        return Structure("dict", tuple(outputs))
    if isinstance(outputs, (list, tuple)) and len(outputs) > 1:
        names = tuple(names) if names is not None and len(names) == len(outputs) else None
        return Structure("list", names or tuple(str(index) for index in range(len(outputs))))
    return None


def of_model(model):
    """The structure of a model's outputs where it is known without running
    it (functional models), else None."""
    try:
        outputs = model.output
    except (AttributeError, ValueError):
        return None
    return of_value(outputs, getattr(model, "output_names", None))


def has_static_outputs(model):
    """Whether a model's outputs are known without running it."""
    if _compat.symbolic_outputs(model):
        return True
    return of_model(model) is not None


def named(values, structure):
    """`values` (the model's dict or list) as a dict by output name."""
    if isinstance(values, dict):
        return {name: values[name] for name in structure.names if name in values}
    return dict(zip(structure.names, values))


def output_tensor(model, name, structure):
    """The symbolic tensor of output `name`, or None if unknown."""
    try:
        outputs = model.output
    except (AttributeError, ValueError):
        return None
    return named(outputs, structure).get(name)


def ends_with_softmax(model, name, structure):
    tensor = output_tensor(model, name, structure)
    if tensor is None:
        return False
    layer = _compat.producing_layer(tensor)
    if type(layer).__name__ == "Softmax":
        return True
    return getattr(getattr(layer, "activation", None), "__name__", None) == "softmax"


def check_same_structure(student_structure, teacher_structure, student, teacher):
    if student_structure == teacher_structure:
        return

    def describe(structure):
        return "a single tensor" if structure is None else _describe(structure)

    raise ValueError(
        "The teacher's outputs must have the student's structure, so that each student output is distilled "
        f"from the teacher output of the same name. Received: student {student.name!r} returns "
        f"{describe(student_structure)} and teacher {teacher.name!r} {describe(teacher_structure)}. Give both "
        "models the same output names (a dict with the same keys, or lists of the same length), e.g. by "
        "wrapping the teacher: keras.Model(teacher.input, {name: teacher.output[...] for name in ...})."
    )


def _describe(structure):
    return f"a {structure.kind} of outputs {list(structure.names)}"


def check_models(student, teacher_list, owner, *, allowed, teacher_classes, teacher_top_k, separate_teacher_inputs):
    """The structure of the student's outputs (None for one tensor), checked
    against the teachers' and the options that need one output."""
    structure = of_model(student)
    # Several teachers take one output (refused below for a structured student).
    teacher_structure = of_model(teacher_list[0]) if len(teacher_list) == 1 else None
    if structure is None:
        if teacher_structure is not None and has_static_outputs(student):
            check_same_structure(None, teacher_structure, student, teacher_list[0])
        return None
    check_structure_allowed(
        structure, owner, allowed, len(teacher_list), teacher_classes, teacher_top_k, separate_teacher_inputs
    )
    teacher = teacher_list[0]
    if teacher_structure is not None:
        check_same_structure(structure, teacher_structure, student, teacher)
        check_shapes(structure, student, teacher, named(student.output, structure), named(teacher.output, structure))
    return structure


def check_structure_allowed(
    structure, owner, allowed, teacher_count, teacher_classes, teacher_top_k, separate_teacher_inputs
):
    if not allowed:
        raise ValueError(
            f"{owner} distills a model with one output; the student returns {_describe(structure)}. Use "
            "keras_distill.Distiller, which takes a loss per output, or wrap the model so that it returns "
            "the one output to distill."
        )
    options = {
        "teacher": f"{teacher_count} teachers" if teacher_count > 1 else None,
        "teacher_classes": teacher_classes,
        "teacher_top_k": teacher_top_k,
        "separate_teacher_inputs": separate_teacher_inputs or None,
    }
    given = {key: value for key, value in options.items() if value is not None}
    if given:
        raise ValueError(
            f"A student with several outputs ({_describe(structure)}) is distilled from one teacher of the "
            f"same outputs, without teacher_classes, teacher_top_k or separate_teacher_inputs. Received: "
            + ", ".join(f"{key}={value!r}" for key, value in given.items())
            + ". Drop them, or distill a model with one output."
        )


def check_shapes(structure, student, teacher, student_outputs, teacher_outputs):
    for name in structure.names:
        student_shape = tuple(student_outputs[name].shape)[1:]
        teacher_shape = tuple(teacher_outputs[name].shape)[1:]
        compatible = len(student_shape) == len(teacher_shape) and all(
            s is None or t is None or s == t for s, t in zip(student_shape, teacher_shape)
        )
        if not compatible:
            raise ValueError(
                f"Output {name!r} has shape (batch, {', '.join(map(str, student_shape))}) in the student "
                f"{student.name!r} and (batch, {', '.join(map(str, teacher_shape))}) in the teacher "
                f"{teacher.name!r}. Each output must have the same shape in both models."
            )


class OutputPlan:
    """The losses of each output, resolved by `compile`.

    Args:
        hard: `{name: (loss, weight)}`, the outputs trained on labels.
        distill: `{name: (loss, weight)}`, the outputs distilled.
        kinds: `{name: "logits" | "probabilities"}`, what the teacher returns.
    """

    needs_labels = False

    def __init__(self, hard, distill):
        self.hard = hard
        self.distill = distill
        self.kinds = {}
        self.structure = None

    def bind(self, structure, student, teacher, teacher_output_kind):
        """Checks the plan's names against the models' outputs, once known."""
        from keras_distill._training.compile_config import REGRESSION_LOSSES

        for argument, losses in (("loss", self.hard), ("distillation_loss", self.distill)):
            unknown = [name for name in losses if name not in structure.names]
            if unknown:
                raise ValueError(
                    f"`{argument}` names outputs the models do not have: {unknown}. The student "
                    f"{student.name!r} returns {_describe(structure)}. Key {argument} by those names."
                )
        for name, (loss, _) in self.distill.items():
            softmax = not _all_regression(loss, REGRESSION_LOSSES)
            if softmax and ends_with_softmax(student, name, structure):
                raise ValueError(
                    f"The student's output {name!r} ends in a softmax, so it outputs probabilities, but "
                    "distillation needs its logits. Build that output's layer without activation and add "
                    "keras.layers.Softmax() after distillation if you need probabilities."
                )
            tensor = output_tensor(student, name, structure)
            if softmax and tensor is not None and tensor.shape[-1] == 1:
                raise ValueError(
                    f"Output {name!r} has one unit, and a softmax over one unit is constant: "
                    f"distillation_loss[{name!r}]={type(loss).__name__} would distill nothing. Use a regression "
                    f"loss for it, e.g. distillation_loss={{{name!r}: keras.losses.MeanSquaredError()}}, or give "
                    "it 2 logits."
                )
            if teacher_output_kind != "auto":
                self.kinds[name] = teacher_output_kind
            else:
                self.kinds[name] = "probabilities" if ends_with_softmax(teacher, name, structure) else "logits"
        self.structure = structure

    def labels(self, labels):
        if labels is None:
            return {}
        if isinstance(labels, dict):
            return labels
        if isinstance(labels, (list, tuple)) and len(labels) == len(self.structure.names):
            return dict(zip(self.structure.names, labels))
        raise ValueError(
            f"The labels of a model with several outputs are a dict by output name. Received labels of type "
            f"{type(labels).__name__} for outputs {list(self.structure.names)}. Pass y={{name: labels, ...}} "
            f"for the outputs trained on labels ({sorted(self.hard)})."
        )

    def response_losses(self, labels, teacher_outputs, student_outputs, x, sample_weight, standardize):
        """`(hard, distillation)`: the two weighted sums over the outputs."""
        labels = self.labels(labels)
        teacher_outputs = named(teacher_outputs, self.structure)
        student_outputs = named(student_outputs, self.structure)
        hard = ops.zeros((), "float32")
        distillation = ops.zeros((), "float32")
        for name in self.structure.names:
            student_output = student_outputs[name]
            weights, _ = step.token_weights(x, student_output, sample_weight)
            if name in self.hard:
                loss, weight = self.hard[name]
                hard = hard + weight * ops.cast(loss(labels[name], student_output, sample_weight=weights), "float32")
            if name in self.distill:
                loss, weight = self.distill[name]
                target = ops.stop_gradient(step.as_logits(teacher_outputs[name], self.kinds[name]))
                student_value = student_output
                if standardize:
                    from keras_distill.losses.standardization import standardize_logits

                    target, student_value = standardize_logits(target), standardize_logits(student_value)
                if getattr(loss, "needs_labels", False):
                    target = (target, labels[name])
                value = loss(target, student_value, sample_weight=weights)
                distillation = distillation + weight * ops.cast(value, "float32")
        return hard, distillation


def _all_regression(loss, regression):
    members = getattr(loss, "losses", [loss])
    return all(isinstance(member, regression) for member in members)


def resolve(structure, loss, loss_weights, distillation_loss, distillation_loss_weights, alpha, build_hard, build):
    """An `OutputPlan` from compile's arguments for a structured model.

    `structure` is the outputs' structure when known (else the names are
    checked at `bind`); `build_hard(loss)` resolves one hard-label loss,
    `build(resolved)` one distillation loss (reading the distiller's
    temperature)."""
    names = None if structure is None else structure.names
    positional = names if structure is not None and structure.kind == "list" else None
    hard_losses = _per_output(
        "loss", loss, names, positional, "keras.losses.SparseCategoricalCrossentropy(from_logits=True)"
    )
    if hard_losses is None:
        hard_losses = {}
    if not hard_losses and alpha > 0:
        raise ValueError(
            f"compile() got no `loss` for any output with alpha={alpha}. Pass loss={{name: loss, ...}} for the "
            "outputs trained on labels, or alpha=0.0 to train on the teacher's outputs alone."
        )
    hard_weights = _weights("loss_weights", loss_weights, positional, hard_losses)
    distill = _per_output("distillation_loss", distillation_loss, names, positional, "'kl'")
    if not distill:
        raise ValueError(
            "A model with several outputs needs its distillation losses by output name: "
            "compile(distillation_loss={name: loss, ...}), e.g. distillation_loss={'class': 'kl', "
            f"'box': keras.losses.MeanSquaredError()}}. Received: distillation_loss={distillation_loss!r}. "
            "Outputs not named train on their labels only."
        )
    distill_weights = distillation_loss_weights or {}
    if not isinstance(distill_weights, dict):
        raise ValueError(
            "With distillation losses by output name, `distillation_loss_weights` is a dict by the same names "
            f"(a number, or a list for a list of losses). Received: distillation_loss_weights={distill_weights!r}."
        )
    unknown = sorted(set(distill_weights) - set(distill))
    if unknown:
        raise ValueError(
            f"`distillation_loss_weights` names {unknown}, which have no distillation loss. Received: "
            f"distillation_loss={sorted(distill)!r}. Name the same outputs in both."
        )
    plan_hard = {name: (build_hard(value), hard_weights[name]) for name, value in hard_losses.items()}
    plan_distill = {}
    for name, spec in distill.items():
        weight = distill_weights.get(name)
        if isinstance(weight, (list, tuple)) or isinstance(spec, (list, tuple)):
            inner = weight if isinstance(weight, (list, tuple)) else None
            outer = 1.0 if inner is not None or weight is None else _weight(weight, name)
            specs = spec if isinstance(spec, (list, tuple)) else [spec]
            plan_distill[name] = (build(loss_specs.resolve(list(specs), inner)), outer)
        else:
            outer = 1.0 if weight is None else _weight(weight, name)
            plan_distill[name] = (build(loss_specs.resolve(spec, None)), outer)
    return OutputPlan(plan_hard, plan_distill)


def _per_output(argument, value, names, positional, example):
    """`{name: value}` from a dict (or, for a list of outputs named
    `positional`, a list by position); names are checked at `bind`."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and positional is not None and len(value) == len(positional):
        value = dict(zip(positional, value))
    if not isinstance(value, dict):
        raise ValueError(
            f"The models have several outputs{'' if names is None else ' ' + str(list(names))}: `{argument}` "
            f"is given per output, a dict by output name. Received: {argument}={value!r}. Use e.g. "
            f"{argument}={{{(names or ['name'])[0]!r}: {example}}}."
        )
    if positional is not None:
        value = {(positional[key] if isinstance(key, int) else key): item for key, item in value.items()}
    return {name: item for name, item in value.items() if item is not None}


def _weights(argument, weights, positional, losses):
    if weights is None:
        return {name: 1.0 for name in losses}
    if isinstance(weights, (list, tuple)) and positional is not None and len(weights) == len(positional):
        weights = dict(zip(positional, weights))
    if not isinstance(weights, dict):
        raise ValueError(
            f"`{argument}` is a dict by output name (or a list, one per output). Received: {argument}={weights!r}."
        )
    unknown = sorted(set(weights) - set(losses))
    if unknown:
        raise ValueError(
            f"`{argument}` names {unknown}, which have no `loss`. Received loss for {sorted(losses)}. Name the same "
            "outputs in both."
        )
    return {name: _weight(weights.get(name, 1.0), name, argument) for name in losses}


def _weight(value, name, argument="distillation_loss_weights"):
    return check_number(value, f"{argument}[{name!r}]", example=1.0, at_least=0.0)


def is_structured_argument(value):
    return isinstance(value, dict) and not ("class_name" in value and "config" in value)


def metric_labels(labels, structure, outputs):
    """Labels for Keras' metrics, in the structure of the outputs; an output
    without labels (distilled only) gets zeros, which no metric reads."""
    if not isinstance(labels, dict):
        return labels
    outputs = named(outputs, structure)
    filled = {name: labels[name] if name in labels else ops.zeros_like(outputs[name]) for name in structure.names}
    return filled if structure.kind == "dict" else [filled[name] for name in structure.names]


def first_example(x):
    return keras.tree.map_structure(lambda array: array[:1], x)
