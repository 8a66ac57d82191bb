import keras
import numpy as np
from keras import ops

import keras_distill as kd
from tests.conftest import make_cnn

SCCE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def numpy_of(model, layer, x):
    return ops.convert_to_numpy(keras.Model(model.inputs[0], model.get_layer(layer).output)(x, training=False))


def test_fsp_stage_and_metric(digit_images):
    (x, y), _ = digit_images
    student, teacher = make_cnn("student", (4, 4)), make_cnn("teacher", (4, 8, 4))
    pairs = [(("teacher_conv1", "teacher_conv3"), ("student_conv1", "student_conv2"))]
    distiller = kd.FSPDistiller(student=student, teacher=teacher, pairs=pairs)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SCCE, fsp_weight=1.0)
    features = {
        name: numpy_of(model, name, x[:32])
        for model, names in ((teacher, pairs[0][0]), (student, pairs[0][1]))
        for name in names
    }
    g_teacher = ops.convert_to_numpy(kd.losses.fsp_matrix(features["teacher_conv1"], features["teacher_conv3"]))
    g_student = ops.convert_to_numpy(kd.losses.fsp_matrix(features["student_conv1"], features["student_conv2"]))
    expected = ((g_teacher - g_student) ** 2).sum(axis=(1, 2)).mean()
    logs = distiller.evaluate(x[:32], y[:32], batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["fsp_loss"], expected, rtol=1e-4)
    history = distiller.fit_fsp(x[:256], epochs=3, batch_size=32, verbose=0)
    assert history.history["fsp_loss"][-1] < history.history["fsp_loss"][0]
    assert distiller.alpha == 1.0
    distiller.fit(x[:256], y[:256], epochs=1, verbose=0)
