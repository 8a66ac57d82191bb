"""A model's outputs, and the losses `compile` gives each: the output plan.

A student returns one tensor, a dict of tensors or a list of them; its
teacher returns the same. Every distiller step goes through one plan:

    alpha * sum_o loss_weights[o] * loss[o](y[o], student[o])
    + (1 - alpha) * sum_o distillation_loss_weights[o] * D_o(teacher[o], student[o])

over the outputs named in each. One tensor is the plan with one output,
named None, whose weights are 1: the classic `alpha * hard + (1 - alpha) *
distillation`. Outputs are named by their dict keys, or for a list by the
functional model's `output_names` (or their position).

`resolve` turns `compile`'s arguments into a plan before anything changes;
`OutputPlan.bind` checks it against the models' outputs once they are known
(at construction for functional models, on one example for subclassed ones).
"""

from keras_distill._training import step
from keras_distill._training.checks import arguments
from keras_distill.losses.base import LogitLoss
from keras_distill.losses.soft_targets import SoftenedLoss
from keras_distill.losses.top_k_divergence import top_k_counterpart
from keras_distill.losses.weighted_sum import WeightedSum


def symbolic(model):
    """A model's symbolic outputs, in their structure, where they are known
    without running it (functional and Sequential models), else None."""
    try:
        output = model.output
    except (AttributeError, ValueError):
        pass
    else:
        # `keras.Model(inputs, [logits])` has a list of one output: one tensor.
        return output[0] if isinstance(output, (list, tuple)) and len(output) == 1 else output
    try:
        listed = model.outputs  # a Sequential model has no `output` until called
    except (AttributeError, ValueError):
        return None
    if not listed:
        return None
    return listed[0] if len(listed) == 1 else list(listed)


def of_model(model):
    """The structure of a model's outputs where it is known without running
    it (functional and Sequential models), else None (a subclassed model)."""
    values = symbolic(model)
    return None if values is None else step.of_value(values, getattr(model, "output_names", None))


def describe(structure):
    if structure.kind == "single":
        return "a single tensor"
    return f"a {structure.kind} of outputs {list(structure.names)}"


def output_tensor(model, name, structure):
    """The symbolic tensor of output `name`, or None if unknown."""
    values = symbolic(model)
    return None if values is None else step.named(values, structure).get(name)


class Output:
    """One output's losses, as `compile` resolved them.

    Args:
        name: The output's name (None for a model's single output).
        hard: `(loss, weight)` for an output trained on labels, else None.
        distillation: `(loss, weight)` for an output distilled, else None;
            the loss is the distiller's own copy, reading its temperature.
        given: The `distillation_loss` compile was given for it.
    """

    def __init__(self, name, hard, distillation, given=None):
        self.name = name
        self.given = given
        self.hard_loss, self.hard_weight = hard or (None, 0.0)
        self.distillation_loss, self.distillation_weight = distillation or (None, 0.0)
        self.needs_labels = self.hard_loss is not None or getattr(self.distillation_loss, "needs_labels", False)
        #: What the distillation loss computes on top-k teacher outputs (None: it cannot).
        self.top_k_loss = top_k_counterpart(self.distillation_loss)
        #: The `step.TeacherTargets` of this output, set once the models are known.
        self.targets = None

    def owner(self, student):
        if self.name is None:
            return f"the student {student.name!r}"
        return f"the student's output {self.name!r}"


class OutputPlan:
    """The outputs of a distiller's models and the losses of each.

    `structure` is what compile's arguments say (None: several outputs of
    names not yet known); `bound` whether it was checked against the
    models' outputs (`bind`).
    """

    def __init__(self, structure, outputs):
        self.structure = structure
        self.outputs = outputs
        self.trained_on_labels = [output for output in outputs if output.hard_loss is not None]
        self.distilled = [output for output in outputs if output.distillation_loss is not None]
        self.bound = False

    @property
    def single(self):
        return self.structure == step.SINGLE

    def bind(self, structure, student):
        """Checks the plan's output names against the models' outputs, once
        known (at construction, or on one example of a subclassed model)."""
        if self.single and structure != step.SINGLE:
            raise ValueError(
                f"The student {student.name!r} returns {describe(structure)}, but compile() got one loss for "
                "a single output. Compile with a loss per output: loss={name: loss, ...}, "
                "distillation_loss={name: loss, ...}."
            )
        if structure.kind == "list":
            # Positions, as for a functional model's list, where compile
            # could not know the names (a subclassed model's "0", "1", ...).
            for output in self.outputs:
                if isinstance(output.name, int) and 0 <= output.name < len(structure.names):
                    output.name = structure.names[output.name]
        for argument, names in (
            ("loss", [output.name for output in self.trained_on_labels]),
            ("distillation_loss", [output.name for output in self.distilled]),
        ):
            unknown = [name for name in names if name not in structure.names]
            if unknown:
                raise ValueError(
                    f"`{argument}` names outputs the models do not have: {unknown}. The student "
                    f"{student.name!r} returns {describe(structure)}. Key {argument} by those names."
                )
        self.structure = structure
        self.bound = True


def resolve(structure, *, loss, loss_weights, distillation_loss, distillation_loss_weights, alpha, temperature):
    """An `OutputPlan` from compile's arguments, checked before anything
    changes.

    `structure` is the student's (None when not known before a step);
    losses are given per output (dicts, or lists by position for a list of
    outputs) unless it is `SINGLE`, or unknown and given one loss.
    Each distillation loss is the distiller's own copy, reading
    `temperature`, its variable.
    """
    if structure is None and not any(_per_output(value) for value in (loss, distillation_loss)):
        structure = step.SINGLE
    if structure == step.SINGLE:
        return _resolve_single(loss, loss_weights, distillation_loss, distillation_loss_weights, alpha, temperature)
    names = None if structure is None else structure.names
    positional = names if structure is not None and structure.kind == "list" else None
    hard = _by_output("loss", loss, names, positional, "keras.losses.SparseCategoricalCrossentropy(from_logits=True)")
    if not hard and alpha > 0:
        raise ValueError(
            f"compile() got no `loss` for any output with alpha={alpha}. Pass loss={{name: loss, ...}} for the "
            "outputs trained on labels, or alpha=0.0 to train on the teacher's outputs alone."
        )
    hard_weights = _loss_weights(loss_weights, positional, hard)
    distilled = _by_output("distillation_loss", distillation_loss, names, positional, "'kl'")
    if not distilled:
        raise ValueError(
            "A model with several outputs needs its distillation losses by output name: "
            "compile(distillation_loss={name: loss, ...}), e.g. distillation_loss={'class': 'kl', "
            f"'box': keras.losses.MeanSquaredError()}}. Received: distillation_loss={distillation_loss!r}. "
            "Outputs not named train on their labels only."
        )
    weights = _distillation_weights(distillation_loss_weights, distilled)
    outputs = {}
    for name in [*hard, *[name for name in distilled if name not in hard]]:
        hard_part = (arguments.resolve_hard_loss(hard[name]), hard_weights[name]) if name in hard else None
        distilled_part = None
        if name in distilled:
            resolved, weight = _resolve_weighted(distilled[name], weights.get(name), name)
            distilled_part = (build_distillation_loss(resolved, temperature), weight)
        outputs[name] = Output(name, hard_part, distilled_part, distilled.get(name))
    return OutputPlan(structure, list(outputs.values()))


def _resolve_single(loss, loss_weights, distillation_loss, distillation_loss_weights, alpha, temperature):
    if loss_weights is not None:
        raise ValueError(
            "Distiller.compile() takes no `loss_weights`. Received: "
            f"loss_weights={loss_weights!r}. Use `alpha` to "
            "weight the hard-label and distillation terms."
        )
    given = "kl" if distillation_loss is None else distillation_loss
    resolved = arguments.resolve_distillation_loss(given, distillation_loss_weights)
    hard = arguments.resolve_hard_loss(loss)
    if hard is None and alpha > 0:
        raise ValueError(
            f"compile() got loss=None with alpha={alpha}: the hard-label "
            "term has no loss. Pass e.g. loss=keras.losses."
            "SparseCategoricalCrossentropy(from_logits=True), or set "
            "alpha=0.0 to train on the teacher's outputs alone."
        )
    distillation = (build_distillation_loss(resolved, temperature), 1.0)
    return OutputPlan(step.SINGLE, [Output(None, None if hard is None else (hard, 1.0), distillation, given)])


def _per_output(value):
    """Whether a compile argument is given per output (a dict that is not
    a serialized Keras object)."""
    return isinstance(value, dict) and not ("class_name" in value and "config" in value)


def is_per_output(*values):
    return any(_per_output(value) for value in values)


def _by_output(argument, value, names, positional, example):
    """`{name: value}` from a dict (or, for a list of outputs named
    `positional`, a list by position); names are checked at `bind`."""
    if value is None:
        return {}
    if isinstance(value, (list, tuple)) and positional is not None and len(value) == len(positional):
        value = dict(zip(positional, value))
    if not isinstance(value, dict):
        raise ValueError(
            f"The models have several outputs{'' if names is None else ' ' + str(list(names))}: `{argument}` "
            f"is given per output, a dict by output name. Received: {argument}={value!r}. Use e.g. "
            f"{argument}={{{(names or ['name'])[0]!r}: {example}}}."
        )
    if positional is not None:
        value = {(positional[key] if isinstance(key, int) else key): item for key, item in value.items()}
    return {name: item for name, item in value.items() if item is not None}


def _loss_weights(weights, positional, losses):
    if weights is None:
        return {name: 1.0 for name in losses}
    if isinstance(weights, (list, tuple)) and positional is not None and len(weights) == len(positional):
        weights = dict(zip(positional, weights))
    if not isinstance(weights, dict):
        raise ValueError(
            f"`loss_weights` is a dict by output name (or a list, one per output). Received: loss_weights={weights!r}."
        )
    unknown = sorted(set(weights) - set(losses))
    if unknown:
        raise ValueError(
            f"`loss_weights` names {unknown}, which have no `loss`. Received loss for {sorted(losses)}. Name the "
            "same outputs in both."
        )
    return {name: arguments.check_loss_weight(weights.get(name, 1.0), f"loss_weights[{name!r}]") for name in losses}


def _distillation_weights(weights, distilled):
    weights = weights or {}
    if not isinstance(weights, dict):
        raise ValueError(
            "With distillation losses by output name, `distillation_loss_weights` is a dict by the same names "
            f"(a number, or a list for a list of losses). Received: distillation_loss_weights={weights!r}."
        )
    unknown = sorted(set(weights) - set(distilled))
    if unknown:
        raise ValueError(
            f"`distillation_loss_weights` names {unknown}, which have no distillation loss. Received: "
            f"distillation_loss={sorted(distilled)!r}. Name the same outputs in both."
        )
    return weights


def _resolve_weighted(spec, weight, name):
    """One output's distillation loss (one, or a list with its inner
    weights) and the weight of its term."""
    if isinstance(weight, (list, tuple)) or isinstance(spec, (list, tuple)):
        inner = weight if isinstance(weight, (list, tuple)) else None
        outer = 1.0 if inner is not None or weight is None else weight
        specs = spec if isinstance(spec, (list, tuple)) else [spec]
        resolved = arguments.resolve_distillation_loss(list(specs), inner)
    else:
        outer = 1.0 if weight is None else weight
        resolved = arguments.resolve_distillation_loss(spec, None)
    return resolved, arguments.check_loss_weight(outer, f"distillation_loss_weights[{name!r}]")


def build_distillation_loss(loss, temperature):
    """The distiller's own copy of `loss` (one output's resolved
    `distillation_loss`), reading `temperature`, the distiller's variable.

    A `keras_distill.losses.LogitLoss` takes logits and is rebuilt from its
    config with the variable as its temperature (the user's object is not
    changed); Keras' regression losses compare the outputs as they are; any
    other Keras loss takes probabilities and is wrapped in
    `keras_distill.losses.SoftenedLoss`, which softens both models' logits
    and applies T^2, as in the keras.io tutorial. A list is their
    `keras_distill.losses.WeightedSum`, each member of it passed as an
    object keeping its own temperature.
    """
    if isinstance(loss, arguments.LossList):
        losses = [
            build_distillation_loss(member, member.temperature if own else temperature)
            for member, own in zip(loss.losses, loss.own_temperature)
        ]
        return WeightedSum(losses, loss.weights)
    if isinstance(loss, arguments.REGRESSION_LOSSES):
        return loss
    if not isinstance(loss, LogitLoss):
        if getattr(loss, "from_logits", False) is True:
            raise ValueError(
                f"distillation_loss={type(loss).__name__}(from_logits=True): a Keras loss given as the "
                "distillation loss receives the softened probabilities of both models (as in the keras.io "
                "tutorial), which from_logits=True would read as logits. Use "
                "distillation_loss='cross_entropy' (soft-target cross-entropy on logits), or "
                f"{type(loss).__name__}(from_logits=False)."
            )
        return SoftenedLoss(loss, temperature=temperature)
    if not loss.uses_temperature:
        return loss
    return type(loss).from_config({**loss.get_config(), "temperature": temperature})
