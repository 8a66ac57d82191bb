"""Cell sources of the per-method notebooks (02-05); make_notebooks.py writes them."""

from nbformat.v4 import new_code_cell
from nbformat.v4 import new_markdown_cell
from nbformat.v4 import new_notebook

MLP = """\
def mlp(hidden, name, dropout=0.0):
    layers = [keras.Input((784,))]
    for units in hidden:
        layers.append(keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10))  # logits: no softmax
    return keras.Sequential(layers, name=name)"""

HELPERS = (
    MLP
    + '''


import matplotlib

if "google.colab" not in sys.modules and not os.environ.get("MPLBACKEND"):
    matplotlib.use("Agg")
import matplotlib.pyplot as plt

EPOCHS = 2 if QUICK else 12


def images(x):
    return x.reshape(len(x), 28, 28, 1)


def cnn(blocks, name):
    """3x3 convolutions `{name}_conv{i}`, each block max-pooled, then logits."""
    inputs = keras.Input((28, 28, 1))
    x, index = inputs, 0
    for block, widths in enumerate(blocks, start=1):
        for width in widths:
            index += 1
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu", name=f"{name}_conv{index}")(x)
        x = keras.layers.MaxPooling2D(name=f"{name}_pool{block}")(x)
    outputs = keras.layers.Dense(10, name=f"{name}_logits")(keras.layers.Flatten()(x))
    return keras.Model(inputs, outputs, name=name)


LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compile_classifier(model):
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS, metrics=["accuracy"])
    return model


def test_accuracy(model, x):
    return float(np.mean(np.argmax(model.predict(x, batch_size=512, verbose=0), -1) == y_test))


def print_test_accuracy(named_models, x):
    for name, model in named_models:
        print(f"{name:<28}{model.count_params():>10,} parameters  test accuracy {test_accuracy(model, x):.2%}")


def show(fig, file_name):
    fig.tight_layout()
    fig.savefig(os.path.join(OUTPUT, file_name), dpi=80)
    plt.show()


def plot_curves(curves, title):
    """curves: {label: (epoch numbers, validation accuracies)}."""
    fig, axis = plt.subplots(figsize=(7, 4))
    for label, (epochs, values) in curves.items():
        axis.plot(epochs, values, marker="o", label=label)
    axis.set(title=title, xlabel="epoch", ylabel="validation accuracy")
    axis.legend()
    show(fig, "learning_curves.png")'''
)

EXPORT = """\
from keras_distill.export import export_saved_model

student.save(os.path.join(OUTPUT, "student.keras"))
export_saved_model(student, os.path.join(OUTPUT, "student_savedmodel"))
reloaded = keras.saving.load_model(os.path.join(OUTPUT, "student.keras"))
np.testing.assert_allclose(reloaded.predict(x_export[:8], verbose=0), student.predict(x_export[:8], verbose=0), rtol=1e-5, atol=1e-6)
print(sorted(os.listdir(OUTPUT)))"""

HINT_TRAIN = """\
keras.utils.set_random_seed(0)
teacher = compile_classifier(cnn([(32, 32), (64, 64)], "teacher"))
teacher.fit(images(x_train), y_train, epochs=EPOCHS, batch_size=128, verbose=2)

# A deeper, thinner student: three convolutions per block, a quarter of the width.
keras.utils.set_random_seed(1)
initial = cnn([(8, 8, 8), (16, 16, 16)], "student").get_weights()


def fresh_student():
    model = cnn([(8, 8, 8), (16, 16, 16)], "student")
    model.set_weights(initial)
    return model


validation = (images(x_val), y_val)
scratch = compile_classifier(fresh_student())
scratch_history = scratch.fit(images(x_train), y_train, epochs=EPOCHS, batch_size=128, validation_data=validation, verbose=2)

# FitNets: stage 1 regresses the teacher's block-1 output from the student's
# (through a learned 1x1 convolution, 8 -> 32 channels); stage 2 is soft targets.
student = fresh_student()
distiller = kd.HintDistiller(student, teacher, hint_layer="teacher_pool1", guided_layer="student_pool1")
distiller.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS, metrics=["accuracy"], alpha=0.5, temperature=4.0)
HINT_EPOCHS = 1 if QUICK else 3
hint_history = distiller.fit_hints(images(x_train), epochs=HINT_EPOCHS, batch_size=128, verbose=2)
distill_history = distiller.fit(
    images(x_train), y_train, epochs=EPOCHS - HINT_EPOCHS, batch_size=128, validation_data=validation, verbose=2
)"""

HINT_PLOT = """\
plot_curves(
    {
        "student, labels only": (np.arange(1, EPOCHS + 1), scratch_history.history["val_accuracy"]),
        "student, hints then soft targets": (
            np.arange(HINT_EPOCHS + 1, EPOCHS + 1), distill_history.history["val_accuracy"]),
    },
    f"Same total epochs; the hint stage takes the first {HINT_EPOCHS}",
)
print("hint loss per hint epoch:", np.round(hint_history.history["hint_loss"], 4))"""

HINT_FEATURES = """\
# The matched features on four test images: the teacher's hint (channel mean),
# the student's guided layer through the learned regressor, and the student trained
# on labels only through the same regressor (not trained to match, for contrast).
hint = keras.Model(teacher.inputs, teacher.get_layer("teacher_pool1").output)
guided = keras.Model(student.inputs, student.get_layer("student_pool1").output)
guided_scratch = keras.Model(scratch.inputs, scratch.get_layer("student_pool1").output)
regressor = distiller.regressors[0]
sample = images(x_test[:4])
rows = {
    "teacher hint": hint.predict(sample, verbose=0),
    "regressor(student)": keras.ops.convert_to_numpy(regressor(guided.predict(sample, verbose=0))),
    "regressor(scratch)": keras.ops.convert_to_numpy(regressor(guided_scratch.predict(sample, verbose=0))),
}
fig, axes = plt.subplots(len(rows), len(sample), figsize=(8, 6))
for row, (label, maps) in enumerate(rows.items()):
    error = float(np.mean((maps - rows["teacher hint"]) ** 2))
    for column in range(len(sample)):
        axes[row, column].imshow(maps[column].mean(-1), cmap="viridis")
        axes[row, column].axis("off")
    axes[row, 0].set_title(f"{label} (MSE to hint {error:.3f})", loc="left", fontsize=9)
show(fig, "matched_features.png")"""

HINT_RESULTS = """\
print_test_accuracy([("teacher", teacher), ("student, labels only", scratch), ("student, FitNets", student)], images(x_test))
x_export = images(x_test)"""

FSP_TRAIN = """\
keras.utils.set_random_seed(0)
teacher = compile_classifier(cnn([(16, 16, 16), (32, 32, 32)], "teacher"))
teacher.fit(images(x_train), y_train, epochs=EPOCHS, batch_size=128, verbose=2)

# FSP needs the same channel counts on both sides: a shallower student of the teacher's widths.
keras.utils.set_random_seed(1)
initial = cnn([(16, 16), (32, 32)], "student").get_weights()


def fresh_student():
    model = cnn([(16, 16), (32, 32)], "student")
    model.set_weights(initial)
    return model


PAIRS = [
    (("teacher_conv1", "teacher_conv3"), ("student_conv1", "student_conv2")),
    (("teacher_conv4", "teacher_conv6"), ("student_conv3", "student_conv4")),
]
validation = (images(x_val), y_val)
scratch = compile_classifier(fresh_student())
scratch_history = scratch.fit(images(x_train), y_train, epochs=EPOCHS, batch_size=128, validation_data=validation, verbose=2)

# Stage 1 matches the FSP matrices; stage 2 trains on the labels, the same epochs as from scratch.
student = fresh_student()
distiller = kd.FSPDistiller(student, teacher, PAIRS)
distiller.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS, metrics=["accuracy"])
FSP_EPOCHS = 1 if QUICK else 2
fsp_history = distiller.fit_fsp(images(x_train), epochs=FSP_EPOCHS, batch_size=128, verbose=2)
after_fsp = student.get_weights()
distill_history = distiller.fit(images(x_train), y_train, epochs=EPOCHS, batch_size=128, validation_data=validation, verbose=2)"""

FSP_PLOT = """\
plot_curves(
    {
        "labels only": (np.arange(1, EPOCHS + 1), scratch_history.history["val_accuracy"]),
        f"after {FSP_EPOCHS} FSP epoch(s)": (np.arange(1, EPOCHS + 1), distill_history.history["val_accuracy"]),
    },
    "Label epochs: from scratch vs after the FSP stage",
)
print("FSP loss per stage-1 epoch:", np.round(fsp_history.history["fsp_loss"], 4))"""

FSP_FEATURES = """\
# The matched features: FSP matrices (16 x 16) of the first pair, averaged over
# test images: the teacher's, the student's right after the FSP stage, and the
# student's before any training.
def fsp_of(model, first, last, weights=None):
    copy = keras.models.clone_model(model)
    copy.set_weights(weights if weights is not None else model.get_weights())
    taps = keras.Model(copy.inputs, [copy.get_layer(first).output, copy.get_layer(last).output])
    a, b = taps.predict(images(x_test[:256]), verbose=0)
    return keras.ops.convert_to_numpy(kd.losses.fsp_matrix(a, b)).mean(0)


matrices = {
    "teacher": fsp_of(teacher, "teacher_conv1", "teacher_conv3"),
    "student after the FSP stage": fsp_of(student, "student_conv1", "student_conv2", after_fsp),
    "student at initialization": fsp_of(student, "student_conv1", "student_conv2", initial),
}
fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
for axis, (label, matrix) in zip(axes, matrices.items()):
    distance = float(np.mean((matrix - matrices["teacher"]) ** 2))
    axis.imshow(matrix, cmap="viridis")
    axis.set_title(f"{label}\\nMSE to teacher {distance:.4f}", fontsize=9)
    axis.axis("off")
show(fig, "matched_features.png")"""

FSP_RESULTS = """\
print_test_accuracy([("teacher", teacher), ("student, labels only", scratch), ("student, FSP + labels", student)], images(x_test))
x_export = images(x_test)"""

DML_TRAIN = """\
# Two different peers: an MLP on the pixels and a small CNN (it reshapes them).
def small_cnn():
    inputs = keras.Input((784,))
    x = keras.layers.Reshape((28, 28, 1))(inputs)
    x = keras.layers.MaxPooling2D()(keras.layers.Conv2D(16, 3, padding="same", activation="relu")(x))
    x = keras.layers.MaxPooling2D()(keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x))
    return keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(x)), name="cnn")


builders = {"mlp": lambda: mlp([512, 512], "mlp"), "cnn": small_cnn}
keras.utils.set_random_seed(0)
initial = {name: build().get_weights() for name, build in builders.items()}


def fresh(name):
    model = builders[name]()
    model.set_weights(initial[name])
    return model


validation = (x_val, y_val)
alone, alone_histories = {}, {}
for name in builders:
    alone[name] = compile_classifier(fresh(name))
    alone_histories[name] = alone[name].fit(x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=validation, verbose=2)

# Mutual: each peer learns from the labels and from the other's predictions (KL at T = 1).
peers = [fresh(name) for name in builders]
learner = kd.MutualLearner(peers, temperature=1.0)
learner.compile(optimizer=keras.optimizers.Adam(1e-3), loss=LOSS, metrics=["accuracy"])
mutual_history = learner.fit(x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=validation, verbose=2)"""

DML_PLOT = """\
epochs = np.arange(1, EPOCHS + 1)
curves = {}
for name in builders:
    curves[f"{name} alone"] = (epochs, alone_histories[name].history["val_accuracy"])
    curves[f"{name} mutual"] = (epochs, mutual_history.history[f"val_{name}_accuracy"])
plot_curves(curves, "Each peer alone and in the cohort")
for name, peer in zip(builders, peers):
    print(f"{name}: alone {test_accuracy(alone[name], x_test):.2%}, mutual {test_accuracy(peer, x_test):.2%}")
student = peers[1]  # the CNN peer: 10x fewer parameters than the MLP
x_export = x_test"""

TAKD_TRAIN = """\
# A large gap: a 2.4M-parameter teacher and a 12.7k-parameter student.
keras.utils.set_random_seed(0)
teacher = compile_classifier(mlp([1200, 1200], "teacher", dropout=0.3))
teacher.fit(x_train, y_train, epochs=EPOCHS, batch_size=128, verbose=2)

keras.utils.set_random_seed(1)
initial = mlp([16], "student").get_weights()


def fresh_student():
    model = mlp([16], "student")
    model.set_weights(initial)
    return model


validation = (x_val, y_val)
settings = dict(loss=LOSS, metrics=["accuracy"], alpha=0.5, temperature=4.0)
scratch = compile_classifier(fresh_student())
scratch_history = scratch.fit(x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=validation, verbose=2)

direct = fresh_student()
distiller = kd.Distiller(direct, teacher)
distiller.compile(optimizer=keras.optimizers.Adam(1e-3), **settings)
direct_history = distiller.fit(x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=validation, verbose=2)

# teacher -> assistant -> student: each stage a Distiller with a fresh optimizer.
assistant, student = mlp([128], "assistant"), fresh_student()
chain = kd.AssistantChain([teacher, assistant, student])
chain.compile(optimizer="adam", **settings)
assistant_history, student_history = chain.fit(
    x_train, y_train, epochs=EPOCHS, batch_size=128, validation_data=validation, verbose=2
)"""

TAKD_PLOT = """\
epochs = np.arange(1, EPOCHS + 1)
plot_curves(
    {
        "assistant (from the teacher)": (epochs, assistant_history.history["val_accuracy"]),
        "student, labels only": (epochs, scratch_history.history["val_accuracy"]),
        "student from the teacher": (epochs, direct_history.history["val_accuracy"]),
        "student from the assistant": (epochs, student_history.history["val_accuracy"]),
    },
    "Distillation across a large size gap",
)
print_test_accuracy([("teacher", teacher), ("assistant", assistant), ("student, labels only", scratch),
                     ("student from the teacher", direct), ("student from the assistant", student)], x_test)
x_export = x_test"""


def _notebook(setup, data, metadata, title, sections):
    cells = [
        new_markdown_cell(title),
        new_code_cell(setup),
        new_markdown_cell("## Data\nFashion-MNIST: 60,000 training and 10,000 test images of clothes."),
        new_code_cell(data),
        new_markdown_cell("## Models and helpers"),
        new_code_cell(HELPERS),
    ]
    for heading, source in sections:
        cells += [new_markdown_cell(heading), new_code_cell(source)]
    cells += [
        new_markdown_cell(
            "## Export the student\nAn ordinary Keras model: a `.keras` file and a SavedModel for serving."
        ),
        new_code_cell(EXPORT),
    ]
    return new_notebook(cells=cells, metadata=metadata)


def method_notebooks(setup, data, metadata):
    """{file name: notebook} for HintDistiller, FSPDistiller, MutualLearner and AssistantChain."""
    return {
        "02_hint_distiller.ipynb": _notebook(
            setup,
            data,
            metadata,
            (
                "# FitNets hints with `keras_distill.HintDistiller`\n\n"
                "Romero et al. (2015), [FitNets: Hints for Thin Deep Nets](https://arxiv.org/abs/1412.6550): "
                "a deeper, thinner student first learns to reproduce the teacher's intermediate features "
                "(the hint) through a learned regressor, then learns from the teacher's soft targets."
            ),
            [
                ("## Teacher, student from scratch, and the two FitNets stages", HINT_TRAIN),
                ("## Learning curves", HINT_PLOT),
                ("## The matched features", HINT_FEATURES),
                ("## Test accuracy", HINT_RESULTS),
            ],
        ),
        "03_fsp_distiller.ipynb": _notebook(
            setup,
            data,
            metadata,
            (
                "# Flow of solution procedure with `keras_distill.FSPDistiller`\n\n"
                "Yim et al. (2017), [A Gift from Knowledge Distillation](https://openaccess.thecvf.com/"
                "content_cvpr_2017/html/Yim_A_Gift_From_CVPR_2017_paper.html): the student first matches "
                "the teacher's FSP matrices (Gram matrices between two layers' feature maps), then trains "
                "on the labels, and learns faster than from scratch."
            ),
            [
                ("## Teacher, student from scratch, and the FSP stages", FSP_TRAIN),
                ("## Learning curves", FSP_PLOT),
                ("## The matched features: FSP matrices", FSP_FEATURES),
                ("## Test accuracy", FSP_RESULTS),
            ],
        ),
        "04_mutual_learner.ipynb": _notebook(
            setup,
            data,
            metadata,
            (
                "# Deep Mutual Learning with `keras_distill.MutualLearner`\n\n"
                "Zhang et al. (2018), [Deep Mutual Learning](https://arxiv.org/abs/1706.00384): no "
                "pretrained teacher; a cohort of peers trains together, each learning from the labels and "
                "from the others' predictions."
            ),
            [
                ("## Peers alone and mutual", DML_TRAIN),
                ("## Learning curves and test accuracy", DML_PLOT),
            ],
        ),
        "05_assistant_chain.ipynb": _notebook(
            setup,
            data,
            metadata,
            (
                "# Teacher assistants with `keras_distill.AssistantChain`\n\n"
                "Mirzadeh et al. (2020), [Improved Knowledge Distillation via Teacher Assistant]"
                "(https://arxiv.org/abs/1902.03393): when the student is far smaller than the teacher, "
                "distill through an assistant of middling size."
            ),
            [
                ("## Teacher, student alone, direct distillation and the chain", TAKD_TRAIN),
                ("## Learning curves and test accuracy", TAKD_PLOT),
            ],
        ),
    }
