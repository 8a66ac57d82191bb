"""Validators of plain arguments, one per kind, shared by every module.

A value of the wrong type raises `TypeError`; a value of the right type but
outside its range raises `ValueError`. Every message names the argument,
repeats what was received and shows a value that works:

    `alpha` must be a number in [0, 1]. Received: alpha=1.5. Use e.g. alpha=0.5.
"""

import math
import numbers


def check_number(value, argument, *, example, above=None, at_least=None, below=None, at_most=None, note=""):
    """`value` as a float, or an error unless it is a finite real number in range.

    Args:
        value: What was passed. Python and NumPy reals are accepted; `bool`
            is not a number here.
        argument: The argument's name, as the user spelled it.
        example: A value that works, shown in the message.
        above, at_least, below, at_most: Bounds (exclusive or inclusive).
        note: A sentence appended to a range error (what the bounds mean).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"`{argument}` must be a number. Received: {argument}={value!r} "
            f"(of type {type(value).__name__}). Use e.g. {argument}={example!r}."
        )
    number = float(value)
    in_range = (
        math.isfinite(number)
        and (above is None or number > above)
        and (at_least is None or number >= at_least)
        and (below is None or number < below)
        and (at_most is None or number <= at_most)
    )
    if not in_range:
        raise ValueError(
            f"`{argument}` must be a finite number{_describe(above, at_least, below, at_most)}. "
            f"Received: {argument}={value!r}. Use e.g. {argument}={example!r}." + (f" {note}" if note else "")
        )
    return number


def check_int(value, argument, *, example, at_least=None, at_most=None, note=""):
    """`value` as an int, or an error unless it is an integer in range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`{argument}` must be an int. Received: {argument}={value!r} "
            f"(of type {type(value).__name__}). Use e.g. {argument}={example!r}."
        )
    value = int(value)
    if (at_least is not None and value < at_least) or (at_most is not None and value > at_most):
        if at_least == 1:
            wanted = "a positive int" + ("" if at_most is None else f" <= {at_most}")
        else:
            wanted = f"an int{_describe(None, at_least, None, at_most)}"
        raise ValueError(
            f"`{argument}` must be {wanted}. "
            f"Received: {argument}={value!r}. Use e.g. {argument}={example!r}." + (f" {note}" if note else "")
        )
    return value


def check_choice(value, argument, choices, *, example=None, note=""):
    """`value`, or a `ValueError` unless it is one of `choices`."""
    if value not in choices:
        example = choices[0] if example is None else example
        raise ValueError(
            f"`{argument}` must be one of {tuple(choices)}. Received: "
            f"{argument}={value!r}. Use e.g. {argument}={example!r}." + (f" {note}" if note else "")
        )
    return value


def _describe(above, at_least, below, at_most):
    """The range, as " in [0, 1]", " > 0", " strictly between 0 and 1"."""
    if at_least is not None and at_most is not None:
        return f" in [{at_least:g}, {at_most:g}]"
    if above is not None and below is not None:
        return f" strictly between {above:g} and {below:g}"
    low = f"> {above:g}" if above is not None else (f">= {at_least:g}" if at_least is not None else None)
    high = f"< {below:g}" if below is not None else (f"<= {at_most:g}" if at_most is not None else None)
    parts = [part for part in (low, high) if part]
    return (" " + " and ".join(parts)) if parts else ""
