"""`python -m reproductions NAME... [--seeds N] [--quick]`: the papers'
experiments on Fashion-MNIST, from the repository's root."""

import argparse
import os

from reproductions import NAMES

BACKENDS = ("tensorflow", "jax", "torch")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m reproductions",
        description="Reproduce the papers' claims on Fashion-MNIST: a markdown table and a plot per "
        "experiment, and RESULTS.md.",
        epilog="Example: python -m reproductions hinton fsp --seeds 3 --output docs",
    )
    parser.add_argument(
        "names", nargs="+", metavar="NAME", choices=(*NAMES, "all"), help=f"One or more of {', '.join(NAMES)}, or all."
    )
    parser.add_argument("--backend", choices=BACKENDS, help="Keras backend (default: $KERAS_BACKEND, else tensorflow).")
    parser.add_argument("--seeds", type=int, help="Seeds per experiment (default 3; quick: 2).")
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"A small subset, one or two epochs per model: all {len(NAMES)} pipelines in a few "
        "minutes. Checks that they run, not the numbers.",
    )
    parser.add_argument(
        "--output",
        default="reproduce-output",
        help="Directory for NAME.md, NAME.png and RESULTS.md (default: ./reproduce-output).",
    )
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seeds is not None and args.seeds < 1:
        parser.error(f"--seeds must be a positive number of seeds per experiment. Received: --seeds {args.seeds}.")
    if args.backend:
        os.environ["KERAS_BACKEND"] = args.backend
    import reproductions

    reproductions.reproduce(args.names, seeds=args.seeds, quick=args.quick, output=args.output)
    return 0


if __name__ == "__main__":
    main()
