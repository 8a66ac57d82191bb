"""What a distiller does to the models it is given: nothing, even when a step
fails or the user presses Ctrl-C.

Every entry point that runs a Keras trainer (`fit`, `evaluate`, `predict`
of every distiller, the stages, `precompute_teacher_outputs`, ...) runs it
inside `guarded(model)`:

- An error leaves every model with its weights. On JAX, Keras moves every
  variable's value into the compiled step's state and empties the variable
  until the epoch ends; an error in a step (say, while the first one is
  traced) would leave them empty, and the models raise on their next call.
- A Ctrl-C (SIGINT) stops at the end of the step under way, never inside
  it. On JAX a step consumes (donates) the arrays of its state; an
  interrupt landing after a step returned and before Keras kept the new
  state deleted the arrays of every model, the teacher's included. The
  handler here only asks the running loop to stop (`stop_training`,
  `stop_evaluating`, `stop_predicting`, asked again by a callback when the
  loop begins, since Keras clears them then); Keras ends the loop at the
  end of the step under way with its state synced, and `KeyboardInterrupt`
  is raised once it has. A second Ctrl-C raises at once, at the old risk. Signals reach the
  main thread only: elsewhere, and where the user installed a SIGINT
  handler of their own, nothing is deferred.
"""

import contextlib
import signal
import sys
import threading

import keras

from keras_distill import _compat

#: The guarded run in progress in the main thread, if any (runs nest: a
#: fit's validation, the stages of a chain).
_running = None


class _Run:
    def __init__(self):
        self.models = []
        self.interrupts = 0

    def stop(self):
        for model in self.models:
            model.stop_training = model.stop_evaluating = model.stop_predicting = True


class StopWhenInterrupted(keras.callbacks.Callback):
    """Asks the loop again to stop when it begins: Keras clears the stop
    flags just before, and a Ctrl-C may have come earlier (while the data
    adapter or the step was being built). A Ctrl-C after it sets flags that
    stay. Only `on_*_begin` hooks: a batch hook would make Keras turn the
    logs into Python numbers at every step."""

    def __init__(self, run):
        super().__init__()
        self._run = run

    def on_train_begin(self, logs=None):
        if self._run.interrupts:
            self._run.stop()

    on_test_begin = on_predict_begin = on_train_begin


def interrupted():
    """Whether a Ctrl-C is waiting for the guarded run in progress to stop:
    a `fit`'s validation is then skipped, its epoch's end callbacks run."""
    return _running is not None and _running.interrupts > 0


@contextlib.contextmanager
def guarded(model):
    """Runs `model`'s trainer (`fit`, `evaluate`, `predict`) so that an
    error or a Ctrl-C leaves it, and the models inside it, with their
    weights. Yields a function that adds the guard's callback to the
    keyword arguments of `fit` / `evaluate` / `predict`."""
    global _running
    if not _can_defer():
        with _weights_kept(model):
            yield lambda kwargs: _with_callback(kwargs, None)
        return
    outer = _running is None
    if not outer and _running.interrupts:
        raise KeyboardInterrupt  # a validation or a next stage does not start
    run = _Run() if outer else _running
    run.models.append(model)

    def handler(signum, frame):
        run.interrupts += 1
        if run.interrupts > 1:
            raise KeyboardInterrupt
        run.stop()
        print(
            "\nkeras_distill: interrupted; stopping at the end of the step under way, with every model's weights "
            "kept. Press Ctrl-C again to stop at once (on JAX that may delete the models' weights).",
            file=sys.stderr,
        )

    previous = signal.signal(signal.SIGINT, handler) if outer else None
    if outer:
        _running = run
    try:
        with _weights_kept(model):
            yield lambda kwargs: _with_callback(kwargs, run)
    finally:
        run.models.remove(model)
        if outer:
            signal.signal(signal.SIGINT, previous)
            _running = None
    if outer and run.interrupts:
        raise KeyboardInterrupt


def _can_defer():
    """Only the main thread receives signals; a SIGINT handler of the user's
    own (or of a run in progress, ours) is left in place."""
    if threading.current_thread() is not threading.main_thread():
        return False
    return _running is not None or signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _with_callback(kwargs, run):
    """`kwargs` with the guard's callbacks: `StopWhenInterrupted`, and on
    JAX `StateSynced` before the user's callbacks that run code of their
    own at every batch. A `CallbackList` is Keras' own, passed to a fit's
    validation: the fit's guard already holds it."""
    callbacks = kwargs.get("callbacks")
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return kwargs
    callbacks = list(callbacks or [])
    synced = [StateSynced()] if keras.backend.backend() == "jax" and any(map(_runs_at_each_batch, callbacks)) else []
    stop = [] if run is None else [StopWhenInterrupted(run)]
    return {**kwargs, "callbacks": [*synced, *callbacks, *stop]}


_BATCH_HOOKS = tuple(
    f"on_{stage}_batch_{moment}" for stage in ("train", "test", "predict") for moment in ("begin", "end")
) + ("on_batch_begin", "on_batch_end")


def _runs_at_each_batch(callback):
    """Whether a callback runs code of the user's at each batch: one of its
    batch hooks is not Keras' empty default, and it is not one of Keras'
    own callbacks (which reach the models through `self.model`, and so see
    them synced), `LambdaCallback` aside."""
    if isinstance(callback, keras.callbacks.LambdaCallback):
        return True
    if (type(callback).__module__ or "").startswith("keras."):
        return False
    hooks = [getattr(type(callback), hook, None) for hook in _BATCH_HOOKS]
    return any(hook is not None and not getattr(hook, "_is_default", False) for hook in hooks)


class StateSynced(keras.callbacks.Callback):
    """On JAX, puts the running step's state back into the variables before
    the user's callbacks run at a batch, so that they can use any model as
    on the other backends: `teacher.predict` to log its accuracy, say.
    Keras keeps the state out of the variables until the epoch ends, and
    syncs it only for callbacks that reach the model through `self.model`.
    The cost, paid only with such callbacks, is one assignment per variable
    per batch (`benchmarks/interrupts.py` measures it)."""

    def _sync(self, batch, logs=None):
        self.model.jax_state_sync()

    on_train_batch_begin = on_train_batch_end = _sync
    on_test_batch_begin = on_test_batch_end = _sync
    on_predict_batch_begin = on_predict_batch_end = _sync


def check_not_held(models, owner):
    """On JAX, refuses models whose variables another model's running
    `fit` holds (Keras empties them into that step's state until its epoch
    ends): a second distiller sharing a teacher in another thread."""
    for model in models:
        if any(_compat.is_emptied(variable) for variable in model.variables):
            raise ValueError(
                f"{owner} cannot read {model.name!r}: on JAX, its weights are inside the step state of another "
                "run, one in progress in another thread (Keras keeps them there until the epoch ends) or one "
                "stopped mid-step by a second Ctrl-C. Give each concurrent run its own copy, made before either "
                "starts: copy = keras.models.clone_model(model); copy.set_weights(model.get_weights()); or run "
                "them one after the other."
            )


@contextlib.contextmanager
def _weights_kept(model):
    """On JAX, an error puts back the newest step state (when a step ran)
    or the values the variables had before (JAX arrays never change in
    place: keeping references costs nothing and restores them exactly)."""
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
