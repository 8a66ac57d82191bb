"""keras_distill: knowledge distillation for Keras 3."""

import os as _os
import sys as _sys

__version__ = "0.1.0"


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
        from keras_distill import _public

        return getattr(_public, name)

else:
    from keras_distill._public import *  # noqa: F403
