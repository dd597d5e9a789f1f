"""`gtrader backtest --portfolio` (docs/SEMANTICS.md "Portfolios") against a plain reading of the
contract written here: the symbols' bars on the union of their timestamps, one cash account, at
each timestamp the fills at the open (exits, rebalance reductions, entries in the symbols' order,
rebalance additions), then the closes marked, then the rules at the closes; entries sized from the
equity at their signal's close, reduced to the cash there is, skipped (and counted) when there is
none. Each symbol's rules come from reference.py (TA-Lib) on its own bars. ORCL and YHOO (their
histories start a year apart) and symbols cut from them with gaps, every timestamp compared."""
import io
import json

import numpy as np
import pandas as pd
import pytest

import reference as ref
from conftest import DATA, run_gtrader

ORCL, YHOO = DATA / "orcl-1995-2014.csv", DATA / "yhoo-1996-2014.csv"
NO_CASH = 1e-9  # cash below this share of the equity is none (docs/SEMANTICS.md "Portfolios")


def reading(frames, params, o, weights=None, rebalance=0):
    """The portfolio, long-only, as the contract reads: (equity per timestamp, values per symbol,
    trades per symbol, skipped entries)."""
    k = len(frames)
    weights = [o.size * (w if weights else 1 / k) for w in (weights or [1] * k)]
    events = [ref.strategy_events(f, "ma_cross", params) for f in frames]
    stamps = [f["stamp"].tolist() for f in frames]
    times = sorted(set().union(*map(set, stamps)))
    at = [{s: i for i, s in enumerate(st)} for st in stamps]
    opens = [f["open"].to_numpy(dtype=float) for f in frames]
    closes = [f["close"].to_numpy(dtype=float) for f in frames]
    slip, c = o.slippage_bps / 1e4, o.commission
    state = dict(cash=o.cash, skipped=0, reduced=0)
    units, trade = [0.0] * k, [None] * k
    last = [0.0] * k
    pending, pending_equity, rebal = [None] * k, [0.0] * k, [None] * k
    trades = [[] for _ in range(k)]

    def value():
        return state["cash"] + sum(u * p for u, p in zip(units, last))

    def close(s, price, bar, reason="rule"):
        t = trade[s]
        fill = price * (1 - slip)
        fee = units[s] * fill * c
        state["cash"] += units[s] * fill - fee
        pnl = units[s] * (fill - t["entry_price"]) - t["entry_fee"] - fee
        t.update(exit_bar=bar, exit_price=fill, pnl=pnl, ret=pnl / t["committed"], reason=reason)
        trades[s].append(t)
        units[s], trade[s] = 0.0, None

    def enter(s, price, bar, equity):
        fill = price * (1 + slip)
        count = weights[s] * equity / fill
        if count <= 0:
            return
        if state["cash"] <= NO_CASH * equity:
            state["skipped"] += 1
            return
        if count > state["cash"] / (fill * (1 + c)):
            count = state["cash"] / (fill * (1 + c))
            state["reduced"] += 1
        committed = count * fill * (1 + c)
        state["cash"] -= committed
        units[s] = count
        trade[s] = dict(entry_bar=bar, entry_price=fill, units=count, committed=committed, entry_fee=count * fill * c)

    def reduce(s, count, price, bar):
        t = trade[s]
        if count >= t["units"]:  # all of it: the trade closes
            close(s, price, bar, "rebalance")
            return
        share = count / t["units"]
        part_fee, part_committed = t["entry_fee"] * share, t["committed"] * share
        t["entry_fee"] -= part_fee
        t["committed"] -= part_committed
        t["units"] -= count
        units[s] = t["units"]
        fill = price * (1 - slip)
        fee = count * fill * c
        state["cash"] += count * fill - fee
        pnl = count * (fill - t["entry_price"]) - part_fee - fee
        trades[s].append(dict(entry_bar=t["entry_bar"], entry_price=t["entry_price"], units=count, exit_bar=bar,
                              exit_price=fill, pnl=pnl, ret=pnl / part_committed, reason="rebalance"))

    def add(s, value_to_add, price, bar):
        t = trade[s]
        fill = price * (1 + slip)
        count = min(value_to_add / price, state["cash"] / (fill * (1 + c)))
        if count <= 0:
            return
        fee = count * fill * c
        t["entry_price"] = (t["entry_price"] * t["units"] + fill * count) / (t["units"] + count)
        t["units"] += count
        units[s] = t["units"]
        t["entry_fee"] += fee
        t["committed"] += count * fill + fee
        state["cash"] -= count * fill + fee

    equity, values = [], [[] for _ in range(k)]
    for u, stamp in enumerate(times):
        bars = [at[s].get(stamp) for s in range(k)]
        here = [s for s in range(k) if bars[s] is not None]
        for s in here:  # the open: exits first
            if pending[s] is not None and units[s] != 0 and pending[s] != np.sign(units[s]):
                close(s, opens[s][bars[s]], bars[s])
        for s in here:
            if rebal[s] is not None and rebal[s] < 0 and units[s] != 0:
                reduce(s, -rebal[s] / opens[s][bars[s]], opens[s][bars[s]], bars[s])
        for s in here:
            if pending[s] is not None:
                if pending[s] != 0 and units[s] == 0:
                    enter(s, opens[s][bars[s]], bars[s], pending_equity[s])
                pending[s] = None
        for s in here:
            if rebal[s] is not None:
                if rebal[s] > 0 and units[s] != 0:
                    add(s, rebal[s], opens[s][bars[s]], bars[s])
                rebal[s] = None
        for s in here:
            last[s] = closes[s][bars[s]]
        now = value()
        targets = {s: ref.wanted(events[s], int(np.sign(units[s])), bars[s], False) for s in here}
        if o.fill == "close":
            for s in here:
                if units[s] != 0 and targets[s] != np.sign(units[s]):
                    close(s, last[s], bars[s])
            for s in here:
                if targets[s] != 0 and units[s] == 0:
                    enter(s, last[s], bars[s], now)
        else:
            for s in here:
                if targets[s] != np.sign(units[s]):
                    pending[s], pending_equity[s] = targets[s], now
        if rebalance and (u + 1) % rebalance == 0:
            marked = value()
            for s in range(k):
                if units[s] == 0 or (pending[s] is not None and pending[s] != np.sign(units[s])):
                    continue
                difference = weights[s] * marked - abs(units[s]) * last[s]
                rebal[s] = difference if difference != 0 else None
        equity.append(value())
        for s in range(k):
            values[s].append(units[s] * last[s])
    for s in range(k):
        if trade[s] is not None:
            trades[s].append(dict(trade[s], reason="end"))
    return np.array(equity), [np.array(v) for v in values], trades, state["skipped"], stamps, state["reduced"]


def cut(path, tmp_path, name, keep):
    """A symbol cut from a data file: the rows whose position `keep` accepts (gaps where it does not)."""
    frame = pd.read_csv(path)
    out = tmp_path / f"{name}.csv"
    frame[[keep(i) for i in range(len(frame))]].to_csv(out, index=False)
    return out


CASES = {
    "orcl_yhoo": dict(files=lambda tmp: [ORCL, YHOO], params=dict(fast=10, slow=30), o=ref.Options()),
    "costs_close_fills": dict(files=lambda tmp: [ORCL, YHOO], params=dict(fast=5, slow=20),
                              o=ref.Options(fill="close", commission=0.001, slippage_bps=5)),
    "weights_and_rebalance": dict(files=lambda tmp: [ORCL, YHOO], params=dict(fast=10, slow=30), o=ref.Options(),
                                  weights=[0.7, 0.3], rebalance=21),
    "gaps_four_symbols": dict(
        files=lambda tmp: [cut(ORCL, tmp, "orcl-odd", lambda i: i % 7 != 3),
                           cut(YHOO, tmp, "yhoo-late", lambda i: i > 800 and not 2000 < i < 2100),
                           cut(ORCL, tmp, "orcl-early", lambda i: i < 3500 and i % 11 != 0),
                           cut(YHOO, tmp, "yhoo-every-other", lambda i: i % 2 == 0)],
        params=dict(fast=5, slow=20), o=ref.Options(commission=0.0005), rebalance=10),
    "cash_runs_out": dict(
        files=lambda tmp: [ORCL, YHOO, cut(ORCL, tmp, "orcl-late", lambda i: i > 300),
                           cut(YHOO, tmp, "yhoo-thirds", lambda i: i % 3 != 0)],
        params=dict(fast=20, slow=100), o=ref.Options(slippage_bps=2)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_the_portfolio_equals_a_plain_reading(name, tmp_path):
    case = CASES[name]
    files = case["files"](tmp_path)
    o, weights, rebalance = case["o"], case.get("weights"), case.get("rebalance", 0)
    params = case["params"]
    frames = [ref.load_frame(f) for f in files]
    want_equity, want_values, want_trades, want_skipped, stamps, _ = reading(frames, params, o, weights, rebalance)
    args = ["backtest", *sum([["--data", f] for f in files], []), "--strategy", "ma_cross", "--param",
            f"fast={params['fast']}", "--param", f"slow={params['slow']}", *o.flags(), "--portfolio",
            "--equity", tmp_path / "equity.csv", "--trades", tmp_path / "trades.csv", "--json"]
    if weights:
        args += ["--weights", ",".join(map(str, weights))]
    if rebalance:
        args += ["--rebalance", rebalance]
    got = json.loads(run_gtrader(*args).stdout)
    equity = pd.read_csv(tmp_path / "equity.csv")
    assert len(equity) == len(want_equity) == got["timestamps"]
    np.testing.assert_allclose(equity["equity"], want_equity, rtol=1e-9)
    for s, frame in enumerate(frames):
        np.testing.assert_allclose(equity[files[s].stem], want_values[s],
                                   rtol=1e-9, atol=1e-6)
    assert got["final_equity"] == pytest.approx(want_equity[-1], rel=1e-9)
    assert got["skipped_entries"] == want_skipped
    trades = pd.read_csv(tmp_path / "trades.csv", keep_default_na=False)
    for s, frame in enumerate(frames):
        mine = trades[trades["symbol"] == files[s].stem]
        expected = want_trades[s]
        assert len(mine) == len(expected), (files[s].stem, len(mine), len(expected))
        assert list(mine["entry_time"]) == [stamps[s][t["entry_bar"]] for t in expected]
        assert list(mine["exit_time"]) == [stamps[s][t["exit_bar"]] if "exit_bar" in t else "" for t in expected]
        assert list(mine["exit_reason"]) == [t["reason"] for t in expected]
        np.testing.assert_allclose(mine["units"].astype(float), [t["units"] for t in expected], rtol=1e-9)
        closed = [i for i, t in enumerate(expected) if "pnl" in t]
        np.testing.assert_allclose(mine["pnl"].iloc[closed].astype(float), [expected[i]["pnl"] for i in closed],
                                   rtol=1e-7, atol=1e-6)
    # The metrics are those of the portfolio's equity, read with NumPy.
    r = np.diff(np.concatenate([[o.cash], want_equity])) / np.concatenate([[o.cash], want_equity[:-1]])
    assert got["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252), rel=1e-7)
    assert got["total_return"] == pytest.approx(want_equity[-1] / o.cash - 1, rel=1e-9)


def test_the_cases_cover_gaps_reduced_and_skipped_entries_and_rebalancing(tmp_path):
    """The data exercise what the contract singles out: timestamps where only some symbols trade,
    entries the cash cannot fully cover, entries skipped for no cash, and rebalance trades."""
    case = CASES["gaps_four_symbols"]
    frames = [ref.load_frame(f) for f in case["files"](tmp_path)]
    _, _, trades, _, stamps, _ = reading(frames, case["params"], case["o"], None, case["rebalance"])
    union = sorted(set().union(*map(set, stamps)))
    assert all(len(set(st)) < len(union) for st in stamps)
    assert sum(t["reason"] == "rebalance" for ts in trades for t in ts) > 20
    case = CASES["cash_runs_out"]
    frames = [ref.load_frame(f) for f in case["files"](tmp_path)]
    _, _, _, skipped, _, reduced = reading(frames, case["params"], case["o"])
    assert skipped > 0 and reduced > 0


@pytest.mark.parametrize("args,message", [
    (["--data", ORCL, "--portfolio"], "--portfolio needs at least two symbols"),
    (["--data", ORCL, "--data", YHOO, "--portfolio", "--weights", "0.5"], "--weights gives 1 value(s) for 2 symbols"),
    (["--data", ORCL, "--data", YHOO, "--portfolio", "--weights", "0.7,0.5"], "--weights sum to 1.2"),
    (["--data", ORCL, "--data", YHOO, "--portfolio", "--weights", "-0.1,0.5"], "each is 0 or more"),
    (["--data", ORCL, "--data", DATA / "es-2006-5min.csv", "--portfolio"], "daily and intraday files mixed"),
    (["--data", ORCL, "--data", YHOO, "--weights", "0.5,0.5"], "give --portfolio too"),
])
def test_bad_portfolios_fail_before_any_work(args, message, tmp_path):
    out = tmp_path / "trades.csv"
    proc = run_gtrader("backtest", *args, "--strategy", "ma_cross", "--trades", out, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr, proc.stderr
    assert not out.exists()


def test_symbols_that_never_overlap_are_named(tmp_path):
    early = cut(ORCL, tmp_path, "orcl-early", lambda i: i < 1000)
    late = cut(YHOO, tmp_path, "yhoo-late", lambda i: i > 2000)
    proc = run_gtrader("backtest", "--data", early, "--data", late, "--strategy", "ma_cross", "--portfolio",
                       check=False)
    assert proc.returncode == 2 and "do not overlap at all" in proc.stderr and "orcl-early" in proc.stderr


def test_python_portfolio_gives_the_commands_result_and_a_report_draws(tmp_path):
    import gpt_trader as gt
    from test_report import render

    page = tmp_path / "portfolio.html"
    got = json.loads(run_gtrader("backtest", "--data", ORCL, "--data", YHOO, "--strategy", "ma_cross", "--portfolio",
                                 "--weights", "0.6,0.4", "--rebalance", "63", "--commission", "0.001", "--json",
                                 "--report", page).stdout)
    result = gt.backtest([ORCL, YHOO], "ma_cross", portfolio=True, weights={"orcl-1995-2014": 0.6,
                                                                            "yhoo-1996-2014": 0.4},
                         rebalance=63, commission=0.001)
    assert result["metrics"]["final_equity"] == pytest.approx(got["final_equity"], rel=1e-12)
    assert result["metrics"]["sharpe"] == pytest.approx(got["sharpe"], rel=1e-12)
    assert len(result["equity"]) == got["timestamps"] and list(result["values"].columns) == [ORCL.stem, YHOO.stem]
    assert result["skipped_entries"] == got["skipped_entries"]
    assert result["contributions"][ORCL.stem] == pytest.approx(got["symbols"][0]["contribution"], rel=1e-12)
    assert len(result["trades"]) == got["trades"] + (result["trades"]["open"] == 1).sum()
    assert set(result["trades"]["exit_reason"]) >= {"rule", "rebalance"}
    with pytest.raises(ValueError, match="give portfolio=True too"):
        gt.backtest([ORCL, YHOO], "ma_cross", weights=[0.5, 0.5])
    with pytest.raises(ValueError, match="weights sum to 1.5"):
        gt.backtest([ORCL, YHOO], "ma_cross", portfolio=True, weights=[1.0, 0.5])
    status, console, _ = render(page, tmp_path)
    charts = dict(item.split("=") for item in status.split())
    assert charts["charts"] == charts["drawn"] == "3", status
    assert not [line for line in console if "ERROR" in line or "WARN" in line], console


@pytest.mark.parametrize("case", ["two_symbols", "cash_runs_out"])
def test_vectorbt_cash_sharing_gives_the_same_equity(case, tmp_path):
    """vectorbt 1.2.0's grouped simulation with shared cash (`from_orders`, `cash_sharing=True`,
    sells before buys) where its rules coincide with ours: close fills, each symbol's own entries
    and exits (reference.py's rules) as orders to hold 1/k of the group's value or nothing, orders
    reduced to the cash (its allow_partial), commission as its `fees`. The equity agrees at every
    timestamp. (Its `from_signals` sizes by cash, not by the group's value; its target percent
    sizes by the price before slippage: docs/SEMANTICS.md "Portfolios".)"""
    vbt = pytest.importorskip("vectorbt")
    if case == "two_symbols":
        files, params, commission = [ORCL, YHOO], dict(fast=10, slow=30), 0.0
    else:
        files = CASES["cash_runs_out"]["files"](tmp_path)
        params, commission = CASES["cash_runs_out"]["params"], 0.001
    frames = [ref.load_frame(f) for f in files]
    k = len(frames)
    union = sorted(set().union(*[set(f["stamp"]) for f in frames]))

    def orders(frame, events):
        held, out = False, np.full(len(frame), np.nan)
        for t in range(len(frame)):
            if held and events.long_exit[t]:
                out[t], held = 0.0, False
            elif not held and events.long_entry[t]:
                out[t], held = 1 / k, True
        return pd.Series(out, index=frame["stamp"])

    close = pd.DataFrame({f.stem: pd.Series(fr["close"].to_numpy(), index=fr["stamp"])
                          for f, fr in zip(files, frames)}).reindex(union)
    size = pd.DataFrame({f.stem: orders(fr, ref.strategy_events(fr, "ma_cross", params))
                         for f, fr in zip(files, frames)}).reindex(union)
    value = vbt.Portfolio.from_orders(close, size, size_type="targetpercent", init_cash=100000.0, cash_sharing=True,
                                      group_by=True, call_seq="auto", fees=commission, freq="1D").value()
    run_gtrader("backtest", *sum([["--data", f] for f in files], []), "--strategy", "ma_cross", "--param",
                f"fast={params['fast']}", "--param", f"slow={params['slow']}", "--fill", "close", "--commission",
                commission, "--portfolio", "--equity", tmp_path / "equity.csv")
    ours = pd.read_csv(tmp_path / "equity.csv")["equity"].to_numpy()
    np.testing.assert_allclose(ours, value.to_numpy(), rtol=1e-12)


def test_optimize_ranks_each_combination_once_for_the_whole_portfolio(tmp_path):
    """`optimize --portfolio`: one row per combination for the portfolio, each the metrics of
    `backtest --portfolio` with its parameters; cached like any study; with robustness."""
    grid = ["--grid", "fast=5:15:5", "--grid", "slow=20:40:10"]
    data = ["--data", ORCL, "--data", YHOO]
    allocation = ["--portfolio", "--weights", "0.6,0.4", "--rebalance", "42"]
    cache = ["--cache-dir", tmp_path / "cache"]
    out = tmp_path / "results.csv"
    first = json.loads(run_gtrader("optimize", *data, "--strategy", "ma_cross", *grid, *allocation, *cache, "--out",
                                   out, "--top", 3, "--json").stdout)
    assert first["portfolio"] == [ORCL.stem, YHOO.stem] and first["best"]["symbol"] == "portfolio"
    assert first["computed"] == 9 and first["engine"] == "portfolio, crossings as masks"
    rows = pd.read_csv(out)
    assert "symbol" not in rows.columns and len(rows) == 9
    for _, row in rows.iterrows():
        single = json.loads(run_gtrader("backtest", *data, "--strategy", "ma_cross", "--param",
                                        f"fast={int(row['fast'])}", "--param", f"slow={int(row['slow'])}",
                                        *allocation, "--json").stdout)
        for metric in ("final_equity", "sharpe", "max_drawdown", "trades"):
            assert row[metric] == pytest.approx(single[metric], rel=1e-12), metric
    assert first["best"]["sharpe"] == rows["sharpe"].max()
    second = json.loads(run_gtrader("optimize", *data, "--strategy", "ma_cross", *grid, *allocation, *cache,
                                    "--json").stdout)
    assert second["computed"] == 0 and second["from_cache"] == 9 and second["best"] == first["best"]
    # Another allocation is another study: nothing of the first is reused.
    other = json.loads(run_gtrader("optimize", *data, "--strategy", "ma_cross", *grid, "--portfolio", *cache,
                                   "--json").stdout)
    assert other["from_cache"] == 0
    robust = json.loads(run_gtrader("optimize", *data, "--strategy", "ma_cross", *grid, *allocation, "--robustness",
                                    "--pbo-blocks", 8, "--json", "--no-cache", *cache).stdout)["robustness"]
    assert [r["symbol"] for r in robust] == ["portfolio"] and robust[0]["splits"] == 70 and robust[0]["trials"] == 9


def test_python_optimize_with_a_portfolio_gives_the_commands_best():
    import gpt_trader as gt

    top, summary = gt.optimize([ORCL, YHOO], "ma_cross", {"fast": [5, 10, 15], "slow": [20, 30, 40]}, portfolio=True,
                               weights=[0.6, 0.4], rebalance=42, top=1)
    got = json.loads(run_gtrader("optimize", "--data", ORCL, "--data", YHOO, "--strategy", "ma_cross", "--grid",
                                 "fast=5:15:5", "--grid", "slow=20:40:10", "--portfolio", "--weights", "0.6,0.4",
                                 "--rebalance", "42", "--top", 1, "--json", "--no-cache").stdout)
    assert list(top["symbol"]) == ["portfolio"]
    assert top.iloc[0]["sharpe"] == pytest.approx(got["best"]["sharpe"], rel=1e-12)
    assert summary["portfolio"] == got["portfolio"]
    with pytest.raises(ValueError, match="give portfolio=True too"):
        gt.optimize([ORCL, YHOO], "ma_cross", {"fast": [5, 10]}, rebalance=5)


def test_a_portfolio_study_for_ray_with_bad_weights_is_refused_before_a_cluster_starts():
    # No cluster is reachable at this address: the weights are told first, in a moment.
    proc = run_gtrader("optimize", "--data", ORCL, "--data", YHOO, "--strategy", "ma_cross", "--grid", "fast=5,10",
                       "--portfolio", "--weights", "0.7,0.5", "--engine", "ray", "--address", "127.0.0.1:9",
                       check=False)
    assert proc.returncode == 2 and "--weights" in proc.stderr and "sum" in proc.stderr, proc.stderr
