#!/usr/bin/env python3
"""Applies small, realistic bugs (mutants) to a copy of the tree one at a time, rebuilds it
incrementally and runs the tests that use the built `gtrader` and `gt_tests`; reports which tests
catch each mutant. A mutant caught by fewer than two independent tests (test functions, not
parametrizations of one) is a blind spot.

    .venv/bin/python scripts/mutation-check.py            # every mutant (~30 min on 2 cores)
    .venv/bin/python scripts/mutation-check.py sortino    # the mutants whose id contains "sortino"

The copy and its build live under build/mutation/ (the first run configures and builds it in
full). The Python package is not rebuilt, so only tests that run `gtrader` or `gt_tests` take part;
the Ray tests are left out. The report goes to stdout and build/mutation/report.md; the last one is
recorded in docs/TESTING.md.
"""
import argparse
import os
import pathlib
import re
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORK = ROOT / "build" / "mutation"
TREE = WORK / "tree"
BUILD = WORK / "build"

# (id, what the bug is, file, [(original, replacement), ...]): each original occurs exactly once.
MUTANTS = [
    ("short-exit-slippage-sign", "slippage sign flipped on short exits (buys back below the price)",
     "src/backtest/engine.cpp", [("const double fill = price * (1.0 + slip_);\n      const double cost",
                                  "const double fill = price * (1.0 - slip_);\n      const double cost")]),
    ("slippage-not-in-cache-key", "slippage_bps left out of the cache key",
     "src/cache/result_cache.cpp", [("options.commission, options.slippage_bps,", "options.commission, 0.0,")]),
    ("donchian-look-ahead", "the Donchian channel includes the current bar",
     "src/strategies/signals.cpp", [("    if (t >= k) out[t] = x[window.front()];\n", ""),
                                    ("    if (window.front() + k <= t) window.pop_front();\n",
                                     "    if (window.front() + k <= t) window.pop_front();\n"
                                     "    if (t + 1 >= k) out[t] = x[window.front()];\n")]),
    ("sortino-divisor", "sortino's downside deviation divided by N - 1 instead of N",
     "include/gt/backtest.hpp", [("std::sqrt(s.sum_down2 / n)", "std::sqrt(s.sum_down2 / (n - 1.0))")]),
    ("tie-break", "ranking ties go to the higher grid index",
     "src/optimize/optimizer.cpp", [("  return a.index < b.index;\n}", "  return a.index > b.index;\n}")]),
    ("sma-window", "SMA sums p - 1 values (drops one before emitting)",
     "src/indicators/detail.hpp", [("    total += in[i];\n    const double emitted = total;\n    total -= in[trailing++];",
                                    "    total += in[i];\n    total -= in[trailing++];\n    const double emitted = total;")]),
    ("fill-at-signal-close", "next-open orders filled at the signal bar's close",
     "src/backtest/engine.cpp", [("account.close_position(bars.open[t], t);", "account.close_position(bars.close[t - 1], t);"),
                                 ("account.open_position(pending, bars.open[t], t);",
                                  "account.open_position(pending, bars.close[t - 1], t);")]),
    ("fast-slow-swapped", "ma_cross reads fast and slow the other way round",
     "src/strategies/signals.cpp", [("crossover_events(fast, slow, ok, out);", "crossover_events(slow, fast, ok, out);")]),
    ("checksum-dropped", "cache entries served without checking their checksum",
     "src/cache/result_cache.cpp", [("if (sum != XXH3_64bits_withSeed(v, kMetricBytes, seed)) return false;",
                                     "if (false && sum != XXH3_64bits_withSeed(v, kMetricBytes, seed)) return false;")]),
    # Of our own:
    ("volume-filter-at-or-above", "the volume filter lets Volume == SMA(Volume, 20) through",
     "src/strategies/signals.cpp", [("ok[t] = bars.volume[t] > avg[t];", "ok[t] = bars.volume[t] >= avg[t];")]),
    ("peak-without-starting-cash", "drawdown's running peak starts at the first close, not the starting cash",
     "include/gt/backtest.hpp", [("    if (equity > peak_) peak_ = equity;",
                                  "    if (equity > peak_ || sums_.bars == 0) peak_ = equity;")]),
    ("long-exit-commission-dropped", "a long's exit pays no commission",
     "src/backtest/engine.cpp", [("const double fee = proceeds * options_.commission;",
                                  "const double fee = proceeds * 0.0;")]),
    ("rsi-seed-off-by-one", "RSI seeds its averages with one move too few",
     "src/indicators/momentum.cpp", [("  for (std::size_t i = 1; i <= p; ++i) {\n    const double move = in[i] - prev_value;",
                                      "  for (std::size_t i = 1; i < p; ++i) {\n    const double move = in[i] - prev_value;")]),
    ("bbands-entry-band", "bbands_reversion enters halfway between the lower and middle bands",
     "src/strategies/signals.cpp", [("if (c < lower[t]) e |= kLongEntry;",
                                     "if (c < 0.5 * (lower[t] + middle[t])) e |= kLongEntry;")]),
    ("profit-factor-inverted", "profit factor is losses over profits",
     "include/gt/backtest.hpp", [("s.gross_profit / s.gross_loss", "s.gross_loss / s.gross_profit")]),
    ("exposure-counts-flat-bars", "exposure counts the bar an exit fills on as held",
     "src/backtest/engine.cpp", [("curve.add(equity, units != 0);\n  });\n  add_closed_trades(curve.sums(), result.trades);",
                                  "curve.add(equity, units != 0 || (t > 0 && result.position[t - 1] != 0));\n  });\n"
                                  "  add_closed_trades(curve.sums(), result.trades);")]),
]

PYTEST_FILES = ["test_independent_reference.py", "test_spec_cases.py", "test_backtrader_parity.py",
                "test_vectorbt_parity.py", "test_optimize_cli.py", "test_cache.py", "test_indicators_talib.py",
                "test_cli_errors.py", "test_report.py"]


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def sync_tree():
    """Copies the tracked and new files (not ignored ones) into TREE, keeping TREE's timestamps
    where nothing changed so the build stays incremental."""
    files = run("git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", cwd=ROOT).stdout.split("\0")
    for rel in filter(None, files):
        src, dst = ROOT / rel, TREE / rel
        if not src.is_file():
            continue
        if dst.exists() and dst.read_bytes() == src.read_bytes():
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)  # a new mtime: the build must see the change
    venv = TREE / ".venv"
    if not venv.exists():
        venv.symlink_to(ROOT / ".venv")  # LibTorch and the chart bundle, as the main build finds them


def build():
    if not (BUILD / "build.ninja").exists():
        proc = run("cmake", "-S", TREE, "-B", BUILD, "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DGT_CUDA=OFF",
                   "-DGT_TORCH=OFF", "-DGT_BUILD_BENCH=OFF")
        if proc.returncode:
            sys.exit(f"configure failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    proc = run("cmake", "--build", BUILD, "-j", str(os.cpu_count() or 2), "--target", "gtrader", "gt_tests")
    return proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def failing_tests():
    """Distinct failing test functions: gtest names, then pytest functions (parameters dropped)."""
    failed = set()
    env = {k: v for k, v in os.environ.items() if k != "GT_REQUIRE_ALL_TESTS"}  # LibTorch is off here
    gtest = run(str(BUILD / "gt_tests"), "--gtest_brief=1", env=env)
    failed |= {f"gt_tests {m}" for m in re.findall(r"^\[  FAILED  \] (\S+\.\S+)", gtest.stdout, re.M)}
    env["GT_BIN"] = str(BUILD / "gtrader")
    tests = [str(ROOT / "tests" / "python" / f) for f in PYTEST_FILES]
    py = run(str(ROOT / ".venv" / "bin" / "python"), "-m", "pytest", "-q", "-rf", "-p", "no:cacheprovider", "-k",
             "not ray", *tests, env=env, cwd=ROOT)
    for name in re.findall(r"^FAILED (\S+?)(?:\[| - |$)", py.stdout, re.M):
        failed.add(name.replace(str(ROOT) + "/", "").replace("tests/python/", ""))
    return sorted(failed)


def apply(mutant):
    """Applies the mutant; returns the file's original text, for restoring it."""
    _, _, rel, edits = mutant
    path = TREE / rel
    original_text = text = path.read_text()
    for original, replacement in edits:
        if text.count(original) != 1:
            sys.exit(f"mutant {mutant[0]}: {original!r} occurs {text.count(original)} times in {rel}; "
                     "update the mutant list")
        text = text.replace(original, replacement)
    path.write_text(text)
    return original_text


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("only", nargs="*", help="run the mutants whose id contains one of these")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or any(o in m[0] for o in args.only)]
    WORK.mkdir(parents=True, exist_ok=True)
    sync_tree()
    ok, log = build()
    if not ok:
        sys.exit(f"the unmutated copy does not build:\n{log}")
    baseline = failing_tests()
    if baseline:
        sys.exit(f"the unmutated copy fails tests: {baseline}")
    lines = ["| mutant | bug | tests that catch it |", "| --- | --- | --- |"]
    weak = 0
    for mutant in chosen:
        start = time.time()
        original_text = apply(mutant)
        try:
            ok, log = build()
            caught = failing_tests() if ok else ["(does not compile)"]
        finally:
            (TREE / mutant[2]).write_text(original_text)
        if len(caught) < 2:
            weak += 1
        shown = ", ".join(f"`{c}`" for c in caught[:6]) + (f" and {len(caught) - 6} more" if len(caught) > 6 else "")
        lines.append(f"| {mutant[0]} | {mutant[1]} | {len(caught)}: {shown or 'none (survived)'} |")
        print(lines[-1], f"({time.time() - start:.0f} s)", flush=True)
    build()  # leave the copy built unmutated
    summary = f"{len(chosen)} mutants, {len(chosen) - weak} caught by at least two tests, {weak} by fewer."
    (WORK / "report.md").write_text("\n".join(lines) + "\n\n" + summary + "\n")
    print(summary)
    return 1 if weak else 0


if __name__ == "__main__":
    sys.exit(main())
