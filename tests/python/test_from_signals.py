"""Signal arrays from Python (docs/SEMANTICS.md "Signal arrays"): gt.from_signals and
`gtrader backtest --signals`.

- With fill="close", all cash and no costs, every column's trade list and total return equal
  vectorbt's Portfolio.from_signals with its defaults, on every bundled file, for hundreds of
  random non-conflicting signal columns drawn here.
- With fill="next_open" (and short selling, costs), every column equals the project's own
  backtest of the same signals written as a rule strategy over series of one's own.
- Layouts (C order, Fortran order, strided views, DataFrames) give the same results; bad input is a
  ValueError naming the argument before any work."""
import json

import numpy as np
import pandas as pd
import pytest

import gpt_trader as gt
from conftest import ALL_FILES, run_gtrader

vbt = pytest.importorskip("vectorbt")


def random_signals(bars, columns, seed, rate=0.03):
    rng = np.random.default_rng(seed)
    entries = rng.random((bars, columns)) < rate
    exits = rng.random((bars, columns)) < rate
    both = entries & exits  # non-conflicting: vectorbt ignores a bar with both, the rules take one
    return entries & ~both, exits & ~both


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_close_fills_equal_vectorbts_from_signals_defaults(path):
    bars = gt.load(str(path))
    close = pd.Series(np.asarray(bars.close), index=pd.to_datetime(np.asarray(bars.time), unit="s"))
    entries, exits = random_signals(len(bars), 300, seed=len(bars))
    ours = gt.from_signals(bars, entries, exits, fill="close")
    pf = vbt.Portfolio.from_signals(close, pd.DataFrame(entries, index=close.index),
                                    pd.DataFrame(exits, index=close.index), init_cash=100000.0)
    np.testing.assert_allclose(ours.metrics["total_return"].to_numpy(), pf.total_return().to_numpy(), rtol=1e-9)
    records = pf.trades.records
    trades = ours.trades
    times = close.index
    for k in range(0, 300, 7):
        theirs = records[records["col"] == k]
        expected = [(times[int(r.entry_idx)], times[int(r.exit_idx)] if int(r.status) == 1 else pd.NaT)
                    for r in theirs.itertuples()]
        mine = trades[trades["column"] == k]
        got = [(r.entry_time, r.exit_time) for r in mine.itertuples()]
        assert len(got) == len(expected) > 0, k
        assert all(a == c and (b == d or (pd.isna(b) and pd.isna(d))) for (a, b), (c, d) in zip(got, expected)), k
    assert ours.metrics["trades"].sum() == int((records["status"] == 1).sum())


def as_rules(bars, entries, exits, k, **options):
    strategy = gt.Strategy(entry="e > 0", exit="x > 0", series=["e", "x"])
    return gt.backtest(bars, strategy, series={"e": entries[:, k].astype(float), "x": exits[:, k].astype(float)},
                       **options)[bars.symbol]


@pytest.mark.parametrize("options", [{}, {"allow_short": True, "commission": 0.001, "slippage_bps": 2.0},
                                     {"size": 0.5}], ids=["long", "short-costs", "half-size"])
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_next_open_fills_equal_the_same_signals_as_a_rule_strategy(path, options):
    bars = gt.load(str(path))
    entries, exits = random_signals(len(bars), 40, seed=7)
    ours = gt.from_signals(bars, entries, exits, **options)
    for k in range(0, 40, 3):
        expected = as_rules(bars, entries, exits, k, **options)
        for name, value in expected["metrics"].items():
            assert ours.metrics[name].iloc[k] == pytest.approx(value, rel=1e-9, abs=1e-12), (k, name)
        mine = ours.trades[ours.trades["column"] == k]
        assert len(mine) == len(expected["trades"])
        np.testing.assert_allclose(mine["pnl"].to_numpy(), expected["trades"]["pnl"].to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.equity(5).to_numpy(), as_rules(bars, entries, exits, 5, **options)["equity"].to_numpy())


def test_layouts_and_frames_give_the_same_results():
    bars = gt.load(str(ALL_FILES[0]))
    entries, exits = random_signals(len(bars), 64, seed=3)
    base = gt.from_signals(bars, entries, exits).metrics
    fortran = gt.from_signals(bars, np.asfortranarray(entries), np.asfortranarray(exits)).metrics
    wide_e, wide_x = np.zeros((len(bars), 128), bool), np.zeros((len(bars), 128), bool)
    wide_e[:, ::2], wide_x[:, ::2] = entries, exits
    strided = gt.from_signals(bars, wide_e[:, ::2], wide_x[:, ::2]).metrics
    ints = gt.from_signals(bars, entries.astype(np.int8), exits.astype(np.int64)).metrics
    pd.testing.assert_frame_equal(fortran, base)
    pd.testing.assert_frame_equal(strided, base)
    pd.testing.assert_frame_equal(ints, base)
    index = pd.to_datetime(np.asarray(bars.time), unit="s")
    labels = [f"rule{k}" for k in range(64)]
    framed = gt.from_signals(bars, pd.DataFrame(entries, index=index, columns=labels),
                             pd.DataFrame(exits, index=index, columns=labels))
    assert list(framed.metrics.index) == labels
    np.testing.assert_array_equal(framed.metrics["sharpe"].to_numpy(), base["sharpe"].to_numpy())
    one = gt.from_signals(bars, entries[:, 0], exits[:, 0])  # a single column, (bars,)
    assert one.metrics["sharpe"].iloc[0] == base["sharpe"].iloc[0]
    assert list(framed.trades.columns) == ["column", "entry_time", "exit_time", "side", "entry_price", "exit_price",
                                           "units", "pnl", "return", "bars_held", "exit_reason"]


def test_options_may_differ_per_column():
    bars = gt.load(str(ALL_FILES[0]))
    entries, exits = random_signals(len(bars), 3, seed=11)
    commissions = [0.0, 0.001, 0.01]
    together = gt.from_signals(bars, entries, exits, commission=commissions, allow_short=[False, True, False])
    for k, (c, short) in enumerate(zip(commissions, [False, True, False])):
        alone = gt.from_signals(bars, entries[:, k], exits[:, k], commission=c, allow_short=short)
        assert together.metrics["final_equity"].iloc[k] == alone.metrics["final_equity"].iloc[0]


def test_bad_input_is_a_value_error_naming_the_argument():
    bars = gt.load(str(ALL_FILES[0]))
    n = len(bars)
    ok = np.zeros((n, 2), bool)
    index = pd.to_datetime(np.asarray(bars.time), unit="s")
    cases = [
        (dict(entries=np.zeros((n - 1, 2), bool)), rf"entries must have shape \({n},\) or \({n}, K\)"),
        (dict(entries=np.zeros((n, 2), float)), "entries must be booleans .* not dtype float64"),
        (dict(exits=np.full((n, 2), 2, np.int64)), "exits is an integer array with values other than 0 and 1"),
        (dict(entries=pd.DataFrame(np.zeros((n, 2)), index=index).where(lambda f: f > 0)), "entries holds NaN"),
        (dict(entries=pd.DataFrame(ok, index=index[::-1])), "entries's index does not align with the bars' times"),
        (dict(entries=np.zeros((n, 0), bool)), r"entries has no columns \(K = 0\)"),
        (dict(exits=np.zeros((n, 3), bool)), "exits has 3 columns where entries has 2"),
        (dict(commission=[0.0, 0.1, 0.2]), "commission has 3 values for 2 columns"),
        (dict(short_entries=ok), "short_entries and short_exits go together"),
        (dict(commission=-1.0), "commission = -1 is out of range"),
    ]
    for change, message in cases:
        args = {"entries": ok, "exits": ok, **change}
        with pytest.raises(ValueError, match=message):
            gt.from_signals(bars, **args)


def test_gtrader_backtest_signals_reads_a_file_of_signals(tmp_path):
    bars = gt.load(str(ALL_FILES[0]))
    entries, exits = random_signals(len(bars), 1, seed=5)
    times = [gt._core.format_time(int(t), bars.intraday) for t in np.asarray(bars.time)]
    path = tmp_path / "signals.csv"
    path.write_text("time,entry,exit\n" + "".join(f"{t},{int(e)},{'true' if x else 'false'}\n"
                                                  for t, e, x in zip(times, entries[:, 0], exits[:, 0])))
    summary = json.loads(run_gtrader("backtest", "--data", ALL_FILES[0], "--signals", path, "--json").stdout)
    expected = gt.from_signals(bars, entries, exits).metrics.iloc[0]
    assert summary["final_equity"] == pytest.approx(expected["final_equity"], rel=1e-9)
    assert summary["trades"] == expected["trades"] and summary["strategy"] == "signals"
    bad = tmp_path / "bad.csv"
    bad.write_text(path.read_text().replace(f"{times[3]},", "1999-01-01,", 1))
    proc = run_gtrader("backtest", "--data", ALL_FILES[0], "--signals", bad, check=False)
    assert proc.returncode == 2 and f"{bad}:5: time '1999-01-01' where bar 4" in proc.stderr
    bad.write_text(path.read_text().replace(",0,", ",maybe,", 1))
    proc = run_gtrader("backtest", "--data", ALL_FILES[0], "--signals", bad, check=False)
    assert proc.returncode == 2 and "entry = 'maybe' (allowed: 0, 1, true, false)" in proc.stderr
