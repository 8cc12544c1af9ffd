"""`lmlab report RUN`: a run's loss and learning-rate curves and an HTML page that sums it up."""

from __future__ import annotations

import argparse

from lmlab.report import write_report


def cmd_report(args: argparse.Namespace) -> None:
    page = write_report(args.run)
    print(f"wrote {page} (with the curves beside it)")
    print(f"next: open {page} in a browser   lmlab eval {args.run}")


def add_report(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_report)
    parser.add_argument("run")
