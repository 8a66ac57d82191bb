"""Tables, plots and the results file of the reproductions."""

import dataclasses
import datetime
import json
import os
import platform
import statistics

import keras
import numpy as np

from keras_distill.tables import markdown_table


@dataclasses.dataclass
class Result:
    """What one experiment measured.

    Attributes:
        name: the experiment's command-line name.
        title: a heading.
        paper: the paper's claim, with its numbers.
        setup: what was run here.
        table: a markdown table of the measurements.
        headline: one line, our headline number(s).
        figure: the PNG's file name, beside the table.
        seconds: wall-clock time of the experiment.
        command: the command that ran it.
        machine: the machine, software and date it ran on (`machine()`).
    """

    name: str
    title: str
    paper: str
    setup: str
    table: str
    headline: str
    figure: str
    seconds: float = 0.0
    command: str = ""
    machine: str = ""

    def markdown(self, level=2):
        hashes = "#" * level
        return "\n".join(
            [
                f"{hashes} {self.title}",
                "",
                f"**Paper.** {self.paper}",
                "",
                f"**Here.** {self.setup}",
                "",
                self.table,
                "",
                f"**Headline.** {self.headline}",
                "",
                f"![{self.name}]({self.figure})",
                "",
                f"This experiment took {self.seconds / 60:.1f} min of `{self.command}` on {self.machine}.",
                "",
            ]
        )


def spread(values):
    """The sample standard deviation of `values`; 0 for one value."""
    values = [float(value) for value in values]
    return statistics.stdev(values) if len(values) > 1 else 0.0


def mean_std(values, scale=1.0, digits=2):
    """`"mean ± standard deviation"` of `values` times `scale` (see `spread`)."""
    values = [scale * value for value in values]
    return f"{statistics.mean(values):.{digits}f} ± {spread(values):.{digits}f}"


def percent(values):
    return mean_std(values, scale=100.0) + " %"


def relative_change(before, after):
    """The per-seed relative change from `before` to `after` (paired lists,
    e.g. test errors), as `"-9.8 ± 1.2 %"`: negative means fewer."""
    changes = [100.0 * (b - a) / a for a, b in zip(before, after)]
    return f"{statistics.mean(changes):+.1f} ± {spread(changes):.1f} %"


def bar_figure(output, name, labels, errors, examples):
    """A bar chart of test errors (mean, with the spread over seeds)."""
    fig, axes = figure()
    values = [np.asarray(e, dtype="float64") for e in errors]
    axes.bar(
        range(len(values)),
        [v.mean() for v in values],
        yerr=[spread(v) for v in values],
        capsize=4,
        color=["gray"] + [f"C{i}" for i in range(len(values) - 1)],
    )
    axes.set_xticks(range(len(values)), labels)
    low = min(v.min() for v in values)
    axes.set_ylim(max(0.0, low - 0.15 * low), None)
    return save_figure(
        fig,
        axes,
        output,
        name,
        legend=False,
        ylabel=f"test errors (of {examples:,})",
        title=f"Mean ± std of {len(values[0])} seed(s)",
    )


def figure(width=6.4, height=4.0):
    """A new matplotlib figure and axes, drawn off screen."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "`python -m reproductions` draws its plots with matplotlib, which "
            "is not installed. Install it with `pip install matplotlib` (or "
            "`pip install keras-distill[notebooks]`)."
        ) from error
    matplotlib.use("Agg")
    from matplotlib import pyplot

    fig, axes = pyplot.subplots(figsize=(width, height))
    return fig, axes


def save_figure(fig, axes, output, name, *, title, ylabel="test accuracy (%)", xlabel=None, legend=True):
    """Labels the axes, writes `output/name.png` and returns its file name."""
    from matplotlib import pyplot

    axes.set_title(title)
    axes.set_ylabel(ylabel)
    if xlabel:
        axes.set_xlabel(xlabel)
    if legend:
        axes.legend()
    file_name = f"{name}.png"
    fig.tight_layout()
    fig.savefig(os.path.join(output, file_name), dpi=100)
    pyplot.close(fig)
    return file_name


def machine():
    """One line naming this machine, the software and the date."""
    memory = ""
    try:
        with open("/proc/meminfo") as handle:
            kib = int(handle.readline().split()[1])
        memory = f", {kib / 2**20:.0f} GiB memory"
    except (OSError, ValueError, IndexError):
        pass
    cpu = platform.processor() or platform.machine()
    return (
        f"{os.cpu_count()} CPU cores ({cpu}){memory}, {platform.system()}; "
        f"Python {platform.python_version()}, Keras {keras.__version__}, "
        f"backend {keras.backend.backend()}; "
        f"{datetime.date.today().isoformat()}"
    )


def write(results, output, names):
    """Writes `NAME.md` and `NAME.json` per result, then `RESULTS.md` from
    every `NAME.json` in `output`, so that rerunning one experiment keeps
    the others' results.

    Args:
        results: the `Result`s of this run.
        output: the directory.
        names: every experiment name, in the order `RESULTS.md` lists them.

    Returns:
        The path of `RESULTS.md`.
    """
    for result in results:
        with open(os.path.join(output, f"{result.name}.md"), "w") as handle:
            handle.write(result.markdown(level=1))
        with open(os.path.join(output, f"{result.name}.json"), "w") as handle:
            json.dump(dataclasses.asdict(result), handle, indent=1)
    recorded = []
    for name in names:
        path = os.path.join(output, f"{name}.json")
        if os.path.exists(path):
            with open(path) as handle:
                recorded.append(Result(**json.load(handle)))
    summary = markdown_table(
        ["experiment", "paper", "here"],
        [(result.title, result.paper, result.headline) for result in recorded],
    )
    minutes = sum(result.seconds for result in recorded) / 60
    text = "\n".join(
        [
            "# Reproductions",
            "",
            f"{len(recorded)} experiment(s), {minutes:.1f} min in all. Each section "
            "names the command, machine and date of its run.",
            "",
            summary,
            "",
            *[result.markdown() for result in recorded],
        ]
    )
    path = os.path.join(output, "RESULTS.md")
    with open(path, "w") as handle:
        handle.write(text)
    return path
