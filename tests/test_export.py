import os

import numpy as np

import keras_distill as kd
from keras_distill.export import export_saved_model
from tests.conftest import make_mlp


def test_saved_model_serves_the_same_predictions(tmp_path):
    import tensorflow as tf

    student = make_mlp(8, name="student")
    path = export_saved_model(student, os.path.join(tmp_path, "saved"))
    x = np.random.default_rng(0).uniform(size=(5, 64)).astype("float32")
    loaded = tf.saved_model.load(path)  # kept alive: serve() needs its variables
    served = loaded.serve(x).numpy()
    np.testing.assert_allclose(served, student.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert kd.__version__
