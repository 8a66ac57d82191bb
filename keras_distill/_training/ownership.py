"""What a distiller does to the models it is given: nothing.

- Teachers are frozen for the distiller's own steps without touching them:
  `FrozenTeachersMixin` leaves their variables out of the distiller's
  trainable ones (so no gradient, no optimizer slot), where
  `teacher.trainable = False` would have frozen the user's model for good.
- A step that fails leaves every model's weights in place
  (`weights_kept_on_failure`): the JAX trainer takes the variables' values
  out of them while it runs and puts them back only at the end of an epoch.
- A layer shared by a teacher and a student is refused: training the student
  would change the teacher.
"""

import contextlib

import keras

from keras_distill import _compat


class FrozenTeachersMixin:
    """Leaves `self._frozen_models()`'s variables out of the trainable ones.

    For a `keras.Model` that wraps models it must not train. They stay in the
    non-trainable variables, so the JAX trainer still carries their state.
    """

    def _frozen_models(self):
        return []

    def _frozen_ids(self):
        return {id(v) for model in self._frozen_models() for v in model.variables}

    def _split(self, trainable, non_trainable):
        frozen = self._frozen_ids()
        kept = [v for v in trainable if id(v) not in frozen]
        moved = [v for v in trainable if id(v) in frozen]
        return kept, non_trainable + moved

    @property
    def trainable_variables(self):
        return self._split(super().trainable_variables, [])[0]

    @property
    def non_trainable_variables(self):
        return self._split(super().trainable_variables, super().non_trainable_variables)[1]

    @property
    def trainable_weights(self):
        return self._split(super().trainable_weights, [])[0]

    @property
    def non_trainable_weights(self):
        return self._split(super().trainable_weights, super().non_trainable_weights)[1]


@contextlib.contextmanager
def weights_kept_on_failure(model):
    """Runs `fit` / `evaluate` / `predict` so that an error leaves `model`'s
    variables (and so its sub-models') with values.

    On JAX, Keras moves every variable's value into the compiled step's state
    and empties the variable until the epoch ends; an error in a step (say,
    while the first one is traced) leaves them empty, and the models raise
    on their next call. The values are JAX arrays, which never change in
    place: keeping references costs nothing and restores them exactly. After
    a later step, the newest state is put back instead.
    """
    if keras.backend.backend() != "jax":
        yield
        return
    variables = list(model.variables)
    if getattr(model, "optimizer", None) is not None and model.optimizer.built:
        variables += list(model.optimizer.variables)
    saved = [(variable, variable.value) for variable in variables]
    try:
        yield
    except BaseException:
        _compat.restore_jax_state(model)
        for variable, value in saved:
            if _compat.is_emptied(variable):
                variable.assign(value)
        raise


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
