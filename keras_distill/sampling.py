"""Sampling from a keras-hub causal LM inside a training step: where the
prompts end, what was generated, and the student's continuations through
its key/value cache. Shared by `OnPolicyDistiller` (training) and
`on_policy_divergence` (evaluation)."""

import keras
from keras import ops

from keras_distill import _compat
from keras_distill._validate import check_int


def end_token_ids(end_token_id, student):
    """`end_token_id` (None, an int or a list of ints) as a list of ids,
    each checked against the student's vocabulary where it is known."""
    if end_token_id is None:
        return []
    many = isinstance(end_token_id, (list, tuple))
    if many and not end_token_id:
        raise ValueError(
            "`end_token_id` is an empty list. Pass the id of the end token, a list of stop token ids, or None."
        )
    ids = list(end_token_id) if many else [end_token_id]
    vocabulary = getattr(getattr(getattr(student, "backbone", None), "token_embedding", None), "input_dim", None)
    for index, value in enumerate(ids):
        argument = f"end_token_id[{index}]" if many else "end_token_id"
        note = f"The student's vocabulary has {vocabulary} tokens." if vocabulary else ""
        maximum = None if vocabulary is None else vocabulary - 1
        ids[index] = check_int(value, argument, example=2, at_least=0, at_most=maximum, note=note)
    return ids


def prompt_and_generated(weights, tokens, end_ids):
    """`(prompt, generated)`, bool `(batch, length)`: the prompt of each row
    ends at its first non-zero weight (inclusive); the positions after it
    are generated, up to and including the first of `end_ids` in `tokens`."""
    length = tokens.shape[1]
    positions = ops.arange(length)[None, :]
    learned = ops.not_equal(weights, 0)
    first = ops.argmax(ops.cast(learned, "int32"), axis=1)
    first = ops.where(ops.any(learned, axis=1), first, length)
    prompt = ops.less_equal(positions, first[:, None])
    generated = ops.logical_not(prompt)
    if end_ids:
        ids = ops.convert_to_tensor(end_ids, dtype=tokens.dtype)
        is_end = ops.any(ops.equal(tokens[..., None], ids), axis=-1)
        ends = ops.cast(ops.logical_and(is_end, generated), "int32")
        after_end = ops.greater(ops.cumsum(ends, axis=1) - ends, 0)
        generated = ops.logical_and(generated, ops.logical_not(after_end))
    return prompt, generated


def sample_continuations(causal_lm, token_ids, prompt_mask, seed_generator, seed, temperature):
    """`token_ids` with every position outside `prompt_mask` replaced, left
    to right, by a token sampled from `causal_lm` given the tokens before
    it (greedy for `temperature == 0`), through its key/value cache.

    No gradient flows through the samples: the loop reads the model's
    variables as constants (`ops.stop_gradient`), which also lets JAX
    differentiate a training step that contains it. The random state is
    carried through the loop and returned, never assigned inside it.

    Returns:
        `(tokens, seed)`: int tokens `(batch, length)` and the seed state.
    """
    variables = causal_lm.variables
    values = [ops.stop_gradient(ops.convert_to_tensor(variable.value)) for variable in variables]
    with keras.StatelessScope(state_mapping=list(zip(variables, values))):
        cache = ops.stop_gradient(_compat.build_generation_cache(causal_lm, token_ids))
    batch_size = ops.shape(token_ids)[0]

    def body(index, carry):
        tokens, cache, seed = carry
        mapping = list(zip(variables, values)) + [(seed_generator.state, seed)]
        with keras.StatelessScope(state_mapping=mapping) as scope:
            previous = ops.slice(tokens, [0, index - 1], [batch_size, 1])
            logits, _, cache = causal_lm.call_with_cache(previous, cache, index - 1)
            logits = ops.cast(logits[:, 0], "float32")
            if temperature == 0:
                sampled = ops.argmax(logits, axis=-1)
            else:
                sampled = keras.random.categorical(logits / temperature, 1, seed=seed_generator)[:, 0]
                seed = scope.get_current_value(seed_generator.state)
        current = ops.take(tokens, index, axis=1)
        sampled = ops.where(ops.take(prompt_mask, index, axis=1), current, ops.cast(sampled, tokens.dtype))
        tokens = ops.slice_update(tokens, [0, index], sampled[:, None])
        return tokens, ops.stop_gradient(cache), seed

    tokens, _, seed = ops.fori_loop(1, token_ids.shape[1], body, (token_ids, cache, seed))
    return ops.stop_gradient(tokens), seed
