"""Reproductions of the papers' claims on Fashion-MNIST.

`python -m reproductions NAME [--seeds 3] [--quick]` from the repository's
root (`make reproduce` runs them all), or from Python there:

```python
import reproductions
results = reproductions.reproduce(["hinton"], seeds=3, output="docs")
```

They import `keras_distill` as any user does, and are not installed with it.
"""

import importlib
import os

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


def reproduce(names, *, seeds=None, quick=False, output="reproduce-output", command=None):
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
        A list of `reproductions.report.Result`.
    """
    from reproductions import data
    from reproductions import report

    requested = list(names)
    names = list(NAMES) if requested == ["all"] else requested
    unknown = [name for name in names if name not in MODULES]
    if unknown:
        raise ValueError(f"Unknown experiment(s) {unknown}. Expected some of {list(NAMES)} or 'all'.")
    if seeds is None:
        seeds = 2 if quick else 3
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ValueError(f"`seeds` must be a positive int. Received: seeds={seeds!r}. Use e.g. seeds=3.")
    os.makedirs(output, exist_ok=True)
    command = command or (
        "python -m reproductions " + " ".join(requested) + f" --seeds {seeds}" + (" --quick" if quick else "")
    )
    machine = report.machine()
    dataset = data.load(quick)
    results = []
    for name in names:
        module = importlib.import_module(f"reproductions.{MODULES[name]}")
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
