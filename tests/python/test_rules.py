"""Strategies written as rules (docs/SEMANTICS.md "Rules"), as a quant writes them in a file.

- The seed's ma_cross as three lines gives the built-in's results file byte for byte through the
  reference engine (long-only, every data file, the seed's grid); rule strategies run on the
  reference engine for now, and the grid engine agrees with it to 1e-9.
- A rule strategy no built-in has trades exactly as a NumPy/TA-Lib reading of its rules, run
  through the independent account loop of reference.py, on every data file.
- Bad rules fail before any work, naming the file, line and column, with exit code 2."""
import json

import numpy as np
import pytest
import talib

import reference as ref
from conftest import ALL_FILES, ROOT, run_gtrader

MA_CROSS = ROOT / "strategies" / "ma_cross.yaml"
TREND_RSI = ROOT / "strategies" / "trend_rsi.yaml"
SEED_GRID = ["--grid", "fast=5:19", "--grid", "slow=20:49", "--grid", "ma_type=0:2", "--grid",
             "volume_filter=false,true"]


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_the_ma_cross_file_gives_the_builtins_results_file(path, tmp_path):
    run_gtrader("optimize", "--data", path, "--strategy", "ma_cross", *SEED_GRID, "--no-cache", "--reference",
                "--out", tmp_path / "builtin.csv")
    run_gtrader("optimize", "--data", path, "--strategy-file", MA_CROSS, *SEED_GRID, "--no-cache", "--out",
                tmp_path / "rules.csv")
    assert (tmp_path / "rules.csv").read_bytes() == (tmp_path / "builtin.csv").read_bytes()


def trend_rsi_events(frame, fast, slow, entry_rsi, exit_rsi):
    close = frame["close"].to_numpy(dtype=float)
    up, down = ref.crossings(talib.EMA(close, fast), talib.SMA(close, slow))
    rsi = talib.RSI(close, 14)
    with np.errstate(invalid="ignore"):
        entry = up & (rsi < entry_rsi)  # an undefined RSI makes the rule undefined: not acted on
        exit_ = (rsi > exit_rsi) | down
    return ref.Events(long_entry=entry, long_exit=exit_, short_entry=exit_, short_exit=entry)


@pytest.mark.parametrize("params", [dict(fast=12, slow=40, entry_rsi=70.0, exit_rsi=80.0),
                                    dict(fast=5, slow=20, entry_rsi=60.0, exit_rsi=65.0)],
                         ids=lambda p: "-".join(str(v) for v in p.values()))
@pytest.mark.parametrize("options", [ref.Options(), ref.Options(allow_short=True, commission=0.001, slippage_bps=5.0)],
                         ids=["long", "short-costs"])
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_a_rule_strategy_trades_as_a_numpy_reading_of_its_rules(path, params, options, tmp_path):
    frame = ref.load_frame(path)
    trades_csv = tmp_path / "trades.csv"
    flags = sum([["--param", f"{k}={v}"] for k, v in params.items()], [])
    summary = json.loads(run_gtrader("backtest", "--data", path, "--strategy-file", TREND_RSI, *flags,
                                     *options.flags(), "--trades", trades_csv, "--json").stdout)
    expected, equity, _ = ref.simulate(frame, trend_rsi_events(frame, **params), options)
    stamps = frame["stamp"].to_numpy()
    got = ref.read_trades(trades_csv.read_text())
    assert [(t["entry_time"], t["exit_time"], t["side"]) for t in got] == [
        (stamps[t["entry_bar"]], stamps[t["exit_bar"]] if "exit_bar" in t else "", t["side"]) for t in expected]
    assert len(got) > 0
    assert summary["final_equity"] == pytest.approx(equity[-1], rel=1e-9)


@pytest.mark.parametrize("rule,message", [
    ("cross_above(ema(close, fast), sma(close, slow) and", "1:"),
    ("cross_above(ema(close, fast), sma(close, slow)) and rsi(close) < 30", "rsi takes 2 arguments (x, n), not 1"),
    ("cross_above(ema(close, fast), sma(close, slow)) and sentiment > 0", "unknown series or parameter 'sentiment'"),
    ("cross_above(ema(close, fast), smaa(close, slow))", "unknown function 'smaa' (known: sma, ema"),
    ("ema(close, fast) - sma(close, slow)", "a rule must be a condition"),
    ("cross_above(ema(close, fast), sma(close, slow)) and close[-1] > 0", "x[k] takes k >= 0"),
    ("cross_above(ema(close, fast), sma(close, slow)) and close[1.5] > 0", "x[k] takes k >= 0"),
    ("cross_above(ema(close, fast), sma(close, slow)) and (close > open) + 1 > 0", "takes numbers, not a condition"),
])
def test_bad_rules_fail_before_any_work_naming_file_line_and_column(rule, message, tmp_path):
    text = TREND_RSI.read_text().replace(
        "entry: cross_above(ema(close, fast), sma(close, slow)) and rsi(close, 14) < entry_rsi",
        f"entry: {rule}")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("exit: rsi(close, 14) > exit_rsi or", "exit: rsi(close, 14) > exit_rsi + 0 * entry_rsi or"))
    out = tmp_path / "results.csv"
    proc = run_gtrader("optimize", "--data", ALL_FILES[0], "--strategy-file", bad, "--grid", "fast=5:9", "--no-cache",
                       "--out", out, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and str(bad) in proc.stderr and "^" in proc.stderr, proc.stderr
    assert not out.exists()


def test_a_declared_parameter_no_rule_uses_is_refused(tmp_path):
    bad = tmp_path / "unused.yaml"
    bad.write_text(TREND_RSI.read_text().replace("params:\n", "params:\n  spare: {type: int, default: 3}\n"))
    proc = run_gtrader("backtest", "--data", ALL_FILES[0], "--strategy-file", bad, check=False)
    assert proc.returncode == 2 and "parameter 'spare' is declared but no rule uses it" in proc.stderr


def test_constraints_make_combinations_invalid_and_counted(tmp_path):
    proc = run_gtrader("optimize", "--data", ALL_FILES[0], "--strategy-file", TREND_RSI, "--grid", "fast=30:50:10",
                       "--grid", "slow=40", "--no-cache", "--json")
    summary = json.loads(proc.stdout)
    assert summary["combinations"] == 3 and summary["valid"] == 1 and summary["invalid"] == 2
