"""Strategies written as rules (docs/SEMANTICS.md "Rules"), as a quant writes them in a file.

- The seed's ma_cross written as rules gives the built-in's results file byte for byte, on the
  compiled rules engine against the crossover engine and on the reference engine against the
  reference engine (long-only, every data file, the seed's grid).
- A rule strategy no built-in has trades exactly as a NumPy/TA-Lib reading of its rules, run
  through the independent account loop of reference.py, on every data file.
- Bad rules fail before any work, naming the file, line and column, with exit code 2."""
import json

import gpt_trader as gt

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
def test_the_seeds_three_lines_give_the_builtins_results_file(path, tmp_path):
    three_lines = tmp_path / "seed.yaml"
    three_lines.write_text("\n".join(line for line in MA_CROSS.read_text().splitlines()
                                     if not line.startswith(("short_", "name:"))) + "\nname: seed\n")
    for engine in ([], ["--reference"]):
        run_gtrader("optimize", "--data", path, "--strategy", "ma_cross", *SEED_GRID, "--no-cache", *engine,
                    "--out", tmp_path / "builtin.csv")
        proc = run_gtrader("optimize", "--data", path, "--strategy-file", three_lines, *SEED_GRID, "--no-cache",
                           *engine, "--out", tmp_path / "rules.csv", "--json")
        # Crossover rules take the crossover engine, by what they are (not by their name).
        assert json.loads(proc.stdout)["engine"] == ("reference" if engine else "ma_cross event-driven")
        assert (tmp_path / "rules.csv").read_bytes() == (tmp_path / "builtin.csv").read_bytes()


BUILTIN_GRIDS = {
    "ma_cross": SEED_GRID,
    "rsi_reversion": ["--grid", "period=2:30:4", "--grid", "lower=10:40:10", "--grid", "upper=60:90:10"],
    "bbands_reversion": ["--grid", "period=5:60:5", "--grid", "nbdev=0.5:3:0.5"],
    "macd_cross": ["--grid", "fast=5:15:5", "--grid", "slow=20:40:10", "--grid", "signal=3:12:3"],
    "donchian_breakout": ["--grid", "entry=5:60:5", "--grid", "exit=5:40:5"],
}


@pytest.mark.parametrize("name", BUILTIN_GRIDS)
def test_each_builtin_is_its_shipped_strategy_file(name, tmp_path):
    options = ["--allow-short", "--commission", "0.001"]
    run_gtrader("optimize", "--data", ALL_FILES[0], "--strategy", name, *BUILTIN_GRIDS[name], *options, "--no-cache",
                "--out", tmp_path / "name.csv")
    run_gtrader("optimize", "--data", ALL_FILES[0], "--strategy-file", ROOT / "strategies" / f"{name}.yaml",
                *BUILTIN_GRIDS[name], *options, "--no-cache", "--out", tmp_path / "file.csv")
    assert (tmp_path / "file.csv").read_bytes() == (tmp_path / "name.csv").read_bytes()
    listed = {s["name"]: s for s in gt.strategies()}[name]
    assert listed["params"] == gt.Strategy.from_file(ROOT / "strategies" / f"{name}.yaml").params


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


# ---- The same rules from Python, inline on the command line, and with series of one's own ----

def test_a_python_strategy_runs_the_compiled_engine_and_writes_the_files_results(tmp_path):
    grid = {"fast": "5:25:4", "slow": "20:80:12", "entry_rsi": [50.0, 65.0, 80.0], "exit_rsi": "60:90:10"}
    run_gtrader("optimize", "--data", ALL_FILES[0], "--strategy-file", TREND_RSI,
                *sum([["--grid", f"{k}={v if isinstance(v, str) else ','.join(map(str, v))}"] for k, v in grid.items()], []),
                "--no-cache", "--out", tmp_path / "cli.csv")
    written = gt.Strategy(entry="cross_above(ema(close, fast), sma(close, slow)) and rsi(close, 14) < entry_rsi",
                          exit="rsi(close, 14) > exit_rsi or cross_below(ema(close, fast), sma(close, slow))",
                          params={"fast": {"type": "int", "default": 12, "min": 2, "max": 1000},
                                  "slow": {"type": "int", "default": 40, "min": 2, "max": 1000},
                                  "entry_rsi": {"type": "float", "default": 70, "min": 0, "max": 100},
                                  "exit_rsi": {"type": "float", "default": 80, "min": 0, "max": 100}},
                          constraints=["fast < slow", "entry_rsi <= exit_rsi"], name="trend_rsi")
    for strategy, out in ((gt.Strategy.from_file(TREND_RSI), "file.csv"), (written, "written.csv")):
        _, summary = gt.optimize(str(ALL_FILES[0]), strategy, grid, out=str(tmp_path / out))
        assert summary["engine"] == "rules compiled"
        assert (tmp_path / out).read_bytes() == (tmp_path / "cli.csv").read_bytes()
    results = gt.backtest(str(ALL_FILES[0]), written, {"fast": 12, "slow": 40})
    assert results[ALL_FILES[0].stem]["parameters"] == {"fast": 12, "slow": 40, "entry_rsi": 70.0, "exit_rsi": 80.0,
                                                       "stop_loss": 0.0, "take_profit": 0.0, "trailing_stop": 0.0, "max_bars": 0, "risk": 0.0}


def test_inline_rules_take_their_parameter_types_from_the_values_given(tmp_path):
    file = tmp_path / "inline.yaml"
    file.write_text("name: inline\nparams:\n  n: {type: int, default: 5}\n  lo: {type: float, default: 20}\n"
                    "  hi: {type: float, default: 65}\n"
                    "entry: rsi(close, n) < lo\nexit: rsi(close, n) > hi\n")
    grid = ["--grid", "n=5:20", "--grid", "lo=20:35:5", "--grid", "hi=65,70.5,80"]
    run_gtrader("optimize", "--data", ALL_FILES[0], "--strategy-file", file, *grid, "--no-cache", "--out",
                tmp_path / "file.csv")
    run_gtrader("optimize", "--data", ALL_FILES[0], "--entry", "rsi(close, n) < lo", "--exit", "rsi(close, n) > hi",
                *grid, "--no-cache", "--out", tmp_path / "inline.csv")
    assert (tmp_path / "inline.csv").read_bytes() == (tmp_path / "file.csv").read_bytes()
    proc = run_gtrader("backtest", "--data", ALL_FILES[0], "--entry", "rsi(close, n) < lo", "--exit",
                       "rsi(close, n) > hi", "--param", "n=14", "--param", "lo=30", "--param", "hi=70", "--json")
    assert json.loads(proc.stdout)["parameters"] == {"n": 14, "lo": 30, "hi": 70, "stop_loss": 0.0, "take_profit": 0.0, "trailing_stop": 0.0, "max_bars": 0, "risk": 0.0}
    proc = run_gtrader("backtest", "--data", ALL_FILES[0], "--entry", "rsi(close, n) < lo", "--exit",
                       "rsi(close, n) > 70", "--param", "n=14", check=False)
    assert proc.returncode == 2 and "unknown series or parameter 'lo'" in proc.stderr
    proc = run_gtrader("backtest", "--data", ALL_FILES[0], "--strategy", "ma_cross", "--entry", "close > 0", "--exit",
                       "close < 0", check=False)
    assert proc.returncode == 2 and "give one strategy" in proc.stderr


def test_strategies_prints_a_files_schema_and_rules():
    out = run_gtrader("strategies", "--strategy-file", TREND_RSI).stdout
    assert "entry_rsi      float        0 .. 100" in out
    assert "entry: (cross_above(ema(close, fast), sma(close, slow)) and (rsi(close, 14) < entry_rsi))" in out
    assert "Rules may call: sma, ema" in run_gtrader("strategies").stdout


def sentiment_events(frame, sentiment, level):
    up, _ = ref.crossings(sentiment, np.full(len(sentiment), level))
    _, down = ref.crossings(sentiment, np.full(len(sentiment), -level))
    return ref.Events(long_entry=up, long_exit=down, short_entry=down, short_exit=up)


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_a_series_of_ones_own_sweeps_at_engine_speed_and_trades_as_read_in_numpy(path, tmp_path):
    frame = ref.load_frame(path)
    sentiment = np.sin(np.arange(len(frame)) / 9.0) + 0.3 * np.cos(np.arange(len(frame)) / 2.3)
    sentiment[5::211] = np.nan  # undefined now and then: no crossing reads across it
    strategy = gt.Strategy(entry="cross_above(sentiment, level)", exit="cross_below(sentiment, -level)",
                           params={"level": 0.5}, series=["sentiment"])
    top, summary = gt.optimize(str(path), strategy, {"level": [0.2, 0.4, 0.6, 0.8]}, series={"sentiment": sentiment},
                               top=None)
    assert summary["engine"] == "rules compiled"
    result = gt.backtest(str(path), strategy, {"level": 0.4}, series={"sentiment": sentiment})[path.stem]
    expected, equity, _ = ref.simulate(frame, sentiment_events(frame, sentiment, 0.4), ref.Options())
    assert [(t["entry_bar"], t.get("exit_bar")) for t in expected] == [
        (int(e), None if np.isnan(x) else int(x)) for e, x in zip(result["trades"]["entry_bar"], result["trades"]["exit_bar"])]
    assert result["metrics"]["final_equity"] == pytest.approx(equity[-1], rel=1e-9)
    row = top[top["level"] == 0.4].iloc[0]
    assert row["final_equity"] == pytest.approx(equity[-1], rel=1e-9)


def test_bad_series_fail_before_any_work_naming_the_series():
    bars = gt.load(str(ALL_FILES[0]))
    strategy = gt.Strategy(entry="sentiment > 0", exit="sentiment < 0", series=["sentiment"])
    n = len(bars)
    cases = [
        ({"sentiment": np.zeros(n - 1)}, "series 'sentiment' has"),
        ({"sentiment": np.full(n, np.inf)}, "series 'sentiment' is infinite at row 0"),
        ({"sentiment": np.array(["a"] * n)}, "series 'sentiment' must be one number per bar"),
        ({"close": np.zeros(n)}, "series name 'close' is reserved"),
        ({"nosuch": {"sentiment": np.zeros(n)}}, "which the data lack"),
    ]
    for series, message in cases:
        with pytest.raises(ValueError, match=message.replace("(", r"\(")):
            gt.backtest(bars, strategy, series=series)
    with pytest.raises(ValueError, match="the rules read series 'sentiment', which these bars lack"):
        gt.backtest(bars, strategy)
    with pytest.raises(ValueError, match="the built-in strategy 'ma_cross' reads none"):
        gt.backtest(bars, "ma_cross", series={"sentiment": np.zeros(n)})
    with pytest.raises(ValueError, match="unknown function 'smaa'"):
        gt.Strategy(entry="close > smaa(close, 3)", exit="close < 0")
    with pytest.raises(TypeError, match="strategy must be a name"):
        gt.backtest(bars, 42)


def test_the_cache_tells_series_apart(tmp_path):
    bars = gt.load(str(ALL_FILES[0]))
    strategy = gt.Strategy(entry="cross_above(s, 0)", exit="cross_below(s, 0)", series=["s"])
    a = np.sin(np.arange(len(bars)) / 5.0)
    cache = str(tmp_path / "cache")
    runs = []
    for values in (a, a, -a):
        top, summary = gt.optimize(bars, strategy, {}, cache=cache, series={"s": values})
        runs.append((summary["from_cache"], top["final_equity"].iloc[0]))
    assert runs[0][0] == 0 and runs[1][0] == 1 and runs[2][0] == 0  # other values: not served from the cache
    assert runs[0][1] == runs[1][1] != runs[2][1]


def test_a_value_outside_a_parameters_range_fails_before_any_work(tmp_path):
    out = tmp_path / "results.csv"
    proc = run_gtrader("optimize", "--data", ALL_FILES[0], "--strategy-file", TREND_RSI, "--grid", "fast=1:5",
                       "--no-cache", "--out", out, check=False)
    assert proc.returncode == 2 and "--grid fast=1:5: 1 is out of range (allowed: 2 to 1000)" in proc.stderr
    assert not out.exists()
    proc = run_gtrader("backtest", "--data", ALL_FILES[0], "--strategy-file", TREND_RSI, "--param", "entry_rsi=120",
                       check=False)
    assert proc.returncode == 2 and "entry_rsi = 120 is out of range (allowed: float 0 to 100)" in proc.stderr
