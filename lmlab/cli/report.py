"""`lmlab report RUN`: a run's figures, curves and (for a Transformer) attention map, and an HTML page of them."""

from __future__ import annotations

import argparse

from lmlab.report import report_figures, report_run, write_report


def cmd_report(args: argparse.Namespace) -> None:
    page = write_report(args.run)
    run = report_run(args.run)
    for name, value in report_figures(args.run, run).items():
        print(f"{name:<24} {value:.4g}" if isinstance(value, float) else f"{name:<24} {value}")
    print(f"wrote {page} (with the figures beside it)")
    use = f"   {run.family_class.uses(run.model_config)[1].format(run=args.run)}" if run is not None else ""
    print(f"next: open {page} in a browser{use}")


def add_report(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(handler=cmd_report)
    parser.add_argument("run")
