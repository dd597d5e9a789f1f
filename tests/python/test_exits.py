"""Exits by price and time and risk sizing (docs/SEMANTICS.md "Exits by price and time") against a
plain reading of the contract written here: the account below walks the bars as the text says
(fills at the open, then stops and targets over the bar's range, then max_bars at the close, then
the rules at the close), knowing nothing of the engine. Each built-in's rules come from
tests/python/reference.py (TA-Lib and NumPy).

Cases: every file in data/, every exit kind alone and together, long-only and with shorts,
next-open and close fills, with costs; every trade (bars, side, prices, units, reason), the equity
at every close and every metric."""
import json

import numpy as np
import pandas as pd
import pytest

import reference as ref
from conftest import ALL_FILES, run_gtrader

EXITS = {
    "stop": dict(stop_loss=0.03),
    "target": dict(take_profit=0.04),
    "trailing": dict(trailing_stop=0.05),
    "time": dict(max_bars=7),
    "stop-target": dict(stop_loss=0.02, take_profit=0.03),
    "all": dict(stop_loss=0.05, take_profit=0.08, trailing_stop=0.03, max_bars=12),
    "risk": dict(stop_loss=0.04, risk=0.01),
    "risk-all": dict(stop_loss=0.02, take_profit=0.05, trailing_stop=0.04, max_bars=20, risk=0.005),
}
OPTIONS = {
    "long": ref.Options(),
    "long-close-costs": ref.Options(fill="close", commission=0.001, slippage_bps=5.0),
    "short-costs": ref.Options(allow_short=True, commission=0.0005, slippage_bps=10.0, size=0.8),
    "short-close": ref.Options(allow_short=True, fill="close"),
}
STRATEGIES = [
    ("ma_cross", dict(fast=10, slow=30, ma_type=0, volume_filter=False)),
    ("rsi_reversion", dict(period=14, lower=30.0, upper=70.0)),
]


def plain_exits(frame, events, o, exits):
    """The contract's exits read plainly: returns (trades, equity at each close, position)."""
    op, hi, lo, cl = (frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close"))
    n = len(cl)
    slip, c = o.slippage_bps / 1e4, o.commission
    sl, tp, trail = exits.get("stop_loss", 0), exits.get("take_profit", 0), exits.get("trailing_stop", 0)
    max_bars, risk = exits.get("max_bars", 0), exits.get("risk", 0)
    cash, units, trade, trades = o.cash, 0.0, None, []
    equity, position = np.zeros(n), np.zeros(n)

    def sell_fill(price):  # a long's exit or a short's entry
        return price * (1 - slip)

    def buy_fill(price):
        return price * (1 + slip)

    def close(price, bar, reason):
        nonlocal cash, units, trade
        if trade["side"] == "long":
            fill = sell_fill(price)
            cash += units * fill * (1 - c)
            pnl = units * (fill - trade["entry_price"]) - trade["fee"] - units * fill * c
        else:
            fill = buy_fill(price)
            cash -= -units * fill * (1 + c)
            pnl = -units * (trade["entry_price"] - fill) - trade["fee"] + units * fill * c
        trade.update(exit_bar=bar, exit_price=fill, pnl=pnl, ret=pnl / trade["committed"],
                     bars_held=bar - trade["entry_bar"], exit_reason=reason)
        trades.append(trade)
        units, trade = 0.0, None

    def open_(side, price, bar, first_exposed):
        nonlocal cash, units, trade
        fill = buy_fill(price) if side == "long" else sell_fill(price)
        count = o.size * cash / (fill * (1 + c))
        if risk > 0:  # the units whose stop would lose `risk` of the equity, capped by size
            count = min(count, risk * cash / (fill * sl))
        committed = count * fill * (1 + c) if risk > 0 else o.size * cash
        fee = count * fill * c
        if side == "long":
            cash -= committed if risk == 0 else count * fill + fee
            units = count
        else:
            cash += count * fill - fee
            units = -count
        trade = dict(side=side, entry_bar=bar, entry_price=fill, units=count, committed=committed, fee=fee,
                     first=first_exposed, best=fill)

    def range_exit(t):
        """(price, reason) when bar t's range takes the position out."""
        if trade is None or t < trade["first"]:
            return None
        e, long_ = trade["entry_price"], trade["side"] == "long"
        stops = []
        if sl > 0:
            stops.append((e * (1 - sl) if long_ else e * (1 + sl), "stop_loss"))
        if trail > 0:
            stops.append((trade["best"] * (1 - trail) if long_ else trade["best"] * (1 + trail), "trailing_stop"))
        target = (e * (1 + tp) if long_ else e * (1 - tp)) if tp > 0 else None
        # The stop met first from the open: a long's highest, a short's lowest (stop_loss on a tie).
        stop = None
        for level, reason in stops:  # stop_loss first, so that it keeps a tie
            if stop is None or (level > stop[0] if long_ else level < stop[0]):
                stop = (level, reason)
        against = (lambda p, level: p <= level) if long_ else (lambda p, level: p >= level)
        favour = (lambda p, level: p >= level) if long_ else (lambda p, level: p <= level)
        worst, best = (lo[t], hi[t]) if long_ else (hi[t], lo[t])
        # A stop reached in the bar is assumed to come before a target; a level the open is already
        # beyond fills at the open.
        if stop and against(worst, stop[0]):
            return (op[t] if against(op[t], stop[0]) else stop[0]), stop[1]
        if target is not None and favour(best, target):
            return (op[t] if favour(op[t], target) else target), "take_profit"
        trade["best"] = max(trade["best"], hi[t]) if long_ else min(trade["best"], lo[t])
        return None

    pending, ruined = None, False
    for t in range(n):
        if ruined:  # nothing more is traded; the equity stays at 0
            continue
        current = int(np.sign(units))
        if pending is not None and pending != current:
            if trade is not None:
                close(op[t], t, "rule")
            if pending != 0 and cash > 0:  # nothing to commit after a short lost more than its proceeds
                open_("long" if pending > 0 else "short", op[t], t, t)
        pending = None
        hit = range_exit(t)
        if hit:
            close(hit[0], t, hit[1])
        if cash + units * cl[t] <= 0:  # ruin: out at this close, for good
            close(cl[t], t, "ruin")
            ruined = True
            continue
        if trade is not None and max_bars > 0:
            held = t - trade["entry_bar"] + (1 if o.fill == "next_open" else 0)  # bars whose range it held
            if held == max_bars:
                close(cl[t], t, "max_bars")
        current = int(np.sign(units))
        target = ref.wanted(events, current, t, o.allow_short)
        if target != current:
            if o.fill == "close":
                if trade is not None:
                    close(cl[t], t, "rule")
                if target != 0:
                    open_("long" if target > 0 else "short", cl[t], t, t + 1)
            else:
                pending = target
        equity[t] = cash + units * cl[t]
        position[t] = units
    if trade is not None:
        trade.update(bars_held=n - trade["entry_bar"], exit_reason="end")
        trades.append(trade)
    return trades, equity, position


SEEN = {"reasons": set(), "gaps": set()}  # over every case: what the data exercised
frame_of, close_to = ref.frame_of, ref.close_to


@pytest.mark.parametrize("option_name", list(OPTIONS))
@pytest.mark.parametrize("exit_name", list(EXITS))
@pytest.mark.parametrize("strategy,params", STRATEGIES, ids=[s for s, _ in STRATEGIES])
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_exits_equal_a_plain_reading(path, strategy, params, exit_name, option_name, tmp_path):
    options, exits = OPTIONS[option_name], EXITS[exit_name]
    frame = frame_of(path)
    equity_path, trades_path = tmp_path / "equity.csv", tmp_path / "trades.csv"
    flags = sum([["--param", f"{k}={str(v).lower()}"] for k, v in {**params, **exits}.items()], [])
    summary = json.loads(run_gtrader("backtest", "--data", path, "--strategy", strategy, *flags, *options.flags(),
                                     "--equity", equity_path, "--trades", trades_path, "--json").stdout)
    expected, expected_equity, expected_position = plain_exits(frame, ref.strategy_events(frame, strategy, params),
                                                               options, exits)
    ours = list(pd.read_csv(trades_path, keep_default_na=False).to_dict("records"))
    ref.expect_trades_equal(ours, expected, frame["stamp"].to_numpy(), columns=("side", "exit_reason"))
    opens = frame["open"].to_numpy(dtype=float)
    slip = options.slippage_bps / 1e4
    for want in expected:
        if "exit_bar" in want:
            SEEN["reasons"].add(want["exit_reason"])
            side_slip = 1 - slip if want["side"] == "long" else 1 + slip
            if want["exit_reason"] != "rule" and want["exit_price"] == opens[want["exit_bar"]] * side_slip:
                SEEN["gaps"].add(want["exit_reason"])
    curve = pd.read_csv(equity_path)
    np.testing.assert_allclose(curve["equity"].to_numpy(), expected_equity, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(curve["position"].to_numpy(), expected_position, rtol=1e-9, atol=1e-12)
    recomputed = ref.metrics_from_outputs(equity_path.read_text(), trades_path.read_text(), options.cash,
                                          ref.periods_per_year(frame))
    for name, want in recomputed.items():
        got = np.inf if summary[name] == "inf" else summary[name]
        assert close_to(got, want, rel=1e-9, abs_=1e-12), f"{name}: {got} != {want}"


def test_the_cases_exercised_every_reason_and_gaps_through_each_level():
    """Run after the cases above (file order): real data gapped through stops and targets."""
    if not SEEN["reasons"]:
        pytest.skip("run with the cases above")
    assert SEEN["reasons"] >= {"rule", "stop_loss", "take_profit", "trailing_stop", "max_bars"}
    assert SEEN["gaps"] >= {"stop_loss", "take_profit", "trailing_stop"}


@pytest.mark.parametrize("fill", ["next_open", "close"])
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_the_grid_engine_gives_the_reference_engines_results_on_a_grid_of_every_exit_axis(path, fill, tmp_path):
    grid = ["--grid", "fast=5,12", "--grid", "slow=20,40", "--grid", "stop_loss=0,0.02,0.05",
            "--grid", "take_profit=0,0.04,0.1", "--grid", "trailing_stop=0,0.03", "--grid", "max_bars=0,3,15",
            "--grid", "risk=0"]
    frames = []
    for engine in ([], ["--reference"]):
        out = tmp_path / f"results{len(engine)}.csv"
        run_gtrader("optimize", "--data", path, "--strategy", "ma_cross", *grid, "--fill", fill, "--commission",
                    "0.001", "--no-cache", "--cache-dir", tmp_path / "cache", "--out", out, *engine)
        frames.append(pd.read_csv(out))
    fast, reference = frames
    assert len(fast) == 2 * 2 * 3 * 3 * 2 * 3
    pd.testing.assert_frame_equal(fast, reference, check_exact=False, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("args,message", [
    (["backtest", "--param", "stop_loss=-0.1"], "stop_loss = -0.1 is out of range (allowed: 0 <= stop_loss < 1; 0 is off)"),
    (["backtest", "--param", "stop_loss=1"], "stop_loss = 1 is out of range (allowed: 0 <= stop_loss < 1; 0 is off)"),
    (["backtest", "--param", "trailing_stop=1.5"], "trailing_stop = 1.5 is out of range"),
    (["backtest", "--param", "take_profit=-1"], "take_profit = -1 is out of range"),
    (["backtest", "--param", "max_bars=2.5"], "max_bars = '2.5' is not an integer"),
    (["backtest", "--param", "max_bars=-3"], "max_bars = -3 is out of range (allowed: a whole number, 0 <= max_bars"),
    (["backtest", "--param", "risk=0.01"], "risk = 0.01 needs a stop_loss"),
    (["optimize", "--grid", "stop_loss=0,0.02", "--param", "risk=0.01", "--no-cache"],
     "risk = 0.01 needs a stop_loss in every combination, but the grid has stop_loss = 0"),
    (["optimize", "--grid", "stop_loss=0.02,1", "--no-cache"], "grid stop_loss=0.02,1: stop_loss = 1 is out of range"),
    (["optimize", "--grid", "stop_loss=0.02", "--device", "cuda", "--no-cache"],
     "has no exits by price and time"),
])
def test_bad_exits_fail_before_any_work(args, message, tmp_path):
    command, *rest = args
    out = tmp_path / "results.csv"
    extra = ["--out", out, "--cache-dir", tmp_path / "cache"] if command == "optimize" else []
    proc = run_gtrader(command, "--data", ALL_FILES[0], "--strategy", "ma_cross", *rest, *extra, check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert not out.exists()


def test_a_strategy_file_may_not_name_a_parameter_as_an_exit(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nparams:\n  stop_loss: {type: float, default: 0.1}\nentry: close > sma(close, 10) * (1 + stop_loss)\n"
                    "exit: close < sma(close, 10)\n")
    proc = run_gtrader("backtest", "--data", ALL_FILES[0], "--strategy-file", path, check=False)
    assert proc.returncode == 2
    assert "parameter 'stop_loss' is one every strategy has" in proc.stderr


def test_python_takes_the_exits_as_keyword_arguments_parameters_and_grid_keys(tmp_path):
    import gpt_trader as gt

    bars = gt.load(ALL_FILES[0])
    by_keyword = gt.backtest(bars, "ma_cross", {"fast": 10, "slow": 30}, stop_loss=0.03, take_profit=0.06)
    by_param = gt.backtest(bars, "ma_cross", {"fast": 10, "slow": 30, "stop_loss": 0.03, "take_profit": 0.06})
    (symbol,) = by_keyword
    a, b = by_keyword[symbol], by_param[symbol]
    assert a["metrics"] == b["metrics"]
    assert a["parameters"]["stop_loss"] == 0.03
    assert set(a["trades"]["exit_reason"]) == {"rule", "stop_loss", "take_profit", "end"} - (
        set() if a["trades"]["open"].iloc[-1] else {"end"})
    with pytest.raises(TypeError, match="stop_loss is given both"):
        gt.backtest(bars, "ma_cross", {"stop_loss": 0.03}, stop_loss=0.02)
    with pytest.raises(ValueError, match="risk = 0.01 needs a stop_loss"):
        gt.backtest(bars, "ma_cross", risk=0.01)

    top, summary = gt.optimize(bars, "ma_cross", {"fast": [10], "slow": [30], "stop_loss": [0, 0.03]},
                               take_profit=0.06, top=2)
    assert summary["combinations"] == 2
    row = top[top["stop_loss"] == 0.03].iloc[0]
    assert row["take_profit"] == 0.06
    assert row["sharpe"] == pytest.approx(a["metrics"]["sharpe"], rel=1e-9)


def test_from_signals_tries_one_signal_set_with_every_exit_level():
    import gpt_trader as gt

    bars = gt.load(ALL_FILES[0])
    frame = ref.load_frame(ALL_FILES[0])
    events = ref.strategy_events(frame, "ma_cross", STRATEGIES[0][1])
    result = gt.from_signals(bars, events.long_entry, events.long_exit, stop_loss=[0, 0.03, 0.05], take_profit=0.06)
    assert len(result.metrics) == 3
    for k, stop in enumerate([0, 0.03, 0.05]):
        (backtest,) = gt.backtest(bars, "ma_cross", {"fast": 10, "slow": 30}, stop_loss=stop,
                                  take_profit=0.06).values()
        assert result.metrics["sharpe"].iloc[k] == pytest.approx(backtest["metrics"]["sharpe"], rel=1e-9)
        assert result.metrics["trades"].iloc[k] == backtest["metrics"]["trades"]
    reasons = result.trades.groupby("column")["exit_reason"].agg(set)
    assert "stop_loss" not in reasons.iloc[0] and "stop_loss" in reasons.iloc[1]
