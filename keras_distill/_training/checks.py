"""Checks of the models and settings handed to a distiller, before training.

One validator per kind of argument. A wrong type is a `TypeError`, a wrong
value a `ValueError`, and every message says what was received and how to
fix it. Plain numbers are checked by `keras_distill._validate`.
"""

import keras

from keras_distill import _compat
from keras_distill._training import ownership
from keras_distill._training import structured
from keras_distill._validate import check_choice
from keras_distill._validate import check_int
from keras_distill._validate import check_number
from keras_distill.losses.soft_targets import SoftTargetKLDivergence

TEACHER_OUTPUTS = ("auto", "logits", "probabilities")


def check_model(model, argument):
    """Raises a `TypeError` unless `model` is a `keras.Model`."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{argument}` must be a keras.Model. Received: {argument}="
            f"{model!r} (of type {type(model).__name__}). Pass a Keras model, "
            "e.g. one built with keras.Sequential or the functional API, or "
            "one loaded with keras.saving.load_model()."
        )


def check_distinct(models, argument):
    """Raises a `ValueError` if the same model object appears twice."""
    seen = {}
    for index, model in enumerate(models):
        if id(model) in seen:
            raise ValueError(
                f"The same model was passed twice in `{argument}`: position "
                f"{seen[id(model)]} and {index} are both {model.name!r}. "
                "Pass distinct models; to distill a model into a copy of "
                "itself, clone it with keras.models.clone_model()."
            )
        seen[id(model)] = index


def check_models(models, argument, *, minimum, needs, example):
    """A list of at least `minimum` distinct `keras.Model`s, for the trainers
    of several models (`MutualLearner`, `AssistantChain`); `needs` says
    what the trainer needs, in the error."""
    if isinstance(models, keras.Model) or not isinstance(models, (list, tuple)) or len(models) < minimum:
        raise ValueError(f"{needs}. Received: {argument}={models!r}. Pass e.g. {argument}={example}.")
    for index, model in enumerate(models):
        check_model(model, f"{argument}[{index}]")
    check_distinct(models, argument)
    return list(models)


def as_teacher_list(teacher):
    """`teacher` as a non-empty list of distinct `keras.Model`s."""
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise ValueError(
            "`teacher` is an empty list. Pass a keras.Model, or a list of them to distill from several teachers."
        )
    for index, model in enumerate(teachers):
        check_model(model, "teacher" if len(teachers) == 1 else f"teacher[{index}]")
    check_distinct(teachers, "teacher")
    return teachers


def final_layer(model):
    """The layer producing a model's single output, or None where it cannot
    be known without running the model (subclassed, several outputs)."""
    if isinstance(model, keras.Sequential):
        return model.layers[-1] if model.layers else None
    outputs = _compat.symbolic_outputs(model)
    if len(outputs) != 1:
        return None
    return _compat.producing_layer(outputs[0])


# Layers that move or keep values without changing them: a softmax before
# them still makes the output probabilities.
_SHAPE_ONLY = ("Reshape", "Flatten", "Permute", "Identity", "Dropout", "Cropping1D", "RepeatVector")


def _previous_layer(layer, model):
    """The layer feeding a single-input `layer` of `model`, or None."""
    if isinstance(model, keras.Sequential):
        index = model.layers.index(layer)
        return model.layers[index - 1] if index > 0 else None
    try:
        return _compat.producing_layer(layer.input)
    except (AttributeError, ValueError):
        return None


def ends_with_softmax(model):
    """Whether the model's output is a softmax (probabilities, not logits),
    possibly followed by layers that only reshape or pass values through."""
    owner, layer = model, final_layer(model)
    while isinstance(layer, keras.Model) or (layer is not None and type(layer).__name__ in _SHAPE_ONLY):
        if isinstance(layer, keras.Model):
            owner, layer = layer, final_layer(layer)
        else:
            layer = _previous_layer(layer, owner)
    if layer is None:
        return False
    if type(layer).__name__ == "Softmax":
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def output_kind(model, teacher_output_kind):
    """`"logits"` or `"probabilities"`: `teacher_output_kind`, or with "auto"
    what the teacher's last layer says (a softmax means probabilities)."""
    check_choice(teacher_output_kind, "teacher_output_kind", TEACHER_OUTPUTS)
    if teacher_output_kind != "auto":
        return teacher_output_kind
    return "probabilities" if ends_with_softmax(model) else "logits"


def check_student(student):
    check_model(student, "student")
    if ends_with_softmax(student):
        raise ValueError(
            f"The student {student.name!r} ends in a softmax, so it outputs "
            "probabilities, but distillation needs its logits. Build the "
            "student's last layer without activation (activation=None), "
            "use from_logits=True in its loss, and add "
            "keras.layers.Softmax() after distillation if you need "
            "probabilities at serving time."
        )


def output_shape(model):
    """The static output shape of a single-output model, or None if unknown."""
    outputs = getattr(model, "outputs", None)
    if not outputs:
        return None
    if len(outputs) != 1:
        raise ValueError(
            f"Model {model.name!r} has {len(outputs)} outputs. Expected one "
            "output of logits of shape (batch, ..., num_classes). Wrap the "
            "model so that it returns only its logits, e.g. "
            "keras.Model(model.input, model.outputs[0])."
        )
    return tuple(outputs[0].shape)


def check_logit_shapes(teacher_shape, student_shape, teacher_name, student_name):
    """Raises a `ValueError` when the two logit shapes cannot be compared."""
    if teacher_shape is None or student_shape is None:
        return
    teacher_shape = tuple(teacher_shape)[1:]
    student_shape = tuple(student_shape)[1:]
    compatible = len(teacher_shape) == len(student_shape) and all(
        t is None or s is None or t == s for t, s in zip(teacher_shape, student_shape)
    )
    if not compatible:
        raise ValueError(
            "Teacher and student outputs must have the same shape. Received: "
            f"teacher {teacher_name!r} outputs (batch, "
            f"{', '.join(map(str, teacher_shape))}) and student "
            f"{student_name!r} outputs (batch, "
            f"{', '.join(map(str, student_shape))}). Give the student the "
            "teacher's number of classes."
            + (
                " For language models with different tokenizers, pass both models' tokens: "
                "Distiller(student=student, teacher=teacher, separate_teacher_inputs=True), compiled with "
                "distillation_loss='uld' (keras_distill.losses.UniversalLogitDistillation)."
                if len(teacher_shape) >= 2 and len(teacher_shape) == len(student_shape)
                else ""
            )
        )
    if student_shape and student_shape[-1] == 1:
        raise ValueError(
            "The models output a single unit per example (shape (batch, 1)): "
            "a softmax over one class is constant, so there is nothing to "
            "distill. For binary classification give both models 2 output "
            "logits and use SparseCategoricalCrossentropy(from_logits=True)."
        )


def check_teacher_shapes(teachers, student_shape, student_name, teacher_classes, teacher_shapes=None):
    """Checks every teacher's output (after `teacher_classes`) against the
    student's. `teacher_shapes` defaults to the models' static shapes."""
    if teacher_shapes is None:
        teacher_shapes = [output_shape(model) for model in teachers]
    for model, shape in zip(teachers, teacher_shapes):
        check_logit_shapes(
            check_teacher_classes(teacher_classes, shape, student_shape, model.name),
            student_shape,
            model.name,
            student_name,
        )


def check_separate_inputs(teachers, teacher_classes, teacher_top_k):
    """A teacher with its own inputs (tokenizer): one teacher, all of whose
    classes (tokens) are distilled."""
    if len(teachers) != 1 or teacher_classes is not None or teacher_top_k is not None:
        raise ValueError(
            "separate_teacher_inputs=True takes one teacher, without `teacher_classes` or `teacher_top_k` "
            f"(their vocabularies differ). Received {len(teachers)} teacher(s), teacher_classes="
            f"{teacher_classes!r}, teacher_top_k={teacher_top_k!r}."
        )


def check_loss_across_vocabularies(loss, given):
    """The distillation loss of a teacher with its own tokenizer must take
    two vocabularies and sequences of different lengths."""
    if not getattr(loss, "accepts_other_vocabularies", False):
        raise ValueError(
            f"distillation_loss={given!r} compares the two models token by token, but with "
            "separate_teacher_inputs=True their vocabularies and sequences differ. Use "
            "distillation_loss='uld' (keras_distill.losses.UniversalLogitDistillation)."
        )


def normalize_teacher_weights(teacher_weights, count):
    """Weights that sum to 1, one per teacher; `None` gives equal weights."""
    if teacher_weights is None:
        return [1.0 / count] * count
    example = [1.0] * count
    if not isinstance(teacher_weights, (list, tuple)) or len(teacher_weights) != count:
        raise ValueError(
            f"`teacher_weights` must be a list of {count} numbers >= 0, one "
            f"per teacher. Received: teacher_weights={teacher_weights!r}. "
            f"Use e.g. teacher_weights={example}."
        )
    weights = [
        check_number(weight, f"teacher_weights[{index}]", example=1.0, at_least=0)
        for index, weight in enumerate(teacher_weights)
    ]
    if sum(weights) <= 0:
        raise ValueError(
            f"`teacher_weights` must have a positive sum. Received: "
            f"teacher_weights={teacher_weights!r}. Use e.g. teacher_weights={example}."
        )
    return [weight / sum(weights) for weight in weights]


def check_teacher_classes(teacher_classes, teacher_shape, student_shape, teacher_name):
    """Validates `teacher_classes` against the two output shapes; returns the
    teacher's output shape after the selection."""
    if teacher_classes is None:
        return teacher_shape
    classes = list(teacher_classes) if isinstance(teacher_classes, (list, tuple)) else None
    if not classes or not all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        raise ValueError(
            "`teacher_classes` must be a non-empty list of class indices of "
            f"the teacher, in the student's class order. Received: "
            f"teacher_classes={teacher_classes!r}. Use e.g. teacher_classes=[3, 5, 7]."
        )
    if len(set(classes)) != len(classes):
        raise ValueError(
            f"`teacher_classes` repeats a class: {classes}. Each student class maps to one distinct teacher class."
        )
    if teacher_shape is not None and teacher_shape[-1] is not None:
        bad = [c for c in classes if not 0 <= c < teacher_shape[-1]]
        if bad:
            raise ValueError(
                f"`teacher_classes` {bad} out of range: teacher {teacher_name!r} "
                f"has {teacher_shape[-1]} classes (indices 0 to "
                f"{teacher_shape[-1] - 1}). Received: teacher_classes={classes}."
            )
    if student_shape is not None and student_shape[-1] not in (None, len(classes)):
        raise ValueError(
            f"`teacher_classes` has {len(classes)} entries but the student "
            f"outputs {student_shape[-1]} classes. Give one teacher class "
            "index per student class, in the student's order."
        )
    if teacher_shape is None:
        return None
    return tuple(teacher_shape[:-1]) + (len(classes),)


def check_top_k(
    top_k,
    *,
    argument="teacher_top_k",
    teacher_count=1,
    teacher_classes=None,
    classes=None,
    loss=None,
    standardize=False,
):
    """The one check of top-k teacher outputs: an int k between 1 and the
    number of classes (where known), one teacher over the student's own
    classes, distilled with the KL divergence (the only loss that takes
    top-k targets; `loss` is the compiled one, or None before `compile`),
    without logit standardization (which needs every logit)."""
    if top_k is None:
        return None
    top_k = check_int(
        top_k,
        argument,
        example=64,
        at_least=1,
        at_most=classes,
        note=f"It must be between 1 and the number of classes ({classes}); None keeps the dense outputs.",
    )
    if teacher_count > 1 or teacher_classes is not None:
        raise ValueError(
            f"`{argument}` works with one teacher over the student's own "
            f"classes. Received {teacher_count} teacher(s) and teacher_classes="
            f"{teacher_classes!r}. Drop {argument}, or distill from one teacher."
        )
    if loss is not None and not isinstance(loss, SoftTargetKLDivergence):
        raise ValueError(
            f"Top-k teacher outputs are distilled with the top-k KL divergence "
            f"only. Received: distillation_loss={type(loss).__name__}. Compile "
            "with distillation_loss='kl', or use dense teacher outputs "
            "(teacher_top_k=None, or a cache without top_k) for other losses."
        )
    if standardize:
        raise ValueError(
            "standardize_logits=True needs every teacher logit, but the teacher "
            f"outputs are its top {top_k} classes only. Compile with "
            "standardize_logits=False, or use dense teacher outputs."
        )
    return top_k


def normalize_pairs(pairs):
    """`pairs` as a list of `(teacher_spec, student_spec)`, each spec a layer
    name or a tuple of names."""
    if isinstance(pairs, (tuple, list)) and len(pairs) == 2 and all(isinstance(side, str) for side in pairs):
        pairs = [pairs]
    if not isinstance(pairs, (tuple, list)) or not pairs:
        raise ValueError(
            "`pairs` must be a non-empty list of (teacher_layer, "
            f"student_layer) pairs. Received: pairs={pairs!r}. Use e.g. "
            "pairs=[('teacher_block2', 'student_block2')]."
        )
    normalized = []
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                "Each entry of `pairs` must be a (teacher_layer, "
                f"student_layer) pair. Received: {pair!r} in pairs={pairs!r}."
            )
        normalized.append(tuple(_layer_spec(side, pair) for side in pair))
    return normalized


def _layer_spec(side, pair):
    if isinstance(side, str):
        return side
    if isinstance(side, (tuple, list)) and side and all(isinstance(name, str) for name in side):
        return tuple(side)
    raise ValueError(
        f"Each side of a pair must be a layer name or a tuple of layer names. Received: {side!r} in the pair {pair!r}."
    )


def normalize_pair_weights(pair_weights, count):
    """One float >= 0 per pair; `None` gives `1 / count` each."""
    if pair_weights is None:
        return [1.0 / count] * count
    if not isinstance(pair_weights, (list, tuple)):
        pair_weights = [pair_weights]
    if len(pair_weights) != count:
        raise ValueError(
            f"`pair_weights` must be {count} number(s) >= 0, one per pair. "
            f"Received: pair_weights={list(pair_weights)!r}."
        )
    return [
        check_number(weight, f"pair_weights[{index}]", example=1.0, at_least=0)
        for index, weight in enumerate(pair_weights)
    ]


def check_distiller_models(
    owner,
    student,
    teacher,
    teacher_output_kind,
    teacher_weights,
    teacher_classes,
    teacher_top_k,
    separate_teacher_inputs,
    *,
    takes_separate_teacher_inputs,
    structured_outputs=False,
):
    """Every check of a distiller's models and teacher options, before it is
    built. Returns `(teachers, kinds, weights, structure)`: the teachers as
    a list, what each returns, their normalized weights, and the structure
    of the student's outputs (None for one tensor; a dict or list of
    outputs where `structured_outputs` allows it)."""
    check_student(student)
    teachers = as_teacher_list(teacher)
    if any(student is model for model in teachers):
        raise ValueError(
            f"The same model {student.name!r} was passed as both `student` "
            "and `teacher`. Pass two models; to distill a model into a "
            "fresh copy of itself, use "
            "keras.models.clone_model(teacher) as the student."
        )
    ownership.check_not_shared(student, teachers)
    kinds = [output_kind(model, teacher_output_kind) for model in teachers]
    structure = structured.check_models(
        student,
        teachers,
        owner,
        allowed=structured_outputs,
        teacher_classes=teacher_classes,
        teacher_top_k=teacher_top_k,
        separate_teacher_inputs=separate_teacher_inputs,
    )
    if structure is not None or (
        not structured.has_static_outputs(student) and any(structured.of_model(model) for model in teachers)
    ):
        # Several outputs: checked per output (a subclassed student's once
        # its outputs are seen, before the first step).
        return teachers, kinds, normalize_teacher_weights(teacher_weights, len(teachers)), structure
    student_shape = output_shape(student)
    if not isinstance(separate_teacher_inputs, bool):
        raise TypeError(
            "`separate_teacher_inputs` must be True or False. Received: "
            f"separate_teacher_inputs={separate_teacher_inputs!r}."
        )
    if separate_teacher_inputs and not takes_separate_teacher_inputs:
        raise ValueError(
            f"{owner} feeds the teacher and the student the same inputs. Distill a teacher "
            "with its own tokenizer with keras_distill.Distiller(student=student, teacher=teacher, "
            "separate_teacher_inputs=True)."
        )
    if separate_teacher_inputs:
        check_separate_inputs(teachers, teacher_classes, teacher_top_k)
    else:
        check_teacher_shapes(teachers, student_shape, student.name, teacher_classes)
    weights = normalize_teacher_weights(teacher_weights, len(teachers))
    check_top_k(
        teacher_top_k,
        teacher_count=len(teachers),
        teacher_classes=teacher_classes,
        classes=None if student_shape is None else student_shape[-1],
    )
    return teachers, kinds, weights, None


REPORTED = ("loss", "student_loss", "distillation_loss")


def check_metrics(metrics, owner):
    """Refuses metric names that are the distiller's own losses: Keras
    accepts them at compile and fails on them in the first step."""
    for metric in keras.tree.flatten(metrics) if metrics is not None else []:
        if isinstance(metric, str) and metric in REPORTED:
            raise ValueError(
                f"metrics=[{metric!r}, ...]: {owner} reports `loss`, `student_loss` and `distillation_loss` "
                f"itself, and {metric!r} is not a metric Keras can build. Remove it from `metrics`; the values "
                "appear in the History and in evaluate()."
            )


def check_model_keywords(owner, positional, student, teacher, **required):
    """Raises a `TypeError` unless the models came by keyword (the two
    libraries a user may come from order them differently) and every
    argument in `required` was given."""
    if positional:
        raise TypeError(
            f"{owner} takes its models by keyword: {owner}(student=..., teacher=...). Received "
            f"{len(positional)} positional argument(s). keras.distillation.Distiller takes (teacher, student) "
            "and the keras.io tutorial's Distiller (student, teacher): by position, one of the two orders would "
            "silently train the teacher."
        )
    missing = [name for name, value in (("student", student), ("teacher", teacher)) if value is None]
    if missing:
        raise TypeError(
            f"{owner} needs both models. Missing: {', '.join(missing)}. Pass {owner}(student=..., teacher=...)."
        )
    missing = [name for name, value in required.items() if value is None]
    if missing:
        raise TypeError(f"{owner} needs {', '.join(f'`{name}`' for name in missing)}. See help({owner}).")
