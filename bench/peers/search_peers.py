#!/usr/bin/env python3
"""Searches beyond grids: bayes at 5% of a 300,000-combination crossover space against the
exhaustive grid and Optuna's TPE at the same budget.

Space: the seed's crossover, fast 2..101 x slow 20..519 x ma_type 0..2 x volume_filter (300,000
combinations, 279,582 valid), on all 5,036 ORCL daily bars.
1. gtrader, the exhaustive grid: its best sharpe and rate (the summary's, the study's own time).
2. gtrader `--search bayes --budget 15000` with seeds 1, 2, 3 (--seeds N: 1 to N): the best sharpe
   found (the median against the exhaustive best, goal: within 1%; and in how many runs it is within
   1%) and the rate (goal: >= 0.2x the grid's). Random search at the same budget beside it.
   Rates are medians over --repeats rounds (default 5), each round one grid run and every search
   run in turn, so that a slow spell of the machine falls on both sides alike.
3. Optuna 5.1 (TPESampler, seeded, one trial at a time as its users run it) for the same number of
   trials, its objective a lookup of the exhaustive grid's results: its time is Optuna's own (no
   backtest in it at all), its best what TPE found.
Usage: search_peers.py [--gtrader BIN] [--budget N] [--seeds N] [--repeats N] [--optuna-trials N] [--json]"""
import argparse
import json
import multiprocessing
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "orcl-1995-2014.csv"
GRID = ["fast=2:101", "slow=20:519", "ma_type=0:2", "volume_filter=false,true"]


def gtrader(binary, tmp, *extra, out=None):
    args = [binary, "optimize", "--data", str(DATA), "--strategy", "ma_cross", *sum([["--grid", g] for g in GRID], []),
            "--no-cache", "--cache-dir", tmp, "--threads", str(multiprocessing.cpu_count()), "--top", "1", "--json",
            *extra]
    if out:
        args += ["--out", out]
    summary = json.loads(subprocess.run(args, capture_output=True, text=True, check=True).stdout)
    return {"best_sharpe": summary["best"]["sharpe"], "seconds": summary["seconds"],
            "combos_per_sec": summary["combos_per_sec"], "computed": summary["computed"],
            "best": {k: summary["best"]["parameters"][k] for k in ("fast", "slow", "ma_type", "volume_filter")}}


def optuna_run(table, trials, seed):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        key = (trial.suggest_int("fast", 2, 101), trial.suggest_int("slow", 20, 519),
               trial.suggest_int("ma_type", 0, 2), trial.suggest_categorical("volume_filter", [False, True]))
        return table.get(key, -10.0)  # fast >= slow: not a valid crossover

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    seconds = time.perf_counter() - start
    return {"trials": trials, "seconds": seconds, "trials_per_sec": trials / seconds, "best_sharpe": study.best_value}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gtrader", default=str(ROOT / "build" / "release" / "gtrader"))
    parser.add_argument("--budget", type=int, default=15000, help="5%% of the space")
    parser.add_argument("--seeds", type=int, default=3, help="the searches' seeds: 1 to N")
    parser.add_argument("--repeats", type=int, default=5, help="rounds of runs the rates are the medians of")
    parser.add_argument("--optuna-trials", type=int, default=None, help="Optuna's trials (the budget)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.repeats < 1 or args.seeds < 1:
        parser.error("--repeats and --seeds take 1 or more")
    seeds = tuple(range(1, args.seeds + 1))

    with tempfile.TemporaryDirectory() as tmp:
        full_csv = os.path.join(tmp, "full.csv")
        gtrader(args.gtrader, tmp, out=full_csv)  # every combination's sharpe, for Optuna's lookup
        full = pd.read_csv(full_csv)
        # The rates: no results file on either side; each round one grid run, then every search.
        grids, searches = [], {"bayes": {seed: [] for seed in seeds}, "random": {seed: [] for seed in seeds}}
        for _ in range(args.repeats):
            grids.append(gtrader(args.gtrader, tmp))
            for method, by_seed in searches.items():
                for seed in seeds:
                    by_seed[seed].append(gtrader(args.gtrader, tmp, "--search", method, "--budget", str(args.budget),
                                                 "--seed", str(seed)))
    grid = dict(grids[0], combos_per_sec=statistics.median(g["combos_per_sec"] for g in grids),
                seconds=statistics.median(g["seconds"] for g in grids))
    for method, by_seed in searches.items():
        for seed, runs in by_seed.items():
            if len({r["best_sharpe"] for r in runs}) != 1:
                raise SystemExit(f"{method} seed {seed} found different bests in its repeats: not reproducible")
        searches[method] = [dict(runs[0], combos_per_sec=statistics.median(r["combos_per_sec"] for r in runs),
                                 seconds=statistics.median(r["seconds"] for r in runs)) for runs in by_seed.values()]
    table = {(r.fast, r.slow, r.ma_type, bool(r.volume_filter)): r.sharpe for r in full.itertuples()}
    optuna = optuna_run(table, args.optuna_trials or args.budget, seeds[0])

    best = grid["best_sharpe"]
    report = {"cores": multiprocessing.cpu_count(), "bars": 5036, "combinations": 300000, "budget": args.budget,
              "grid": grid}
    for method, runs in searches.items():
        median = statistics.median(r["best_sharpe"] for r in runs)
        rate = statistics.median(r["combos_per_sec"] for r in runs)
        report[method] = {"runs": runs, "median_best_sharpe": median, "median_within": 1 - median / best,
                          "runs_within_1pct": sum(r["best_sharpe"] >= 0.99 * best for r in runs),
                          "median_combos_per_sec": rate, "rate_vs_grid": rate / grid["combos_per_sec"]}
    optuna["within"] = 1 - optuna["best_sharpe"] / best
    report["optuna_tpe"] = optuna
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"exhaustive grid: best sharpe {best:.4f} {grid['best']}, {grid['combos_per_sec']:.4g} combos/s "
              f"({grid['seconds']:.3f} s), {report['cores']} cores")
        for method in ("bayes", "random"):
            r = report[method]
            found = [round(x['best_sharpe'], 4) for x in r['runs']] if len(seeds) <= 5 else "..."
            print(f"{method}, budget {args.budget}, seeds 1-{len(seeds)}: best sharpe {found} (median "
                  f"{100 * r['median_within']:.2f}% under the best; within 1% in {r['runs_within_1pct']} of "
                  f"{len(seeds)} runs), {r['median_combos_per_sec']:.4g} combos/s ({r['rate_vs_grid']:.3f}x the grid's), "
                  f"{statistics.median(x['seconds'] for x in r['runs']):.3f} s")
        print(f"Optuna TPE, {optuna['trials']} trials (objective: a lookup): best sharpe {optuna['best_sharpe']:.4f} "
              f"({100 * optuna['within']:.2f}% under), {optuna['seconds']:.1f} s ({optuna['trials_per_sec']:.1f} "
              f"trials/s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
