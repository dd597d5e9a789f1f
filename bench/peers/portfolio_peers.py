#!/usr/bin/env python3
"""Portfolio studies: the seed's grid over a 10-symbol portfolio against vectorbt's grouped
cash-sharing simulation.

The portfolio: ten symbols of 2,000 daily bars each, cut from ORCL and YHOO at five different
starting points each (real prices, different years) and set on one calendar (the last 2,000 ORCL
dates), so that every timestamp has all ten. Equal weights, one cash account (docs/SEMANTICS.md
"Portfolios").
1. gtrader: `gtrader optimize --portfolio` of the seed grid (2,700 combinations), every core, at
   close fills (where vectorbt's grouped simulation and ours coincide) and at the default next-open
   fills; the rate is the summary's (the study's own time, data loaded).
2. vectorbt (its fastest idiom for a shared-cash group: TA-Lib's averages and the crossings as
   array operations, entries and exits cleaned by its numba signal accessor, then one
   Portfolio.from_orders of target percents with cash_sharing=True, a group of ten columns per
   combination, call_seq="auto"; numba compiled before timing) on a spread sample of the grid.
   The sample's total returns must equal gtrader's.
Usage: portfolio_peers.py [--gtrader BIN] [--sample N] [--json]"""
import argparse
import json
import multiprocessing
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd
import vectorbt as vbt

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from peer_strategies import crossover_signals as signals  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[2]
BARS = 2000
STARTS = {"orcl-1995-2014": (0, 750, 1500, 2250, 3036), "yhoo-1996-2014": (0, 675, 1350, 2025, 2713)}
GRID = ["fast=5:19", "slow=20:49", "ma_type=0:2", "volume_filter=false,true"]
KEYS = ["fast", "slow", "ma_type", "volume_filter"]


def portfolio_frames():
    calendar = pd.read_csv(ROOT / "data" / "orcl-1995-2014.csv")["Date"].tail(BARS).to_numpy()
    frames = {}
    for name, starts in STARTS.items():
        source = pd.read_csv(ROOT / "data" / f"{name}.csv")
        for start in starts:
            frame = source.iloc[start:start + BARS].reset_index(drop=True)
            frames[f"{name.split('-')[0]}-{start}"] = frame.assign(Date=calendar)
    return frames


def combinations():
    return [(f, s, m, v) for f in range(5, 20) for s in range(20, 50) for m in range(3) for v in (False, True)]


def vectorbt_run(frames, sample):
    """Each combination a group of the ten symbols sharing one cash: total return per group."""
    k = len(frames)
    closes, sizes = [], []
    for frame in frames.values():
        entries, exits = signals(frame, sample)
        entries, exits = pd.DataFrame(entries).vbt.signals.clean(pd.DataFrame(exits), entry_first=True)
        sizes.append(np.where(entries.to_numpy(), 1.0 / k, np.where(exits.to_numpy(), 0.0, np.nan)))
        closes.append(np.repeat(frame["Close"].to_numpy(float)[:, None], len(sample), axis=1))
    # Columns grouped by combination: the ten symbols of combination c are columns c*k .. c*k+k-1.
    close = np.stack(closes, axis=2).reshape(len(frames[next(iter(frames))]), -1)
    size = np.stack(sizes, axis=2).reshape(close.shape)
    pf = vbt.Portfolio.from_orders(close, size, size_type="targetpercent", init_cash=100000.0, cash_sharing=True,
                                   group_by=np.repeat(np.arange(len(sample)), k), call_seq="auto", freq="1D")
    return pf.total_return().to_numpy()


def gtrader_study(binary, files, tmp, *extra):
    out = os.path.join(tmp, "results.csv")
    proc = subprocess.run([binary, "optimize", *sum([["--data", f] for f in files], []), "--strategy", "ma_cross",
                           *sum([["--grid", g] for g in GRID], []), "--portfolio", "--no-cache", "--cache-dir", tmp,
                           "--threads", str(multiprocessing.cpu_count()), "--top", "1", "--json", "--out", out,
                           *extra], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout), pd.read_csv(out).set_index(KEYS)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gtrader", default=str(ROOT / "build" / "release" / "gtrader"))
    parser.add_argument("--sample", type=int, default=270, help="vectorbt's combinations (a spread sample)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    frames = portfolio_frames()
    combos = combinations()
    sample = combos[:: max(1, len(combos) // args.sample)]
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for name, frame in frames.items():
            files.append(os.path.join(tmp, f"{name}.csv"))
            frame.to_csv(files[-1], index=False)
        close_fills, ours = gtrader_study(args.gtrader, files, tmp, "--fill", "close")
        next_open, _ = gtrader_study(args.gtrader, files, tmp)

    vectorbt_run({n: f.head(300) for n, f in frames.items()}, sample[:4])  # numba compilation, before timing
    start = time.perf_counter()
    theirs = vectorbt_run(frames, sample)
    vbt_rate = len(sample) / (time.perf_counter() - start)
    mine = np.array([ours.loc[c, "total_return"] for c in sample])
    agree = bool(np.allclose(mine, theirs, rtol=1e-9, atol=1e-12))

    rate = close_fills["combos_per_sec"]
    report = {"cores": multiprocessing.cpu_count(), "symbols": len(frames), "bars": BARS,
              "gtrader": {"combinations": close_fills["combinations"], "engine": close_fills["engine"],
                          "combos_per_sec_close_fills": rate, "combos_per_sec_next_open": next_open["combos_per_sec"]},
              "vectorbt": {"combinations": len(sample), "combos_per_sec": vbt_rate, "gtrader_ratio": rate / vbt_rate,
                           "total_returns_agree": agree}}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"seed grid over a {len(frames)}-symbol portfolio of {BARS} bars, {report['cores']} cores: "
              f"{rate:.4g} combos/s at close fills, {next_open['combos_per_sec']:.4g} at next-open fills "
              f"({close_fills['engine']})")
        print(f"vectorbt grouped cash-sharing simulation, {len(sample)} sampled combinations: {vbt_rate:.4g} "
              f"combos/s (gtrader {rate / vbt_rate:.4g}x); total returns equal gtrader's: {agree}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
