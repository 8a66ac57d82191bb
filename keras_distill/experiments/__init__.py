"""Reproductions of the papers' claims on Fashion-MNIST.

`keras-distill reproduce NAME [--seeds 3] [--quick]`, or from Python:

```python
from keras_distill import experiments
results = experiments.reproduce(["hinton"], seeds=3, output="docs")
```
"""

import importlib
import os

from keras_distill._validate import check_int

MODULES = {
    "hinton": "hinton",
    "dark-knowledge": "dark_knowledge",
    "fitnets": "fitnets",
    "fsp": "fsp",
    "dml": "dml",
    "takd": "takd",
    "cross-architecture": "cross_architecture",
    "ensemble": "ensemble",
    "logit-methods": "logit_methods",
}
NAMES = tuple(MODULES)


def reproduce(names, *, seeds=None, quick=False, output="reproduce-output",
              command=None):
    """Runs experiments and writes their tables, plots and `RESULTS.md`.

    Args:
        names: experiment names (`NAMES`), or `["all"]`.
        seeds: int. Seeds per experiment, results reported as mean ±
            standard deviation. Defaults to 3 (2 with `quick`).
        quick: bool. A small subset and one or two epochs per model: checks
            that the pipelines run, not the numbers.
        output: directory for `NAME.md`, `NAME.png` and `RESULTS.md`.
        command: the command line to record in `RESULTS.md`.

    Returns:
        A list of `keras_distill.experiments.report.Result`.
    """
    from keras_distill.experiments import data
    from keras_distill.experiments import report

    requested = list(names)
    names = list(NAMES) if requested == ["all"] else requested
    unknown = [name for name in names if name not in MODULES]
    if unknown:
        raise ValueError(
            f"Unknown experiment(s) {unknown}. Expected some of {list(NAMES)} "
            "or 'all'."
        )
    if seeds is None:
        seeds = 2 if quick else 3
    seeds = check_int(seeds, "seeds", example=3, at_least=1)
    os.makedirs(output, exist_ok=True)
    command = command or ("keras-distill reproduce " + " ".join(requested)
                          + f" --seeds {seeds}" + (" --quick" if quick else ""))
    machine = report.machine()
    dataset = data.load(quick)
    results = []
    for name in names:
        module = importlib.import_module(f"keras_distill.experiments.{MODULES[name]}")
        settings = module.SETTINGS["quick" if quick else "full"]
        print(f"== {name}: {module.TITLE}", flush=True)
        result = module.run(dataset, settings, list(range(seeds)), output)
        result.command, result.machine = command, machine
        print(f"{result.table}\n{result.headline} ({result.seconds:.0f} s)\n", flush=True)
        results.append(result)
        # Written after every experiment, so that an interrupted `all` keeps
        # what it has measured.
        path = report.write([result], output, NAMES)
    print(f"Wrote {path}")
    return results
