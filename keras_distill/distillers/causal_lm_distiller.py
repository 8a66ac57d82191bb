"""Token-level distillation of keras-hub causal language models without the
full `(batch, sequence, vocabulary)` logits.

A keras-hub `CausalLM` computes its logits as
`backbone.token_embedding(backbone(x), reverse=True)`. For a large
vocabulary those logits dominate memory: at a vocabulary of 262,144, a batch
of 8 sequences of 512 tokens holds 4.3 GB of float32 logits per model, and
the backward pass keeps them. `CausalLMDistiller` runs both backbones to
their hidden states, then computes the hard-label and distillation losses
chunk by chunk over the sequence, each chunk's logits rematerialized in the
backward pass (`keras.remat`), so only one chunk's logits exist at a time.
The loss and its gradients are those of `Distiller` on the full logits.
"""

import keras
from keras import ops

from keras_distill._training import step
from keras_distill._training.checks import models as checks
from keras_distill._training.guards import guarded
from keras_distill._validate import check_int
from keras_distill.distillers.distiller import Distiller
from keras_distill.losses.dist import DIST
from keras_distill.losses.lookup import get as get_distillation_loss


@keras.saving.register_keras_serializable(package="keras_distill")
class CausalLMDistiller(Distiller):
    """A `Distiller` for keras-hub causal LMs whose loss never holds the full
    logits.

    Same `compile` as `Distiller` (hard-label `loss`, `alpha`,
    `temperature`, `distillation_loss` such as `"kl"`, `"reverse_kl"`,
    `"jsd"`, `"dkd"`, `standardize_logits`), same inputs
    (`{"token_ids", "padding_mask"}`, next-token labels, per-token
    `sample_weight`), and the same loss and gradients, to float rounding.
    Only the loss trackers are reported: per-token metrics such as accuracy
    need the full logits (evaluate `distiller.student` for them).

    Args:
        student: a keras-hub `CausalLM` (`GPT2CausalLM`, `GemmaCausalLM`,
            ...) whose logits are `backbone.token_embedding(backbone(x),
            reverse=True)`.
        teacher: another, with the same vocabulary.
        chunk_size: int. Tokens of the sequence per chunk. Peak memory of
            the loss is about `batch * chunk_size * vocabulary` floats per
            model instead of `batch * sequence * vocabulary`.
        teacher_top_k: as in `Distiller`: distill from the teacher's k most
            likely tokens, chosen per chunk.
        name: name of the distiller.

    Examples:

    ```python
    distiller = keras_distill.CausalLMDistiller(student=student_lm, teacher=teacher_lm, chunk_size=128)
    distiller.compile(
        optimizer=keras.optimizers.AdamW(1e-4),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        alpha=0.5, temperature=1.0, distillation_loss="reverse_kl",
    )
    distiller.fit(inputs, next_tokens, sample_weight=padding_mask, epochs=1)
    ```
    """

    takes_separate_teacher_inputs = False
    takes_structured_outputs = False
    cached_outputs_refusal = (
        "CausalLMDistiller computes the teacher's logits chunk by chunk from its hidden states; it takes no "
        "cached teacher outputs. Pass the labels alone, or use keras_distill.Distiller with the cache."
    )

    def __init__(
        self,
        *models,
        student=None,
        teacher=None,
        chunk_size=128,
        teacher_top_k=None,
        name="causal_lm_distiller",
        **kwargs,
    ):
        checks.check_model_keywords(type(self).__name__, models, student, teacher)
        for role, model in (("student", student), ("teacher", teacher)):
            _check_causal_lm(model, role)
        super().__init__(student=student, teacher=teacher, teacher_top_k=teacher_top_k, name=name, **kwargs)
        self.chunk_size = check_int(chunk_size, "chunk_size", example=128, at_least=1)

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        if metrics:
            raise ValueError(
                f"CausalLMDistiller.compile() takes no `metrics`. Received: metrics={metrics!r}. Per-token "
                "metrics need the full (batch, sequence, vocabulary) logits that this distiller never builds; "
                "it reports `student_loss` and `distillation_loss`. Evaluate `distiller.student` for accuracy."
            )
        if getattr(loss, "ignore_class", None) is not None:
            raise ValueError(
                f"CausalLMDistiller takes no `ignore_class` in its loss (received ignore_class={loss.ignore_class}). "
                "Mark the tokens to skip with the inputs' `padding_mask` or a per-token `sample_weight` of 0."
            )
        distillation_loss = kwargs.get("distillation_loss", kwargs.get("distillation_loss_fn"))
        if distillation_loss is not None and isinstance(get_distillation_loss(distillation_loss), DIST):
            raise ValueError(
                "distillation_loss='dist' correlates classes across the whole batch of tokens, which a "
                "chunked loss cannot see at once. Use keras_distill.Distiller for DIST."
            )
        super().compile(optimizer=optimizer, loss=loss, metrics=None, **kwargs)

    def call(self, inputs, training=None):
        # The student's hidden states: the logits are built chunk by chunk
        # in `compute_loss`.
        return self.student.backbone(inputs, training=training)

    def predict(self, x, *args, **kwargs):
        """The student's logits (`distiller.student.predict`)."""
        with guarded(self.student) as guard:
            return self.student.predict(x, *args, **guard(kwargs))

    def response_terms(self, x, labels, cached, predictions, sample_weight):
        """The two terms over the whole sequence, chunk by chunk, from both
        models' hidden states (`predictions` is the student's)."""
        teacher_hidden = ops.stop_gradient(self.teachers[0].backbone(x, training=False))
        # Per-token weights that make each term the mean over real tokens,
        # exactly as `Distiller` weights its full-logit losses.
        loss_weights, _ = step.token_weights(x, predictions, sample_weight)
        hard, distillation = chunked_token_losses(
            predictions, teacher_hidden, labels, loss_weights, self._chunk_losses, self.chunk_size
        )
        tokens = ops.cast(ops.shape(predictions)[0] * ops.shape(predictions)[1], "float32")
        return hard / tokens, distillation / tokens, {}

    def _chunk_losses(self, student_hidden, teacher_hidden, labels, weights):
        """The weighted sums of the two per-token losses over one chunk."""
        student_logits = self.student.backbone.token_embedding(student_hidden, reverse=True)
        teacher_logits = self.teachers[0].backbone.token_embedding(teacher_hidden, reverse=True)
        output = self._plan.outputs[0]
        targets = output.targets.from_outputs([teacher_logits])
        loss = output.top_k_loss if targets.packed_top_k else output.distillation_loss

        def weighted_sum(loss_fn, y_true, y_pred):
            return ops.sum(ops.cast(loss_fn.call(y_true, y_pred), "float32") * weights)

        return step.response_losses(
            output.hard_loss, loss, labels, targets.values, student_logits, self._standardize_logits, weighted_sum
        )

    def get_config(self):
        return {**super().get_config(), "chunk_size": self.chunk_size}


def chunked_token_losses(student_hidden, teacher_hidden, labels, weights, chunk_losses, chunk_size):
    """Sums `chunk_losses(student_hidden, teacher_hidden, labels, weights)`
    over chunks of `chunk_size` positions of the sequence axis (1).

    The chunks run one after the other in a `keras.ops.scan` (XLA's loop on
    JAX), each rematerialized in the backward pass (`keras.remat`), so the
    logits a chunk builds are freed after its forward pass and rebuilt for
    its gradient: one chunk's logits exist at a time. A sequence that is not
    a multiple of `chunk_size` is padded with zero-weight positions.

    Returns:
        The two sums, float32 scalars.
    """
    length = student_hidden.shape[1]
    if length is None:
        raise ValueError(
            "The sequence length must be static for a chunked loss; pad the batches to a fixed length "
            "(keras-hub preprocessors do, with `sequence_length`)."
        )
    if labels is None:
        labels = ops.zeros(ops.shape(student_hidden)[:2], "int32")
    count = -(-length // chunk_size)
    padding = count * chunk_size - length

    def split(tensor, mode="constant"):
        """(batch, length, ...) as (chunks, batch, chunk_size, ...)."""
        if padding:
            # Hidden states are padded with copies of the last position
            # (zeros would give constant logits, whose standardization has
            # an infinite gradient); their weights are 0.
            if mode == "edge":
                tensor = ops.concatenate([tensor, ops.repeat(tensor[:, -1:], padding, axis=1)], axis=1)
            else:
                tensor = ops.pad(tensor, [[0, 0], [0, padding]] + [[0, 0]] * (len(tensor.shape) - 2))
        shape = ops.shape(tensor)
        tensor = ops.reshape(tensor, (shape[0], count, chunk_size, *shape[2:]))
        return ops.moveaxis(tensor, 1, 0)

    rematerialized = keras.remat(chunk_losses)
    weights = ops.cast(weights, "float32")
    zero = ops.zeros((), "float32")
    if keras.backend.backend() == "tensorflow":
        # `tf.recompute_grad` inside `tf.scan` loses the variables it reads
        # (TF 2.21: "... is in list of internal_captures but not in
        # internal_capture_to_output"): a Python loop of rematerialized
        # chunks, which TensorFlow's executor frees chunk by chunk too.
        totals = [zero, zero]
        for start in range(0, length, chunk_size):
            end = min(start + chunk_size, length)
            parts = rematerialized(
                student_hidden[:, start:end], teacher_hidden[:, start:end], labels[:, start:end], weights[:, start:end]
            )
            totals = [totals[0] + parts[0], totals[1] + parts[1]]
        return totals[0], totals[1]

    def body(totals, chunk):
        parts = rematerialized(*chunk)
        return (totals[0] + parts[0], totals[1] + parts[1]), None

    chunks = (split(student_hidden, "edge"), split(teacher_hidden, "edge"), split(labels), split(weights))
    (student_total, distillation_total), _ = ops.scan(body, (zero, zero), chunks)
    return student_total, distillation_total


def _check_causal_lm(model, role):
    backbone = getattr(model, "backbone", None)
    embedding = getattr(backbone, "token_embedding", None)
    if backbone is None or embedding is None:
        raise ValueError(
            f"CausalLMDistiller needs keras-hub CausalLM models (a `backbone` with a `token_embedding`); the "
            f"{role} {getattr(model, 'name', model)!r} is a {type(model).__name__}. For other models use "
            "keras_distill.Distiller, which takes their logits."
        )
