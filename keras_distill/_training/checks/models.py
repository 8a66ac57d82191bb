"""Checks of the models handed to a distiller, when it is constructed.

One function per question: is it a Keras model, does it output logits, are
the teacher's outputs the student's (structure and shapes: one comparison,
`check_same_shape`), are the teacher options consistent. A wrong type is a
`TypeError`, a wrong value a `ValueError`, and every message says what was
received and how to fix it.
"""

import keras
import numpy as np

from keras_distill import _compat
from keras_distill._training import outputs
from keras_distill._training import step
from keras_distill._training.checks.arguments import REGRESSION_LOSSES
from keras_distill._validate import check_choice
from keras_distill._validate import check_int
from keras_distill._validate import check_number

TEACHER_OUTPUTS = ("auto", "logits", "probabilities")


def check_keras_model(model, argument):
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


def check_model_list(models, argument, *, minimum, needs, example):
    """A list of at least `minimum` distinct `keras.Model`s returning logits
    of one shape, for the trainers of several models (`MutualLearner`,
    `AssistantChain`); `needs` says what the trainer needs, in the error."""
    if isinstance(models, keras.Model) or not isinstance(models, (list, tuple)) or len(models) < minimum:
        raise ValueError(f"{needs}. Received: {argument}={models!r}. Pass e.g. {argument}={example}.")
    for index, model in enumerate(models):
        check_keras_model(model, f"{argument}[{index}]")
    check_distinct(models, argument)
    shapes = [output_shape(model) for model in models]
    for model, shape in zip(models[1:], shapes[1:]):
        check_same_shape(shape, shapes[0], model.name, models[0].name)
    return list(models)


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


def refuse_constructor_arguments(owner, kwargs):
    """A `TypeError` for keras.distillation.Distiller's constructor
    arguments, which go to `compile` here."""
    moved = {
        "distillation_losses": "compile(distillation_loss=...)",
        "distillation_loss_weights": "compile(distillation_loss_weights=...)",
        "student_loss_weight": "compile(alpha=...) (or its alias compile(student_loss_weight=...))",
    }
    if "teacher_outputs" in kwargs:
        raise TypeError(
            f"{owner}() takes no `teacher_outputs`: it was renamed `teacher_output_kind`. Received: "
            f"teacher_outputs={kwargs['teacher_outputs']!r}. Use teacher_output_kind={kwargs['teacher_outputs']!r}."
        )
    given = [name for name in moved if name in kwargs]
    if given:
        raise TypeError(
            f"{owner}() takes no {', '.join(f'`{name}`' for name in given)}: keras.distillation.Distiller's "
            f"constructor arguments go to compile() in keras_distill. Received: "
            + ", ".join(f"{name}={kwargs[name]!r}" for name in given)
            + ". Use "
            + "; ".join(f"{name} -> {moved[name]}" for name in given)
            + "."
        )


def as_teacher_list(teacher):
    """`teacher` as a non-empty list of distinct `keras.Model`s."""
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise ValueError(
            "`teacher` is an empty list. Pass a keras.Model, or a list of them to distill from several teachers."
        )
    for index, model in enumerate(teachers):
        check_keras_model(model, "teacher" if len(teachers) == 1 else f"teacher[{index}]")
    check_distinct(teachers, "teacher")
    return teachers


# Layers that move or keep values without changing them: a softmax before
# them still makes the output probabilities.
_SHAPE_ONLY = ("Reshape", "Flatten", "Permute", "Identity", "Dropout", "Cropping1D", "RepeatVector")


def _final_layer(model, name=None):
    """The layer producing a model's output `name` (None: its one output),
    or None where it cannot be known without running the model."""
    if name is None and isinstance(model, keras.Sequential):
        return model.layers[-1] if model.layers else None
    if name is not None:
        structure = outputs.of_model(model)
        tensor = None if structure is None else outputs.output_tensor(model, name, structure)
        return None if tensor is None else _compat.producing_layer(tensor)
    symbolic = _compat.symbolic_outputs(model)
    return _compat.producing_layer(symbolic[0]) if len(symbolic) == 1 else None


def _previous_layer(layer, model):
    """The layer feeding a single-input `layer` of `model`, or None."""
    if isinstance(model, keras.Sequential):
        index = model.layers.index(layer)
        return model.layers[index - 1] if index > 0 else None
    try:
        return _compat.producing_layer(layer.input)
    except (AttributeError, ValueError):
        return None


def ends_with_softmax(model, name=None):
    """Whether the model's output `name` (None: its one output) is a softmax
    (probabilities, not logits), possibly followed by layers that only
    reshape or pass values through."""
    owner, layer = model, _final_layer(model, name)
    while isinstance(layer, keras.Model) or (layer is not None and type(layer).__name__ in _SHAPE_ONLY):
        if isinstance(layer, keras.Model):
            owner, layer = layer, _final_layer(layer)
        else:
            layer = _previous_layer(layer, owner)
    if layer is None:
        return False
    if type(layer).__name__ == "Softmax":
        return True
    activation = getattr(layer, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


def output_kind(model, teacher_output_kind, name=None):
    """`"logits"` or `"probabilities"`: `teacher_output_kind`, or with "auto"
    what the layer of the teacher's output `name` says (a softmax means
    probabilities)."""
    check_choice(teacher_output_kind, "teacher_output_kind", TEACHER_OUTPUTS)
    if teacher_output_kind != "auto":
        return teacher_output_kind
    return "probabilities" if ends_with_softmax(model, name) else "logits"


def check_unread_probabilities(teacher, output):
    """A subclassed teacher, whose last layer `teacher_output_kind="auto"`
    cannot read, must not return what looks like probabilities (every row
    of its output on an example in [0, 1], summing to 1): it would be
    distilled as logits without a word."""
    if outputs.of_model(teacher) is not None:
        return
    values = np.asarray(keras.ops.convert_to_numpy(output), dtype="float64")
    if values.size == 0 or not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        return
    if np.allclose(values.sum(axis=-1), 1.0, atol=1e-3):
        raise ValueError(
            f"The teacher {teacher.name!r} is a subclassed model, so teacher_output_kind='auto' cannot read its "
            "last layer, and on an example its outputs look like probabilities (in [0, 1], each row summing "
            "to 1). Say what it returns: teacher_output_kind='probabilities' (they are turned back into logits), "
            "or teacher_output_kind='logits' if they are logits."
        )


def check_student(student):
    check_keras_model(student, "student")
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
    symbolic = getattr(model, "outputs", None)
    if not symbolic:
        return None
    if len(symbolic) != 1:
        raise ValueError(
            f"Model {model.name!r} has {len(symbolic)} outputs. Expected one "
            "output of logits of shape (batch, ..., num_classes). Wrap the "
            "model so that it returns only its logits, e.g. "
            "keras.Model(model.input, model.outputs[0])."
        )
    return tuple(symbolic[0].shape)


def check_same_shape(student_shape, teacher_shape, student_name, teacher_name, *, output=None):
    """The one comparison of a student's output shape with its teacher's
    (after `teacher_classes`), or with another peer's. Unknown sizes (None)
    match any size."""
    if teacher_shape is None or student_shape is None:
        return
    teacher_shape, student_shape = tuple(teacher_shape)[1:], tuple(student_shape)[1:]
    compatible = len(teacher_shape) == len(student_shape) and all(
        t is None or s is None or t == s for t, s in zip(teacher_shape, student_shape)
    )
    if compatible:
        return
    if output is not None:
        raise ValueError(
            f"Output {output!r} has shape (batch, {', '.join(map(str, student_shape))}) in the student "
            f"{student_name!r} and (batch, {', '.join(map(str, teacher_shape))}) in the teacher {teacher_name!r}. "
            "Teacher and student outputs must have the same shape, output by output."
        )
    fix = "Give the student the teacher's number of classes."
    if len(teacher_shape) >= 2 and len(teacher_shape) == len(student_shape):
        fix += (
            " For language models with different tokenizers, pass both models' tokens: "
            "Distiller(student=student, teacher=teacher, separate_teacher_inputs=True), compiled with "
            "distillation_loss='uld' (keras_distill.losses.UniversalLogitDistillation)."
        )
    raise ValueError(
        f"Teacher and student outputs must have the same shape. Received: teacher {teacher_name!r} outputs "
        f"(batch, {', '.join(map(str, teacher_shape))}) and student {student_name!r} outputs "
        f"(batch, {', '.join(map(str, student_shape))}). {fix}"
    )


def check_distilled_output(student, name, structure, loss):
    """A named output distilled with a loss on softened distributions must
    give logits of at least two classes (a regression loss takes any
    values). A single output is checked at construction."""
    members = getattr(loss, "losses", [loss])
    if all(isinstance(member, REGRESSION_LOSSES) for member in members):
        return
    if ends_with_softmax(student, name):
        raise ValueError(
            f"The student's output {name!r} ends in a softmax, so it outputs probabilities, but distillation "
            "needs its logits. Build that output's layer without activation and add keras.layers.Softmax() "
            "after distillation if you need probabilities."
        )
    tensor = outputs.output_tensor(student, name, structure)
    if tensor is not None and len(tensor.shape) > 1 and tensor.shape[-1] == 1:
        raise ValueError(
            f"Output {name!r} has one unit, and a softmax over one unit is constant: "
            f"distillation_loss[{name!r}]={type(loss).__name__} would distill nothing. Use a regression "
            f"loss for it, e.g. distillation_loss={{{name!r}: keras.losses.MeanSquaredError()}}, or give "
            "it 2 logits."
        )


def check_same_structure(student_structure, teacher_structure, student, teacher):
    if student_structure == teacher_structure:
        return
    fix = (
        "Give both models the same output names (a dict with the same keys, or lists of the same length), e.g. "
        "by wrapping the teacher: keras.Model(teacher.input, {name: teacher.output[...] for name in ...})."
    )
    if teacher_structure == step.SINGLE:
        fix = (
            "A teacher of one tensor cannot say which of the student's outputs it predicts. Wrap the teacher so "
            "that it returns the student's output names, e.g. keras.Model(teacher.input, {'name': "
            "teacher.output}), and compile with distillation_loss={'name': ...} for the outputs it predicts."
        )
    raise ValueError(
        "The teacher's outputs must have the student's structure, so that each student output is distilled "
        f"from the teacher output of the same name. Received: student {student.name!r} returns "
        f"{outputs.describe(student_structure)} and teacher {teacher.name!r} "
        f"{outputs.describe(teacher_structure)}. {fix}"
    )


def check_structure_allowed(structure, owner, allowed, options):
    """A student with several outputs: a distiller that takes them, without
    the constructor's settings that need one output (`options`)."""
    if structure in (None, step.SINGLE):
        return
    if not allowed:
        raise ValueError(
            f"{owner} distills a model with one output; the student returns {outputs.describe(structure)}. Use "
            "keras_distill.Distiller, which takes a loss per output, or wrap the model so that it returns the "
            "one output to distill."
        )
    given = {key: value for key, value in options.items() if value is not None}
    if given:
        raise ValueError(
            f"A student with several outputs ({outputs.describe(structure)}) is distilled from one teacher of the "
            "same outputs, without teacher_classes, teacher_top_k or separate_teacher_inputs. Received: "
            + ", ".join(f"{key}={value!r}" for key, value in given.items())
            + ". Drop them, or distill a model with one output."
        )


def check_outputs(student, teacher, student_outputs, teacher_outputs):
    """The teacher's outputs (symbolic, or computed on one example) against
    the student's: the same structure, and each of several outputs the same
    shape (one output is compared by `check_teacher_shapes`, which knows
    `teacher_classes`). Returns the structure."""
    structure = step.of_value(student_outputs, getattr(student, "output_names", None))
    teacher_structure = step.of_value(teacher_outputs, getattr(teacher, "output_names", None))
    check_same_structure(structure, teacher_structure, student, teacher)
    if structure != step.SINGLE:
        student_named = step.named(student_outputs, structure)
        teacher_named = step.named(teacher_outputs, structure)
        for name in structure.names:
            check_same_shape(
                student_named[name].shape, teacher_named[name].shape, student.name, teacher.name, output=name
            )
    return structure


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


def check_teacher_shapes(teachers, student_shape, student_name, teacher_classes, teacher_shapes=None):
    """Every teacher's output (after `teacher_classes`) against the
    student's. `teacher_shapes` defaults to the models' static shapes."""
    if teacher_shapes is None:
        teacher_shapes = [output_shape(model) for model in teachers]
    for model, shape in zip(teachers, teacher_shapes):
        shape = check_teacher_classes(teacher_classes, shape, student_shape, model.name)
        check_same_shape(student_shape, shape, student_name, model.name)
    if student_shape is not None and len(student_shape) > 1 and student_shape[-1] == 1:
        raise ValueError(
            "The models output a single unit per example (shape (batch, 1)): "
            "a softmax over one class is constant, so there is nothing to "
            "distill. For binary classification give both models 2 output "
            "logits and use SparseCategoricalCrossentropy(from_logits=True)."
        )


def check_top_k(top_k, *, argument="teacher_top_k", teacher_count=1, teacher_classes=None, classes=None):
    """Top-k teacher outputs: an int k between 1 and the number of classes
    (where known), from one teacher over the student's own classes."""
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
    return top_k


def check_separate_teacher_inputs(separate_teacher_inputs, owner, allowed, teachers, teacher_classes, teacher_top_k):
    """A teacher with its own inputs (tokenizer): a distiller that takes
    them, one teacher, all of whose classes (tokens) are distilled."""
    if not isinstance(separate_teacher_inputs, bool):
        raise TypeError(
            "`separate_teacher_inputs` must be True or False. Received: "
            f"separate_teacher_inputs={separate_teacher_inputs!r}."
        )
    if not separate_teacher_inputs:
        return
    if not allowed:
        raise ValueError(
            f"{owner} feeds the teacher and the student the same inputs. Distill a teacher "
            "with its own tokenizer with keras_distill.Distiller(student=student, teacher=teacher, "
            "separate_teacher_inputs=True)."
        )
    if len(teachers) != 1 or teacher_classes is not None or teacher_top_k is not None:
        raise ValueError(
            "separate_teacher_inputs=True takes one teacher, without `teacher_classes` or `teacher_top_k` "
            f"(their vocabularies differ). Received {len(teachers)} teacher(s), teacher_classes="
            f"{teacher_classes!r}, teacher_top_k={teacher_top_k!r}."
        )


def check_not_shared(student, teachers):
    """Raises a `ValueError` if the student and a teacher share variables."""
    student_variables = {id(v): v for v in student.variables}
    for teacher in teachers:
        shared = [v.path for v in teacher.variables if id(v) in student_variables]
        if shared:
            raise ValueError(
                f"The student {student.name!r} and the teacher {teacher.name!r} share "
                f"{len(shared)} variable(s): {', '.join(shared[:6])}"
                f"{', ...' if len(shared) > 6 else ''}. Training the student would change "
                "the teacher. Give the student layers of its own, e.g. "
                "student = keras.models.clone_model(student)."
            )


def check_distiller_models(
    owner,
    student,
    teacher,
    *,
    teacher_output_kind,
    teacher_weights,
    teacher_classes,
    teacher_top_k,
    separate_teacher_inputs,
    takes_separate_teacher_inputs,
    takes_structured_outputs,
):
    """Every check of a distiller's models and teacher options, before it
    is built. Returns `(teachers, weights, structure)`: the teachers as a
    list, their normalized weights, and the structure of the student's
    outputs (None where only running the student tells)."""
    check_student(student)
    teachers = as_teacher_list(teacher)
    if any(student is model for model in teachers):
        raise ValueError(
            f"The same model {student.name!r} was passed as both `student` "
            "and `teacher`. Pass two models; to distill a model into a "
            "fresh copy of itself, use "
            "keras.models.clone_model(teacher) as the student."
        )
    check_not_shared(student, teachers)
    check_choice(teacher_output_kind, "teacher_output_kind", TEACHER_OUTPUTS)
    structure = outputs.of_model(student)
    options = {
        "teacher": f"{len(teachers)} teachers" if len(teachers) > 1 else None,
        "teacher_classes": teacher_classes,
        "teacher_top_k": teacher_top_k,
        "separate_teacher_inputs": separate_teacher_inputs or None,
    }
    check_structure_allowed(structure, owner, takes_structured_outputs, options)
    teacher_structure = outputs.of_model(teachers[0]) if len(teachers) == 1 else None
    if structure is not None and teacher_structure is not None:
        check_outputs(student, teachers[0], outputs.symbolic(student), outputs.symbolic(teachers[0]))
    weights = normalize_teacher_weights(teacher_weights, len(teachers))
    if structure != step.SINGLE and (structure is not None or teacher_structure not in (None, step.SINGLE)):
        # Several outputs: checked per output (a subclassed student's on an
        # example, before the first step).
        return teachers, weights, structure
    check_separate_teacher_inputs(
        separate_teacher_inputs, owner, takes_separate_teacher_inputs, teachers, teacher_classes, teacher_top_k
    )
    student_shape = output_shape(student)
    if not separate_teacher_inputs:
        check_teacher_shapes(teachers, student_shape, student.name, teacher_classes)
    check_top_k(
        teacher_top_k,
        teacher_count=len(teachers),
        teacher_classes=teacher_classes,
        classes=None if student_shape is None else student_shape[-1],
    )
    return teachers, weights, structure
