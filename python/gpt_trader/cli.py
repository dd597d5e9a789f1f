"""`gtrader optimize --engine ray` hands over to this driver: the same options, the same results
file and JSON summary as the local engine, computed on a Ray cluster."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys

from . import _core
from .distributed import DistributedConfig, RayDistributedEngine


def _whole_number(allow_auto):
    def parse(text):
        if allow_auto and text == "auto":
            return text
        try:
            value = int(text)
        except ValueError:
            value = 0
        if value < 1:
            raise argparse.ArgumentTypeError(f"'{text}' is not {'auto or ' if allow_auto else ''}a whole number >= 1")
        return value
    return parse


def main(argv=None):
    try:
        return _run(argv)
    except (ValueError, ConnectionError, ImportError) as exc:  # the user's to fix: no traceback
        print(f"gtrader: error: {exc}", file=sys.stderr)
        return 2


def _run(argv):
    parser = argparse.ArgumentParser(prog="gtrader optimize --engine ray")
    parser.add_argument("command", choices=["optimize"])
    parser.add_argument("--data", action="append", required=True)
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--grid", action="append", default=[])
    parser.add_argument("--grid-file")
    parser.add_argument("--param", action="append", default=[])
    parser.add_argument("--metric", default="sharpe")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--min-trades", type=int, default=0)
    parser.add_argument("--out")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--address")
    parser.add_argument("--workers", default="auto", type=_whole_number(True))
    parser.add_argument("--chunk-size", type=_whole_number(False))
    parser.add_argument("--max-retries", type=int, default=3)
    parser.add_argument("--fill", default="next_open")
    parser.add_argument("--commission", type=float, default=0.0)
    parser.add_argument("--slippage-bps", type=float, default=0.0)
    parser.add_argument("--size", type=float, default=1.0)
    parser.add_argument("--allow-short", action="store_true")
    parser.add_argument("--cash", type=float, default=100000.0)
    parser.add_argument("--periods-per-year", type=float)
    parser.add_argument("--cache", default=os.environ.get("GT_CACHE"),
                        help="redis://... shared by every worker, or a folder every node reaches (default: none)")
    parser.add_argument("--cache-dir", help="a folder cache every node reaches (with no --cache)")
    parser.add_argument("--no-cache", action="store_true")
    parser.add_argument("--resume", action="store_true", help="with a cache, finished combinations are not recomputed")
    # Options of the local engine that mean nothing here.
    parser.add_argument("--threads", help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.grid_file:
        import yaml  # noqa: PLC0415 (only grid files need it)
        with open(args.grid_file) as f:
            doc = yaml.safe_load(f)
        grid = doc.get("grid", doc)
        for name, spec in grid.items():
            if name != "strategy":
                args.grid.append(f"{name}=" + (",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in spec)
                                               if isinstance(spec, list) else str(spec)))
    fixed = dict(item.split("=", 1) for item in args.param)
    options = {"fill": args.fill, "commission": args.commission, "slippage_bps": args.slippage_bps, "size": args.size,
               "allow_short": args.allow_short, "cash": args.cash, "periods_per_year": args.periods_per_year}
    workers = args.workers
    # Ray tasks may run on any node: only a cache every node reaches is used (none by default).
    cache = None if args.no_cache else (args.cache or args.cache_dir)
    config = DistributedConfig(num_workers=workers, address=args.address, chunk_size=args.chunk_size,
                               max_retries=args.max_retries)
    with RayDistributedEngine(config) as engine:
        ranked = engine.optimize_distributed(args.strategy, args.grid, args.data, fixed=fixed, metric=args.metric,
                                             top=args.top, min_trades=args.min_trades, out=args.out,
                                             cache=cache, **options)
        summary = dict(engine.last_summary)
    best = {}
    for r in ranked:
        best.setdefault(r.symbol, {**r.metrics, "symbol": r.symbol, "parameters": r.parameters})
    best_list = list(best.values())
    summary["best"] = best_list[0] if summary["symbols"] == 1 else best_list
    summary["cache"] = re.sub(r"//([^@/]*):[^@/]*@", r"//\1:***@", cache) if cache else "off"  # never a password
    if args.json:
        # As the C++ summary: JSON has no infinity, so an unbounded profit factor is "inf".
        def finite(value):
            if isinstance(value, float) and value in (float("inf"), float("-inf")):
                return "inf" if value > 0 else "-inf"
            if isinstance(value, dict):
                return {k: finite(v) for k, v in value.items()}
            if isinstance(value, list):
                return [finite(v) for v in value]
            return value
        print(json.dumps(finite(summary), indent=2))
    else:
        for r in ranked:
            print(r.symbol, r.parameters, f"sharpe={r.sharpe_ratio:.4f}")
        print(f"{summary['computed']} combinations in {summary['seconds']:.3f} s on Ray "
              f"({summary['tasks']} tasks, {summary['retries']} retries, {summary['nodes']} nodes)")
        if args.out:
            print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
