"""What on-policy distillation optimizes, measured: the teacher's judgement
of the student's own samples.

Held-out perplexity scores the student on the data's continuations; on-policy
distillation (GKD; Qwen3; Thinking Machines' on-policy distillation) trains it
on its own. Its users measure the second: sample the student's continuations
of held-out prompts, and score every sampled token with the teacher, as the
per-token reverse KL divergence KL(student || teacher) of the next-token
distributions (what the on-policy loss with beta = 1 minimizes) and the
teacher's negative log-likelihood of the sampled tokens.
"""

import keras
import numpy as np
from keras import ops

from keras_distill._validate import check_int
from keras_distill._validate import check_number
from keras_distill.sampling import end_token_ids
from keras_distill.sampling import prompt_and_generated
from keras_distill.sampling import sample_continuations


def on_policy_divergence(
    student,
    teacher,
    x,
    sample_weight=None,
    *,
    batch_size=32,
    sampling_temperature=1.0,
    end_token_id=None,
    seed=0,
):
    """The teacher's per-token judgement of the student's own samples.

    The prompt of each sequence of `x` is kept (everything up to its first
    position with a non-zero `sample_weight`, as `OnPolicyDistiller` reads
    it; the first token alone without `sample_weight`), the rest is sampled
    by the student, and at every sampled token:

        reverse_kl  = KL(student || teacher) of the next-token
                      distributions that predicted it (temperature 1);
        teacher_nll = -log p_teacher(token | what came before).

    Args:
        student: a keras-hub `CausalLM` (with `call_with_cache`).
        teacher: a model of the same inputs and vocabulary giving logits.
        x: `{"token_ids", "padding_mask"}` of held-out sequences, `(n,
            length)`: their prompts are continued.
        sample_weight: per-token weights `(n, length)` marking the tokens
            after each prompt (the `sample_weight` of
            `keras_distill.generate_distillation_data`), or None.
        batch_size: int, sequences sampled at a time.
        sampling_temperature: float >= 0, the student's sampling
            temperature (0: greedy).
        end_token_id: None, an int or a list of ints: sampled tokens after
            the first of these are not scored.
        seed: int, the sampling seed: the same seed samples the same
            continuations from the same student.

    Returns:
        A dict of floats: `"reverse_kl"` and `"teacher_nll"` (means over
        the sampled tokens) and `"tokens"` (how many were scored).
    """
    batch_size = check_int(batch_size, "batch_size", example=32, at_least=1)
    sampling_temperature = check_number(sampling_temperature, "sampling_temperature", example=1.0, at_least=0.0)
    end_ids = end_token_ids(end_token_id, student)
    token_ids = np.asarray(x["token_ids"])
    padding_mask = np.asarray(x["padding_mask"]).astype(bool)
    weights = padding_mask.astype("float32") if sample_weight is None else np.asarray(sample_weight, "float32")
    generator = keras.random.SeedGenerator(seed)
    totals = {"reverse_kl": 0.0, "teacher_nll": 0.0, "tokens": 0.0}
    for start in range(0, len(token_ids), batch_size):
        batch = slice(start, start + batch_size)
        ids = ops.convert_to_tensor(token_ids[batch])
        prompt, _ = prompt_and_generated(ops.convert_to_tensor(weights[batch]), ids, end_ids)
        tokens, state = sample_continuations(
            student, ids, prompt, generator, generator.state.value, sampling_temperature
        )
        generator.state.assign(state)
        _, generated = prompt_and_generated(ops.convert_to_tensor(weights[batch]), tokens, end_ids)
        mask = ops.where(prompt, ops.convert_to_tensor(padding_mask[batch]), generated)
        inputs = {"token_ids": tokens, "padding_mask": mask}
        # Position i predicts token i + 1: scored where that token was sampled.
        scored = ops.cast(ops.concatenate([generated[:, 1:], ops.zeros_like(generated[:, :1])], axis=1), "float32")
        student_log_probs = ops.log_softmax(ops.cast(student(inputs, training=False), "float32"), axis=-1)
        teacher_log_probs = ops.log_softmax(ops.cast(teacher(inputs, training=False), "float32"), axis=-1)
        reverse_kl = ops.sum(ops.exp(student_log_probs) * (student_log_probs - teacher_log_probs), axis=-1)
        following = ops.concatenate([tokens[:, 1:], tokens[:, :1]], axis=1)
        picked = ops.take_along_axis(teacher_log_probs, ops.cast(following, "int32")[..., None], axis=-1)[..., 0]
        totals["reverse_kl"] += float(ops.sum(reverse_kl * scored))
        totals["teacher_nll"] += float(ops.sum(-picked * scored))
        totals["tokens"] += float(ops.sum(scored))
    if totals["tokens"] == 0:
        raise ValueError(
            "on_policy_divergence found no token to sample: every position of `x` is prompt or padding. "
            "Pass held-out sequences whose sample_weight marks the continuation after each prompt (e.g. "
            "from keras_distill.generate_distillation_data), or none, to continue after the first token."
        )
    count = totals["tokens"]
    return {"reverse_kl": totals["reverse_kl"] / count, "teacher_nll": totals["teacher_nll"] / count, "tokens": count}


class OnPolicyEvaluation(keras.callbacks.Callback):
    """Logs `on_policy_divergence` of the distiller's student at the end of
    every epoch (`val_on_policy_reverse_kl`, `val_on_policy_teacher_nll`),
    where `History`, `EarlyStopping` and `ModelCheckpoint` read it.

    Args:
        x: `{"token_ids", "padding_mask"}` of held-out sequences.
        sample_weight: their per-token weights marking the continuations,
            or None.
        teacher: the judge; defaults to the distiller's first teacher.
        every: int, evaluate every `every` epochs (and at the last).
        **kwargs: `batch_size`, `sampling_temperature`, `end_token_id`,
            `seed` of `on_policy_divergence` (the seed is the same every
            epoch, so epochs are compared on the same random draws).

    Example:

    ```python
    distiller.fit(
        x, y, sample_weight=w, epochs=3,
        callbacks=[keras_distill.callbacks.OnPolicyEvaluation(x_val, w_val)],
    )
    ```
    """

    def __init__(self, x, sample_weight=None, *, teacher=None, every=1, **kwargs):
        super().__init__()
        self.x, self.sample_weight, self.teacher = x, sample_weight, teacher
        self.every = check_int(every, "every", example=1, at_least=1)
        self.kwargs = kwargs

    def on_epoch_end(self, epoch, logs=None):
        last = self.params and epoch + 1 == self.params.get("epochs")
        if (epoch + 1) % self.every and not last:
            return
        student = getattr(self.model, "student", self.model)
        teacher = self.teacher or self.model.teachers[0]
        values = on_policy_divergence(student, teacher, self.x, self.sample_weight, **self.kwargs)
        if logs is not None:
            logs["val_on_policy_reverse_kl"] = values["reverse_kl"]
            logs["val_on_policy_teacher_nll"] = values["teacher_nll"]
