"""keras_distill: knowledge distillation for Keras 3."""

import os as _os
import sys as _sys

__version__ = "0.1.0"

__all__ = [
    "callbacks",
    "datasets",
    "features",
    "losses",
    "sharding",
    "AssistantChain",
    "BornAgain",
    "CausalLMDistiller",
    "Distiller",
    "FeatureDistiller",
    "FSPDistiller",
    "HintDistiller",
    "MutualLearner",
    "OnPolicyDistiller",
    "quantize_student",
    "generate_distillation_data",
    "precompute_teacher_outputs",
    "with_teacher_outputs",
    "CachedTeacherOutputs",
    "cut_student",
    "on_policy_divergence",
    "tune",
]


def _is_command_line():
    """Whether this process is `keras-distill` (or `python -m keras_distill`)
    and Keras is not imported yet.

    The command line then loads the public names on first use, so that
    `keras-distill --help` answers without importing a Keras backend
    (seconds, and TensorFlow's log lines). Everywhere else they are
    imported here, with the package: importing it registers its classes for
    `keras.saving.load_model`.
    """
    command = _os.path.basename(_sys.argv[0]) if _sys.argv else ""
    return command in ("keras-distill", "-m") and "keras" not in _sys.modules


if _is_command_line():

    def __getattr__(name):
        if name not in __all__:
            raise AttributeError(f"module 'keras_distill' has no attribute {name!r}")
        import importlib

        return getattr(importlib.import_module("keras_distill._public"), name)

else:
    from keras_distill._public import *  # noqa: F403
