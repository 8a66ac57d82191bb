"""From a distilled float student to served artifacts, in one table.

`deploy(...)` builds the variants of a student (float32; with `quantize`,
post-training quantized and recovered by distillation), saves each as a
`.keras` file, exports each to the requested formats with
`keras_distill.export.export` (which checks every artifact against the Keras
model), and measures every artifact's test accuracy in its own runtime, its
size and its latency per example. Used by `keras-distill distill
--quantize ... --export ...` and `benchmarks/deploy.py`.
"""

import os
import time

import numpy as np

from keras_distill._training.guards import guarded
from keras_distill.export import export
from keras_distill.export import load_artifact
from keras_distill.quantize import quantize_student

# A quantized graph rounds its activations at run time, and runtimes may
# round a tie differently: a few thousandths of a logit (measured up to
# 2e-3 on small students). Allowed: 1% of the largest logit (at least 1).
QUANTIZED_TOLERANCE = 1e-2


def variants(
    student,
    teacher,
    x_train,
    y_train,
    quantize,
    *,
    methods=("ptq", "lora"),
    epochs=2,
    batch_size=128,
    validation_data=None,
    verbose=0,
):
    """`[(name, model, seconds)]`: the float student, then one quantized
    copy per method."""
    found = [("float32", student, 0.0)]
    for method in methods if quantize else ():
        start = time.perf_counter()
        model = quantize_student(
            student,
            teacher,
            x_train,
            y_train,
            mode=quantize,
            method=method,
            epochs=epochs,
            batch_size=batch_size,
            validation_data=validation_data,
            verbose=verbose,
            learning_rate=1e-4 if method == "qat" else 1e-3,
        )
        label = {"ptq": "post-training", "lora": "recovered (LoRA + KD)", "qat": "quantization-aware KD"}[method]
        found.append((f"{quantize} {label}", model, time.perf_counter() - start))
    return found


def deploy(models, x_test, y_test, output, formats=(), *, litert_int8=True, batch_size=256, latency_runs=50):
    """Saves, exports and measures `models`, the result of `variants`.

    Args:
        models: `[(name, model, seconds)]`.
        x_test, y_test: test inputs and integer labels.
        output: directory for the files.
        formats: export formats (`keras_distill.export.FORMATS`).
        litert_int8: with "litert" among the formats, also a LiteRT file of
            the float student with the converter's own int8 weights (the
            converter cannot read Keras-quantized layers).

    Returns:
        Rows (dicts) for `keras_distill.distill_command.format_table`.
    """
    os.makedirs(output, exist_ok=True)
    rows = []
    sample = np.asarray(x_test[:64], dtype="float32")
    for name, model, seconds in models:
        slug = name.split(" ")[0] if name == "float32" else "_".join(name.split(" ")[:2]).replace("-", "_")
        slug = "".join(c for c in slug if c.isalnum() or c == "_")
        path = os.path.join(output, f"student_{slug}.keras")
        model.save(path)
        with guarded(model) as guard:
            logits = model.predict(x_test, **guard({"batch_size": batch_size, "verbose": 0}))
        rows.append(_row(name, "keras", logits, y_test, os.path.getsize(path), None, None, seconds))
        quantized = name != "float32"
        for format in formats:
            if format == "litert" and quantized:
                continue  # the TFLite converter cannot convert Keras' quantized layers: see the int8 row below
            tolerance = QUANTIZED_TOLERANCE * max(1.0, float(np.max(np.abs(logits[:64])))) if quantized else None
            report = export(
                model,
                os.path.join(output, f"student_{slug}"),
                format=format,
                sample_inputs=sample,
                tolerance=tolerance,
                latency_runs=latency_runs,
            )
            rows.append(_artifact_row(name, report, x_test, y_test, batch_size))
        if not quantized and "litert" in formats and litert_int8:
            report = export(
                model,
                os.path.join(output, "student_litert_int8"),
                format="litert",
                sample_inputs=sample,
                litert_int8=True,
                latency_runs=latency_runs,
            )
            rows.append(_artifact_row("int8 by the LiteRT converter", report, x_test, y_test, batch_size))
    return rows


def _artifact_row(name, report, x_test, y_test, batch_size):
    run = load_artifact(report.path, report.format)
    x_test = np.asarray(x_test, dtype="float32")
    logits = np.concatenate([run(x_test[i : i + batch_size]) for i in range(0, len(x_test), batch_size)])
    return _row(name, report.format, logits, y_test, report.size_bytes, report.latency_ms, report.max_difference)


def _row(name, format, logits, y_test, size, latency, difference, seconds=None):
    accuracy = float(np.mean(np.argmax(logits, axis=-1) == np.asarray(y_test)))
    return {
        "student": name,
        "format": format,
        "test accuracy": accuracy,
        "file size": _size(size),
        "latency / example": "-" if latency is None else f"{latency:.3f} ms",
        "max abs diff vs Keras": "-" if difference is None else f"{difference:.1e}",
        "quantize + recover time": "-" if not seconds else f"{seconds:.0f} s",
    }


def _size(size):
    return f"{size / 1e6:.2f} MB" if size >= 1e5 else f"{size / 1e3:.1f} kB"
