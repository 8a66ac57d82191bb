"""`keras-distill` / `python -m keras_distill`: the command line."""

import argparse
import logging
import os
import subprocess
import sys

from keras_distill import __version__
from keras_distill._defaults import DEFAULT_ALPHA
from keras_distill._defaults import DEFAULT_TEMPERATURE

BACKENDS = ("tensorflow", "jax", "torch")


def _at_least(minimum):
    """An argparse type: an int >= `minimum`, refused with exit code 2."""

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}. Received: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an int >= {minimum}. Received: {value}")
        return value

    parse.__name__ = f"int >= {minimum}"
    return parse


POSITIVE = _at_least(1)


# keras_distill.export.FORMATS, which imports Keras before --backend is read.
EXPORT_FORMATS = ("tf_saved_model", "onnx", "litert")


def _formats(text):
    """`"litert,onnx"` as `["litert", "onnx"]`."""
    formats = [part.strip() for part in str(text).split(",") if part.strip()]
    unknown = [part for part in formats if part not in EXPORT_FORMATS]
    if unknown or not formats:
        raise argparse.ArgumentTypeError(
            f"takes a comma-separated list of {', '.join(EXPORT_FORMATS)}. Received: {text!r}."
        )
    return formats


def build_parser():
    parser = argparse.ArgumentParser(
        prog="keras-distill",
        description="Knowledge distillation for Keras 3, from a shell.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    distill = commands.add_parser(
        "distill",
        help="Distill a saved teacher into a saved student.",
        description="Distill a saved teacher (.keras) into a saved student (.keras) on a dataset, then write a "
        "results table, the distilled student (.keras) and its SavedModel to --output.",
        epilog="Example: keras-distill distill --teacher teacher.keras --student student.keras --data digits "
        "--epochs 5 --export onnx",
    )
    distill.add_argument("--teacher", required=True, help="Teacher .keras file.")
    distill.add_argument("--student", required=True, help="Student .keras file.")
    distill.add_argument(
        "--data", required=True, help="fashion_mnist, digits, or a .npz file with x_train, y_train, x_test, y_test."
    )
    distill.add_argument("--epochs", type=POSITIVE, default=10, help="Epochs of distillation (default 10).")
    distill.add_argument(
        "--backend", choices=BACKENDS, help="Keras backend (default: $KERAS_BACKEND, else tensorflow)."
    )
    distill.add_argument(
        "--output",
        default="distill-output",
        help="Directory for results.md, student.keras, student_savedmodel/ and deploy/, which each run "
        "rewrites (default: ./distill-output).",
    )
    distill.add_argument(
        "--alpha", type=float, default=DEFAULT_ALPHA, help=f"Weight of the hard-label loss (default {DEFAULT_ALPHA})."
    )
    distill.add_argument(
        "--temperature",
        type=float,
        default=DEFAULT_TEMPERATURE,
        help=f"Softmax temperature (default {DEFAULT_TEMPERATURE}).",
    )
    distill.add_argument("--batch-size", type=POSITIVE, default=128, help="Batch size (default 128).")
    distill.add_argument(
        "--tune",
        type=_at_least(2),
        metavar="N",
        help="Search the distillation settings in N trials with keras_distill.tune (KerasTuner), "
        "the label-only student among them, instead of one run at --alpha and --temperature; "
        "the tuner's state goes to OUTPUT/tuning, so a search resumes.",
    )
    distill.add_argument(
        "--quantize",
        choices=("int8", "int4"),
        help="Also quantize the distilled student (Keras' model.quantize), post-training and "
        "recovered by distillation (LoRA adapters), and report both.",
    )
    distill.add_argument(
        "--recover-epochs",
        type=POSITIVE,
        default=2,
        help="Epochs of distillation that recover the quantized student (default 2).",
    )
    distill.add_argument(
        "--export",
        dest="formats",
        type=_formats,
        default=(),
        metavar="FORMATS",
        help="Also export every variant to these comma-separated formats "
        "(tf_saved_model, onnx, litert), each checked in its own runtime.",
    )
    return parser


def _other_backend(backend):
    """Whether Keras is already imported with a backend other than `backend`.

    The backend is fixed when Keras is first imported, and importing
    keras_distill (as `python -m keras_distill` and this module do) imports
    Keras.
    """
    if backend is None:
        return False
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend() != backend
    os.environ["KERAS_BACKEND"] = backend
    return False


def main(argv=None):
    """Runs the command line `argv` (default: this process's arguments).

    Called as the console script, a `--backend` other than the one Keras was
    imported with re-executes this process with it. Called from Python with
    `argv`, the command runs in a child process with those arguments, and
    its exit code is returned: the caller's process is left as it was.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if _other_backend(args.backend):
        env = {**os.environ, "KERAS_BACKEND": args.backend}
        command = [sys.executable, "-m", "keras_distill", *(sys.argv[1:] if argv is None else argv)]
        if argv is None:
            os.execve(sys.executable, command, env)
        return subprocess.run(command, env=env).returncode
    try:
        _check_arguments(args)
        _run(args)
    except (ValueError, FileNotFoundError) as error:
        parser.exit(2, f"keras-distill: error: {error}\n")
    return 0


def _check_arguments(args):
    """What argparse cannot say, said before any training."""
    # Imported here: they import Keras, which `--help` never needs.
    from keras_distill._training.checks.arguments import check_alpha
    from keras_distill.distill_command import check_output
    from keras_distill.losses.base import check_temperature

    check_output(args.output)
    if getattr(args, "alpha", None) is not None:
        check_alpha(args.alpha)
    if getattr(args, "temperature", None) is not None:
        check_temperature(args.temperature)


def _run(args):
    from keras_distill import distill_command

    # TensorFlow logs a retracing note each time another model predicts (the
    # variants of --quantize / --export): nothing a reader of the table can act on.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    distill_command.run_distill(
        args.teacher,
        args.student,
        args.data,
        args.epochs,
        args.output,
        alpha=args.alpha,
        temperature=args.temperature,
        batch_size=args.batch_size,
        tune_trials=args.tune,
        quantize=args.quantize,
        formats=args.formats,
        recover_epochs=args.recover_epochs,
    )
