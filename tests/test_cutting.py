"""kd.cut_student: a keras-hub student made from its teacher's weights."""

import keras
import numpy as np
import pytest
from keras import ops

import keras_distill as kd
from keras_distill import cutting

keras_hub = pytest.importorskip("keras_hub")

VOCABULARY = 12
RNG = np.random.default_rng(0)
INPUTS = {
    "token_ids": RNG.integers(0, VOCABULARY, (8, 10)).astype("int32"),
    "padding_mask": np.concatenate([np.ones((8, 8), bool), np.zeros((8, 2), bool)], axis=1),
}

# Llama and Qwen take the same arguments; Gemma these with a wider MLP and its head size.
ROTARY = dict(
    vocabulary_size=VOCABULARY,
    num_layers=4,
    num_query_heads=4,
    num_key_value_heads=4,
    hidden_dim=16,
    intermediate_dim=40,
)
BACKBONES = {
    "gpt2": lambda: keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY,
        num_layers=4,
        num_heads=4,
        hidden_dim=16,
        intermediate_dim=40,
        max_sequence_length=16,
    ),
    "llama": lambda: keras_hub.models.LlamaBackbone(**ROTARY),
    "qwen": lambda: keras_hub.models.QwenBackbone(**ROTARY),
    "gemma": lambda: keras_hub.models.GemmaBackbone(**dict(ROTARY, intermediate_dim=80, head_dim=4)),
}


def outputs(model, inputs=INPUTS):
    return ops.convert_to_numpy(model(inputs, training=False))[INPUTS["padding_mask"]]


def block(backbone, index):
    return backbone.get_layer(cutting._blocks(backbone)[index].name)


@pytest.mark.parametrize("family", list(BACKBONES))
def test_a_full_size_cut_is_the_teacher(family):
    keras.utils.set_random_seed(0)
    teacher = BACKBONES[family]()
    student = kd.cut_student(teacher, layers="importance", calibration=INPUTS)
    assert type(student) is type(teacher) and student is not teacher
    np.testing.assert_allclose(outputs(student), outputs(teacher), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", list(BACKBONES))
def test_every_width_cut_keeps_the_teacher_unchanged_and_trains(family, tmp_path):
    keras.utils.set_random_seed(0)
    backbone = BACKBONES[family]()
    teacher = _task(backbone)
    before = [w.copy() for w in teacher.get_weights()]
    config = backbone.get_config()
    student = kd.cut_student(
        teacher,
        num_layers=2,
        layers="importance",
        num_heads=2,
        intermediate_dim=config["intermediate_dim"] // 2,
        hidden_dim=8,
        calibration=INPUTS,
    )
    sizes = student.backbone.get_config()
    assert (sizes["num_layers"], sizes["hidden_dim"], sizes["intermediate_dim"]) == (
        2,
        8,
        config["intermediate_dim"] // 2,
    )
    assert type(student) is type(teacher) and student.count_params() < teacher.count_params() / 3
    path = tmp_path / "cut.keras"
    student.save(path)
    np.testing.assert_allclose(outputs(keras.saving.load_model(path)), outputs(student), rtol=1e-5, atol=1e-5)
    distiller = kd.Distiller(student=student, teacher=teacher)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        temperature=1.0,
    )
    labels = np.roll(INPUTS["token_ids"], -1, axis=1)
    first = distiller.evaluate(INPUTS, labels, verbose=0, return_dict=True)["student_loss"]
    distiller.fit(INPUTS, labels, epochs=20, batch_size=8, verbose=0)
    assert distiller.evaluate(INPUTS, labels, verbose=0, return_dict=True)["student_loss"] < 0.9 * first
    for a, b in zip(before, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)


def _task(backbone):
    tasks = {
        "GPT2Backbone": keras_hub.models.GPT2CausalLM,
        "LlamaBackbone": keras_hub.models.LlamaCausalLM,
        "QwenBackbone": keras_hub.models.QwenCausalLM,
        "GemmaBackbone": keras_hub.models.GemmaCausalLM,
    }
    return tasks[type(backbone).__name__](backbone=backbone, preprocessor=None)


def test_even_layers_are_every_other_layer_copied():
    teacher = BACKBONES["gpt2"]()
    student = kd.cut_student(teacher, num_layers=2)
    for j, i in enumerate([0, 2]):
        for a, b in zip(block(student, j).get_weights(), block(teacher, i).get_weights()):
            np.testing.assert_array_equal(a, b)
    listed = kd.cut_student(teacher, num_layers=2, layers=[1, 3])
    for j, i in enumerate([1, 3]):
        for a, b in zip(block(listed, j).get_weights(), block(teacher, i).get_weights()):
            np.testing.assert_array_equal(a, b)


def _zeroed(teacher, layers=(), units=()):
    """The GPT-2 teacher with layers that add nothing to the residual stream
    and MLP units whose activations are 0 (GELU(0) = 0): cutting exactly
    those leaves its outputs unchanged."""
    for index in range(len(cutting._blocks(teacher))):
        for variable in block(teacher, index).weights:
            value = ops.convert_to_numpy(variable)
            if index in layers and ("attention_output" in variable.path or "feedforward_output" in variable.path):
                value[...] = 0
            elif "feedforward_intermediate_dense" in variable.path:
                value[..., list(units)] = 0
            variable.assign(value)
    return teacher


def test_importance_cuts_the_layers_and_units_that_do_nothing():
    keras.utils.set_random_seed(1)
    teacher = _zeroed(BACKBONES["gpt2"](), layers=(1, 3), units=range(0, 40, 2))
    expected = outputs(teacher)
    student = kd.cut_student(teacher, num_layers=2, layers="importance", intermediate_dim=20, calibration=INPUTS)
    np.testing.assert_allclose(outputs(student), expected, rtol=1e-4, atol=1e-5)
    # Other layers of the same sizes: another model.
    other = kd.cut_student(teacher, num_layers=2, layers=[0, 1], intermediate_dim=20, calibration=INPUTS)
    assert np.abs(outputs(other) - expected).max() > 1e-3


def test_importance_cuts_the_heads_that_do_nothing():
    """Gemma's heads have a size of their own (head_dim): heads whose values
    are 0 add nothing, and cutting them leaves the outputs unchanged."""
    keras.utils.set_random_seed(1)
    teacher = BACKBONES["gemma"]()
    for index in range(4):
        value = block(teacher, index).attention.value_dense.kernel
        zeroed = ops.convert_to_numpy(value)
        zeroed[[0, 2]] = 0  # (heads, hidden, head_dim)
        value.assign(zeroed)
    expected = outputs(teacher)
    student = kd.cut_student(teacher, num_heads=2, calibration=INPUTS)
    assert student.get_config()["num_query_heads"] == 2
    np.testing.assert_allclose(outputs(student), expected, rtol=1e-4, atol=1e-5)


def test_hidden_channels_are_cut_by_the_magnitude_of_the_residual_stream():
    keras.utils.set_random_seed(2)
    teacher = BACKBONES["gpt2"]()
    streams = keras.Model(teacher.inputs, [teacher.get_layer(f"transformer_layer_{i}").output for i in range(4)])
    magnitude = sum(np.abs(ops.convert_to_numpy(h))[INPUTS["padding_mask"]].mean(0) for h in streams(INPUTS))
    kept = np.sort(np.argsort(-magnitude)[:8])
    student = kd.cut_student(teacher, hidden_dim=8, num_heads=2, calibration=INPUTS)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(student.get_layer("token_embedding").embeddings),
        ops.convert_to_numpy(teacher.get_layer("token_embedding").embeddings)[:, kept],
    )


def test_one_head_whose_channels_are_cut_with_the_hidden_width():
    """One head per layer, hidden 16 -> 8: the head's channels and the hidden
    width are cut from 16 to 8 alike; each axis gets the indices of its own
    kind (the head's channels by their output, the hidden width by the
    residual stream)."""
    keras.utils.set_random_seed(3)
    teacher = keras_hub.models.GPT2Backbone(
        vocabulary_size=VOCABULARY,
        num_layers=2,
        num_heads=1,
        hidden_dim=16,
        intermediate_dim=40,
        max_sequence_length=16,
    )
    scores = cutting._importance(teacher, teacher, cutting._blocks(teacher), INPUTS)
    hidden, head = cutting._top(scores["hidden"], 8), cutting._top(scores["head_dim"][1], 8)
    assert not np.array_equal(hidden, head)  # else the test could not tell them apart
    student = kd.cut_student(teacher, hidden_dim=8, calibration=INPUTS)
    query = ops.convert_to_numpy(
        block(teacher, 1)._self_attention_layer._query_dense.kernel
    )  # (hidden, heads, head_dim)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(block(student, 1)._self_attention_layer._query_dense.kernel), query[hidden][:, :, head]
    )
    output = ops.convert_to_numpy(
        block(teacher, 1)._self_attention_layer._output_dense.kernel
    )  # (heads, head_dim, hidden)
    np.testing.assert_array_equal(
        ops.convert_to_numpy(block(student, 1)._self_attention_layer._output_dense.kernel),
        output[:, head][:, :, hidden],
    )
    assert np.all(np.isfinite(outputs(student)))


def test_what_cannot_be_cut_is_refused_before_anything_is_built():
    teacher = BACKBONES["gpt2"]()
    with pytest.raises(ValueError, match=r"hidden_dim must be a multiple of num_heads.*hidden_dim=10, num_heads=4"):
        kd.cut_student(teacher, hidden_dim=10, calibration=INPUTS)
    with pytest.raises(ValueError, match=r"`num_layers` must be an int from 1 to the teacher's 4.*num_layers=5"):
        kd.cut_student(teacher, num_layers=5)
    with pytest.raises(ValueError, match=r"`num_heads` must be an int from 1 to the teacher's 4.*num_heads=0"):
        kd.cut_student(teacher, num_heads=0)
    with pytest.raises(ValueError, match="calibration=None.*Pass calibration="):
        kd.cut_student(teacher, intermediate_dim=20)
    with pytest.raises(ValueError, match="calibration=None"):
        kd.cut_student(teacher, num_layers=2, layers="importance")
    with pytest.raises(ValueError, match=r"names num_layers=2 distinct teacher layers.*layers=\[1, 1\]"):
        kd.cut_student(teacher, num_layers=2, layers=[1, 1])
    with pytest.raises(ValueError, match="`layers` must be 'even', 'importance'"):
        kd.cut_student(teacher, num_layers=2, layers="first")
    plain = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="transformer_layer_i.*Received: Sequential"):
        kd.cut_student(plain, num_layers=1)
    rotary = BACKBONES["llama"]()
    with pytest.raises(ValueError, match=r"rotary.*head size.*hidden_dim=8 with num_heads=2"):
        kd.cut_student(rotary, hidden_dim=8, calibration=INPUTS)
    grouped = keras_hub.models.LlamaBackbone(
        vocabulary_size=VOCABULARY,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=16,
        intermediate_dim=40,
    )
    with pytest.raises(ValueError, match="4 query heads over 2 key/value heads.*Keep num_heads=None"):
        kd.cut_student(grouped, num_heads=2, hidden_dim=8, calibration=INPUTS)
    # Grouped attention keeps its heads and loses layers and MLP units.
    cut = kd.cut_student(grouped, num_layers=1, intermediate_dim=20, calibration=INPUTS)
    assert cut.get_config()["num_key_value_heads"] == 2 and np.isfinite(outputs(cut)).all()
    with pytest.raises(ValueError, match="strings needs the teacher's preprocessor"):
        kd.cut_student(teacher, intermediate_dim=20, calibration=["some text"])


def test_heads_cannot_grow():
    with pytest.raises(
        ValueError, match=r"heads of 8 channels, larger than the teacher's 4.*hidden_dim=8 with num_heads=2"
    ):
        kd.cut_student(BACKBONES["gpt2"](), num_heads=2, calibration=INPUTS)
