"""On-policy distillation of causal language models (GKD, Agarwal et al.,
ICLR 2024).

Off-policy token-level distillation trains the student on sequences from
the data, which it would not generate itself; at inference its own tokens
take it where it never learned. `OnPolicyDistiller` replaces, with
probability `lmbda` per batch, each sequence's continuation by one the
student samples itself, has the teacher score it, and minimizes the
generalized Jensen-Shannon divergence between the two models' next-token
distributions on the generated tokens only.
"""

import keras
from keras import ops

from keras_distill import _compat
from keras_distill._training import step
from keras_distill._training.checks import models as checks
from keras_distill._validate import check_int
from keras_distill._validate import check_number
from keras_distill.distillers.distiller import Distiller
from keras_distill.losses.divergences import GeneralizedJSD
from keras_distill.losses.lookup import get as get_distillation_loss
from keras_distill.sampling import end_token_ids
from keras_distill.sampling import prompt_and_generated
from keras_distill.sampling import sample_continuations


@keras.saving.register_keras_serializable(package="keras_distill")
class OnPolicyDistiller(Distiller):
    """Generalized knowledge distillation (GKD) for keras-hub causal LMs.

    Each training batch is, with probability `lmbda`, made on-policy: the
    prompt of every sequence is kept and the rest of the sequence is
    replaced by the student's own samples (drawn from
    `softmax(logits / sampling_temperature)`, left to right, through the
    student's key/value cache, without gradient). The teacher scores the
    sequence, and the loss is the distillation loss (generalized JSD with
    `beta` by default) on the positions whose next token was generated,
    prompt and padding masked. Otherwise the batch is used as given
    (off-policy, supervised distillation). Evaluation always uses the
    data as given. Cost: an on-policy batch adds one cached decoding step
    per position; every training batch runs the student forward once more
    (on the batch chosen, outside the branch, where the JAX backend allows
    dropout's random state to change).

    The data is what `keras_distill.Distiller` takes for token-level
    distillation: `{"token_ids", "padding_mask"}`, labels (unused by the
    loss; they may be omitted), and a per-token `sample_weight` that marks
    the tokens to learn. The prompt of a sequence is everything up to the
    first position with a weight (the first token whose successor is
    learned): the output of `keras_distill.generate_distillation_data`, or
    a keras-hub preprocessor's `{"prompts", "responses"}` output, marks it
    so. Without a `sample_weight` the prompt is the first token alone.

    Args:
        student: a keras-hub `CausalLM` (with `call_with_cache`).
        teacher: a keras-hub `CausalLM` (or any model of the same inputs
            and vocabulary) that scores the student's samples.
        lmbda: float in [0, 1]. Fraction of batches made on-policy (GKD's
            lambda). 0 is supervised token-level distillation.
        sampling_temperature: float >= 0. Temperature of the student's
            sampling; 0 samples greedily (the most likely token).
        end_token_id: optional int, or a list of ints (chat models have
            several stop tokens). A generated end token ends the sequence:
            the positions after it are padding, not learned. Each id must be
            below the vocabulary size.
        seed: optional int, for the sampling and the per-batch choice.
        name: name of the distiller.

    `compile` is `Distiller.compile` without the hard-label terms: the
    loss is the distillation loss alone, `beta` builds
    `keras_distill.losses.GeneralizedJSD(beta)` (the default, beta 0.5),
    or pass another `distillation_loss` (`"kl"`, `"reverse_kl"`, ...).

    Examples:

    ```python
    distiller = keras_distill.OnPolicyDistiller(student=student_lm, teacher=teacher_lm, lmbda=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-4), beta=0.5, temperature=1.0)
    distiller.fit(x, y, sample_weight=response_mask, epochs=1)
    ```

    Reference:
        - [Agarwal et al., 2024](https://arxiv.org/abs/2306.13649)
    """

    takes_separate_teacher_inputs = False
    takes_structured_outputs = False
    cached_outputs_refusal = (
        "OnPolicyDistiller has the live teacher score the student's own samples; cached teacher outputs do "
        "not cover them. Fit on the inputs and labels alone, or use keras_distill.Distiller with the cache."
    )

    def __init__(
        self,
        *models,
        student=None,
        teacher=None,
        lmbda=0.5,
        sampling_temperature=1.0,
        end_token_id=None,
        seed=None,
        name="on_policy_distiller",
        **kwargs,
    ):
        checks.check_model_keywords(type(self).__name__, models, student, teacher)
        if not _compat.generates_with_cache(student):
            raise ValueError(
                "OnPolicyDistiller samples from the student through its key/value cache, so the student must "
                f"be a keras-hub CausalLM (GPT2CausalLM, GemmaCausalLM, ...). Received {type(student).__name__} "
                f"{getattr(student, 'name', '')!r}. For other models use keras_distill.Distiller."
            )
        self.lmbda = check_number(
            lmbda,
            "lmbda",
            example=0.5,
            at_least=0.0,
            at_most=1.0,
            note="It is the fraction of batches the student generates.",
        )
        self.sampling_temperature = check_number(
            sampling_temperature, "sampling_temperature", example=1.0, at_least=0.0, note="0 samples greedily."
        )
        end_ids = end_token_ids(end_token_id, student)
        if seed is not None:
            seed = check_int(seed, "seed", example=0, at_least=0)
        super().__init__(student=student, teacher=teacher, name=name, **kwargs)
        self.end_token_id = end_token_id
        self._end_ids = end_ids
        self.seed = seed
        self._sampling_seed = keras.random.SeedGenerator(seed, name="sampling_seed")

    def compile(
        self,
        optimizer="adam",
        loss=None,
        metrics=None,
        *,
        alpha=None,
        beta=None,
        temperature=None,
        distillation_loss=None,
        **kwargs,
    ):
        if loss is not None or alpha not in (None, 0, 0.0):
            raise ValueError(
                "OnPolicyDistiller trains on the teacher's scores alone (GKD has no hard-label term): the "
                f"labels of a generated sequence would be the student's own samples. Received loss={loss!r}, "
                f"alpha={alpha!r}. Leave both out, or use keras_distill.Distiller for a hard-label term."
            )
        if beta is not None and distillation_loss is not None:
            raise ValueError(
                f"Pass `beta` or `distillation_loss`, not both. Received beta={beta!r} and "
                f"distillation_loss={distillation_loss!r}; for the generalized JSD pass beta alone."
            )
        if distillation_loss is None:
            distillation_loss = GeneralizedJSD(
                beta=0.5 if beta is None else beta, temperature=1.0 if temperature is None else temperature
            )
        if getattr(get_distillation_loss(distillation_loss), "needs_labels", False):
            raise ValueError(
                f"distillation_loss={distillation_loss!r} needs the labels, which a generated sequence does not "
                "have. Use a divergence: the generalized JSD (`beta`), 'kl' or 'reverse_kl'."
            )
        super().compile(
            optimizer=optimizer,
            loss=None,
            metrics=metrics,
            alpha=0.0,
            temperature=temperature,
            distillation_loss=distillation_loss,
            **kwargs,
        )

    def batch_to_learn(self, x, y_pred, sample_weight, training=True):
        """In training, with probability `lmbda`, the student's own
        continuations of the batch's prompts; else the batch as given."""
        if training and self.lmbda > 0:
            x, sample_weight, y_pred = self._maybe_on_policy(x, y_pred, sample_weight, training)
        return x, y_pred, sample_weight

    def _maybe_on_policy(self, x, student_logits, sample_weight, training):
        """`(inputs, per-token weights, student logits)` of the batch to
        learn from: the student's own continuations with probability
        `lmbda`, else the batch as given."""
        _, weights = step.token_weights(x, student_logits, sample_weight)
        x = {"token_ids": x["token_ids"], "padding_mask": ops.cast(x["padding_mask"], "bool")}
        on_policy = keras.random.uniform((), seed=self._sampling_seed) < self.lmbda
        seed = ops.convert_to_tensor(self._sampling_seed.state.value)

        def generated():
            return self.on_policy_batch(x, weights, seed)

        def given():
            return x, weights, seed

        x, weights, seed = ops.cond(on_policy, generated, given)
        # Assigned outside the branches, and the student run outside them
        # too: a JAX branch cannot change state (the seed, dropout's seeds).
        self._sampling_seed.state.assign(seed)
        return x, weights, self.student(x, training=training)

    def on_policy_batch(self, x, weights, seed):
        """The student's continuations of the prompts of a batch.

        Args:
            x: `{"token_ids", "padding_mask"}`, `(batch, length)`.
            weights: per-token weights `(batch, length)`; the prompt of a
                row ends at its first non-zero weight.
            seed: the sampling seed state (`SeedGenerator.state`'s value).

        Returns:
            `(inputs, weights, seed)`: the new `{"token_ids",
            "padding_mask"}`, weight 1 at every position whose next token
            was generated (0 elsewhere), and the advanced seed state.
        """
        token_ids = x["token_ids"]
        prompt, _ = prompt_and_generated(weights, token_ids, self._end_ids)
        tokens, seed = sample_continuations(
            self.student, token_ids, prompt, self._sampling_seed, seed, self.sampling_temperature
        )
        _, real = prompt_and_generated(weights, tokens, self._end_ids)
        padding_mask = ops.where(prompt, x["padding_mask"], real)
        new_weights = ops.concatenate([real[:, 1:], ops.zeros_like(real[:, :1])], axis=1)
        return {"token_ids": tokens, "padding_mask": padding_mask}, ops.cast(new_weights, "float32"), seed

    def get_config(self):
        return {
            **super().get_config(),
            "lmbda": self.lmbda,
            "sampling_temperature": self.sampling_temperature,
            "end_token_id": self.end_token_id,
            "seed": self.seed,
        }
