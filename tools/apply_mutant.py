"""Run one mutmut mutant against a command of your choice, by hand.

`make mutation` runs on torch. A few mutants are reached only elsewhere (the
replica scaling of `_training/step.py` runs only under a `tf.distribute`
strategy with several replicas), so they are checked by putting each into a
clean clone, running the test that reaches them, and restoring the file:

    git clone -q . /tmp/clone && ln -s "$PWD/.venv" /tmp/clone/.venv
    .venv/bin/python tools/apply_mutant.py --root /tmp/clone \
        --command "KERAS_BACKEND=tensorflow .venv/bin/python -m pytest -q -x \
                   tests/distillers/test_distiller.py -k mirrored" \
        "keras_distill._training.step.x_unscale__mutmut_2" ...

It reads each mutant's diff from `mutmut show` (run here, where `mutants/`
is), applies its one changed line to the clone's copy of the module, runs
the command in the clone and prints `killed` (the command failed) or
`survived`. Mutants that change several lines are reported as skipped.
"""

import argparse
import pathlib
import subprocess
import sys


def changed_line(name):
    """The mutant's `(old, new)` line; new is None for a deleted line."""
    diff = subprocess.run(
        [str(pathlib.Path(sys.executable).with_name("mutmut")), "show", name],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    old = [line[1:] for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    new = [line[1:] for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    if len(old) != 1 or len(new) > 1:
        return None
    return old[0].strip(), (new[0].strip() if new else None)


def module_path(root, name):
    module = name[: name.index(".x")]
    return pathlib.Path(root, *module.split(".")).with_suffix(".py")


def run(root, command, name):
    change = changed_line(name)
    if change is None:
        return "skipped (several lines)"
    old, new = change
    path = module_path(root, name)
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    hits = [index for index, line in enumerate(lines) if line.strip() == old]
    if len(hits) != 1:
        return f"skipped ({len(hits)} lines match)"
    index = hits[0]
    indent = lines[index][: len(lines[index]) - len(lines[index].lstrip())]
    if new is None:
        del lines[index]
    else:
        lines[index] = indent + new
    try:
        path.write_text("\n".join(lines), encoding="utf-8")
        result = subprocess.run(command, shell=True, cwd=root, capture_output=True, text=True)
    finally:
        path.write_text(text, encoding="utf-8")
    return "killed" if result.returncode else "survived"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True, help="a clean clone of the repository")
    parser.add_argument("--command", required=True, help="run in the clone; failing means killed")
    parser.add_argument("names", nargs="+", help="mutant names, as `mutmut results` prints them")
    args = parser.parse_args()
    for name in args.names:
        print(f"{name}: {run(args.root, args.command, name)}", flush=True)


if __name__ == "__main__":
    main()
