"""Normalizes and inspects the (teacher, student) layer pairs of a feature
distiller."""


def normalize_pairs(pairs):
    """`pairs` as a list of `(teacher_spec, student_spec)`, each spec a layer
    name or a tuple of names."""
    if (
        isinstance(pairs, (tuple, list))
        and len(pairs) == 2
        and all(isinstance(side, str) for side in pairs)
    ):
        pairs = [pairs]
    if not isinstance(pairs, (tuple, list)) or not pairs:
        raise ValueError(
            "`pairs` must be a non-empty list of (teacher_layer, "
            f"student_layer) pairs. Received: pairs={pairs!r}. Use e.g. "
            "pairs=[('teacher_block2', 'student_block2')]."
        )
    normalized = []
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                "Each entry of `pairs` must be a (teacher_layer, "
                f"student_layer) pair. Received: {pair!r} in pairs={pairs!r}."
            )
        normalized.append(tuple(_spec(side, pair) for side in pair))
    return normalized


def _spec(side, pair):
    if isinstance(side, str):
        return side
    if isinstance(side, (tuple, list)) and side and all(
        isinstance(name, str) for name in side
    ):
        return tuple(side)
    raise ValueError(
        "Each side of a pair must be a layer name or a tuple of layer names. "
        f"Received: {side!r} in the pair {pair!r}."
    )


def normalize_pair_weights(pair_weights, count):
    """One float >= 0 per pair; `None` gives `1 / count` each."""
    if pair_weights is None:
        return [1.0 / count] * count
    if isinstance(pair_weights, (int, float)):
        pair_weights = [pair_weights]
    pair_weights = list(pair_weights)
    if len(pair_weights) != count or any(
        isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0
        for weight in pair_weights
    ):
        raise ValueError(
            f"`pair_weights` must be {count} number(s) >= 0, one per pair. "
            f"Received: pair_weights={pair_weights!r}."
        )
    return [float(weight) for weight in pair_weights]


def pair_shapes(pairs, teacher_extractor, student_extractor):
    """For each pair, the (teacher, student) static feature shapes: a tuple
    for a single layer, a list of tuples for several."""

    def shape(extractor, spec):
        outputs = extractor.output
        if isinstance(spec, str):
            return tuple(outputs[spec].shape)
        return [tuple(outputs[name].shape) for name in spec]

    return [
        (shape(teacher_extractor, teacher), shape(student_extractor, student))
        for teacher, student in pairs
    ]
