"""Tables, plots and the results file of the reproductions."""

import dataclasses
import datetime
import os
import platform
import statistics

import keras


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
    """

    name: str
    title: str
    paper: str
    setup: str
    table: str
    headline: str
    figure: str
    seconds: float = 0.0

    def markdown(self, level=2):
        hashes = "#" * level
        return "\n".join([
            f"{hashes} {self.title}", "",
            f"**Paper.** {self.paper}", "",
            f"**Here.** {self.setup}", "",
            self.table, "",
            f"**Headline.** {self.headline}", "",
            f"![{self.name}]({self.figure})", "",
            f"`keras-distill reproduce {self.name}` took {self.seconds / 60:.1f} min.", "",
        ])


def mean_std(values, scale=1.0, digits=2):
    """`"mean ± standard deviation"` of `values` times `scale` (sample
    standard deviation; 0 for one value)."""
    values = [scale * value for value in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {spread:.{digits}f}"


def percent(values):
    return mean_std(values, scale=100.0) + " %"


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def figure(width=6.4, height=4.0):
    """A new matplotlib figure and axes, drawn off screen."""
    try:
        import matplotlib
    except ImportError as error:
        raise ImportError(
            "`keras-distill reproduce` draws its plots with matplotlib, which "
            "is not installed. Install it with `pip install matplotlib` (or "
            "`pip install keras-distill[notebooks]`)."
        ) from error
    matplotlib.use("Agg")
    from matplotlib import pyplot

    fig, axes = pyplot.subplots(figsize=(width, height))
    return fig, axes


def save_figure(fig, output, name):
    from matplotlib import pyplot

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
    return (f"{os.cpu_count()} CPU cores ({cpu}){memory}, {platform.system()}; "
            f"Python {platform.python_version()}, Keras {keras.__version__}, "
            f"backend {keras.backend.backend()}; "
            f"{datetime.date.today().isoformat()}")


def write(results, output, command, seconds):
    """Writes `NAME.md` per result and `RESULTS.md` with all of them."""
    for result in results:
        with open(os.path.join(output, f"{result.name}.md"), "w") as handle:
            handle.write(result.markdown(level=1))
    summary = markdown_table(
        ["experiment", "paper", "here"],
        [(result.title, result.paper, result.headline) for result in results],
    )
    text = "\n".join([
        "# Reproductions", "",
        f"Command: `{command}`. Machine: {machine()}. "
        f"Total time {seconds / 60:.1f} min.", "",
        summary, "",
        *[result.markdown() for result in results],
    ])
    path = os.path.join(output, "RESULTS.md")
    with open(path, "w") as handle:
        handle.write(text)
    return path
