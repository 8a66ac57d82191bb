"""What a distiller does to the models it is given: nothing.

- Teachers are frozen for the distiller's own steps without touching them
  (`Distiller._without_teachers`).
- A step that fails leaves every model's weights in place
  (`weights_kept_on_failure`): the JAX trainer takes the variables' values
  out of them while it runs and puts them back only at the end of an epoch.
"""

import contextlib

import keras

from keras_distill import _compat


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
