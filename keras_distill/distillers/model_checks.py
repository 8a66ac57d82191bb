"""Checks on the models handed to a distiller, run before any training."""

import keras


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


def final_operation(model):
    """The operation producing a functional model's single output, or None.

    Returns None where it cannot be known without running the model (a
    subclassed model), or where the model has several outputs.
    """
    if isinstance(model, keras.Sequential):
        return model.layers[-1] if model.layers else None
    outputs = getattr(model, "_outputs", None) or getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        return None
    history = getattr(outputs[0], "_keras_history", None)
    return history[0] if history else None


def ends_with_softmax(model):
    """Whether the model's output is a softmax (probabilities, not logits)."""
    operation = final_operation(model)
    while isinstance(operation, keras.Model):
        operation = final_operation(operation)
    if operation is None:
        return False
    if type(operation).__name__ == "Softmax":
        return True
    activation = getattr(operation, "activation", None)
    return getattr(activation, "__name__", None) == "softmax"


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
        t is None or s is None or t == s
        for t, s in zip(teacher_shape, student_shape)
    )
    if not compatible:
        raise ValueError(
            "Teacher and student outputs must have the same shape. Received: "
            f"teacher {teacher_name!r} outputs (batch, "
            f"{', '.join(map(str, teacher_shape))}) and student "
            f"{student_name!r} outputs (batch, "
            f"{', '.join(map(str, student_shape))}). Give the student the "
            "teacher's number of classes."
        )
    if student_shape and student_shape[-1] == 1:
        raise ValueError(
            f"The models output a single unit per example (shape (batch, 1)): "
            "a softmax over one class is constant, so there is nothing to "
            "distill. For binary classification give both models 2 output "
            "logits and use SparseCategoricalCrossentropy(from_logits=True)."
        )


def serialize_model(model):
    """A model's config without its own compile config: a distiller's
    optimizer trains it, and a teacher's optimizer is never used."""
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    return config
