"""Real Ctrl-Cs at many moments of the library's entry points.

A SIGINT is sent to this process by a timer thread, as a terminal's Ctrl-C
sends it, at delays spread over an uninterrupted run's duration (start-up,
tracing, steps, validation, the epoch's end). After each, every model must
be usable and finite, the teacher bit-identical, and a student that was
training exactly at the weights of its last completed step: the weights a
reference run had after as many steps as the optimizer counts (0: the
weights before `fit`).

    python tests/robustness/real_interrupts.py BACKEND [--moments N]

prints one JSON line per moment, then a summary line; run by
`tests/robustness/test_interrupts.py`.
"""

import argparse
import json
import os
import signal
import sys
import threading
import time

OUTCOMES = []


def ctrl_c_during(run, delay):
    """Runs `run` with a SIGINT sent to this process after `delay` seconds.
    Returns `(interrupted, error)`."""
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        run()
        timer.cancel()
        time.sleep(0.01)  # a SIGINT already on its way lands here
    except KeyboardInterrupt:
        timer.cancel()
        return True, None
    except Exception as error:  # a model left unusable by an earlier moment
        timer.cancel()
        return False, f"{type(error).__name__}: {error}"[:300]
    return False, None


def report(entry, delay, interrupted, problems, **extra):
    outcome = {"entry": entry, "delay": round(delay, 4), "interrupted": interrupted, "problems": problems, **extra}
    OUTCOMES.append(outcome)
    print(json.dumps(outcome), flush=True)
    return outcome


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("backend")
    parser.add_argument("--moments", type=int, default=12)
    args = parser.parse_args(argv)
    os.environ["KERAS_BACKEND"] = args.backend
    # A Ctrl-C raises, as in a terminal: a process started in the background
    # by a non-interactive shell (a CI runner's, nohup's) inherits SIGINT
    # ignored, and Python then leaves it ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    import keras
    import numpy as np

    import keras_distill as kd

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1280, 64)).astype("float32")
    y = rng.integers(0, 10, 1280)

    def mlp(units, name):
        layers = [keras.layers.Dense(units, activation="relu", name=f"{name}_{index}") for index in (1, 2)]
        return keras.Sequential([keras.Input((64,)), *layers, keras.layers.Dense(10, name=f"{name}_logits")], name=name)

    def values(model):
        return [np.array(w) for w in model.get_weights()]

    def usable(*models, unchanged=()):
        """What is wrong with the models: unusable, non-finite, changed."""
        problems = []
        try:
            for model in models:
                model.predict(x[:8], verbose=0)
                if not all(np.isfinite(w).all() for w in values(model)):
                    problems.append(f"{model.name} has non-finite weights")
            for model, before in unchanged:
                if not all(np.array_equal(a, b) for a, b in zip(before, values(model))):
                    problems.append(f"{model.name}'s weights changed")
        except Exception as error:  # a deleted array, an emptied variable
            problems.append(f"{type(error).__name__}: {error}"[:300])
        return problems

    teacher, student = mlp(256, "teacher"), mlp(128, "student")
    teacher_weights, start_weights = values(teacher), values(student)
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(keras.optimizers.Adam(1e-3), "sparse_categorical_crossentropy", alpha=0.5)
    fit_args = dict(batch_size=32, epochs=2, shuffle=False, validation_data=(x[:320], y[:320]), verbose=0)

    def reset():
        student.set_weights(start_weights)
        for variable in distiller.optimizer.variables:
            variable.assign(np.zeros(variable.shape, variable.dtype))

    class Record(keras.callbacks.Callback):
        """The student's weights after each step of a reference run."""

        def __init__(self):
            super().__init__()
            self.weights = [start_weights]

        def on_train_batch_end(self, batch, logs=None):
            self.weights.append(values(self.model.student))

    reset()
    record = Record()
    distiller.fit(x, y, callbacks=[record], **fit_args)
    reset()
    began = time.perf_counter()
    distiller.fit(x, y, **fit_args)
    duration = time.perf_counter() - began

    for delay in np.linspace(0.03, 1.1, args.moments) * duration:
        reset()
        interrupted, error = ctrl_c_during(lambda: distiller.fit(x, y, **fit_args), delay)
        problems = (
            [f"fit failed: {error}"] if error else usable(teacher, student, unchanged=[(teacher, teacher_weights)])
        )
        steps = None
        if not problems:
            steps = int(keras.ops.convert_to_numpy(distiller.optimizer.iterations))
            expected = record.weights[min(steps, len(record.weights) - 1)]
            at_step = all(np.allclose(a, b, rtol=1e-5, atol=1e-6) for a, b in zip(expected, values(student)))
            if steps >= len(record.weights) or not at_step:
                problems.append(f"the student is not at the weights of its step {steps}")
        report("Distiller.fit", delay, interrupted, problems, steps=steps)
    if any(outcome["problems"] for outcome in OUTCOMES):
        return summarize(len(record.weights) - 1, duration)

    reset()
    runs = {
        "Distiller.evaluate": lambda: distiller.evaluate(x, y, batch_size=4, verbose=0),
        "Distiller.predict": lambda: distiller.predict(x, batch_size=4, verbose=0),
        "precompute_teacher_outputs": lambda: kd.precompute_teacher_outputs(teacher, x, batch_size=4),
    }
    for name, run in runs.items():
        began = time.perf_counter()
        run()
        took = time.perf_counter() - began
        for delay in np.linspace(0.2, 0.8, 3) * took:
            before = values(student)
            interrupted, error = ctrl_c_during(run, delay)
            problems = [error] if error else usable(teacher, student, unchanged=[(teacher, teacher_weights)])
            if not problems and not all(np.array_equal(a, b) for a, b in zip(before, values(student))):
                problems.append("the student's weights changed")
            report(name, delay, interrupted, problems)

    peers = [mlp(32, "peer_a"), mlp(32, "peer_b")]
    learner = kd.MutualLearner(peers)
    learner.compile("adam", "sparse_categorical_crossentropy")
    hints = kd.HintDistiller(student=mlp(64, "thin"), teacher=teacher, hint_layer="teacher_2", guided_layer="thin_1")
    hints.compile("adam", "sparse_categorical_crossentropy")
    runs = {
        "MutualLearner.fit": (lambda: learner.fit(x, y, batch_size=32, epochs=2, verbose=0), peers),
        "HintDistiller.fit_hints": (lambda: hints.fit_hints(x, batch_size=32, epochs=2, verbose=0), [hints.student]),
    }
    for name, (run, trained) in runs.items():
        run()
        began = time.perf_counter()
        run()
        took = time.perf_counter() - began
        for delay in np.linspace(0.2, 0.8, 3) * took:
            interrupted, error = ctrl_c_during(run, delay)
            problems = [error] if error else usable(teacher, *trained, unchanged=[(teacher, teacher_weights)])
            report(name, delay, interrupted, problems)
    return summarize(len(record.weights) - 1, duration)


def summarize(steps, duration):
    between = sum(1 for o in OUTCOMES if o["entry"] == "Distiller.fit" and 0 < (o.get("steps") or 0) < steps)
    summary = {
        "summary": True,
        "moments": len(OUTCOMES),
        "interrupted": sum(o["interrupted"] for o in OUTCOMES),
        "fit_stopped_between_its_first_and_last_step": between,
        "bad": sum(bool(o["problems"]) for o in OUTCOMES),
        "fit_seconds": round(duration, 3),
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    sys.exit(1 if main()["bad"] else 0)
