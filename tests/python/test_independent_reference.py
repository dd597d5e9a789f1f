"""Every built-in strategy's trades, equity and docs/SEMANTICS.md "Metrics" metrics against an independent reading
(tests/python/reference.py): the rules read with TA-Lib and NumPy, the account simulated by a
plain loop, every metric recomputed in NumPy from the `--equity` and `--trades` files.

Cases: every file in data/, long-only and stop-and-reverse, with and without costs, fractional
sizes, next-open and close fills."""
import io
import json

import numpy as np
import pandas as pd
import pytest

import reference as ref
from conftest import ALL_FILES, run_gtrader

STRATEGIES = [
    ("ma_cross", dict(fast=10, slow=30, ma_type=0, volume_filter=False)),
    ("ma_cross", dict(fast=5, slow=20, ma_type=1, volume_filter=True)),
    ("ma_cross", dict(fast=8, slow=21, ma_type=2, volume_filter=False)),
    ("rsi_reversion", dict(period=14, lower=30.0, upper=70.0)),
    ("bbands_reversion", dict(period=20, nbdev=2.0)),
    ("macd_cross", dict(fast=12, slow=26, signal=9)),
    ("donchian_breakout", dict(entry=20, exit=10)),
    ("rsi_reversion", dict(period=4, lower=20.0, upper=85.0)),
    ("bbands_reversion", dict(period=10, nbdev=1.5)),
    ("macd_cross", dict(fast=5, slow=35, signal=5)),
    ("donchian_breakout", dict(entry=55, exit=20)),
]
OPTIONS = {
    "long": ref.Options(),
    "long-costs-half": ref.Options(commission=0.001, slippage_bps=5.0, size=0.5),
    "short-costs": ref.Options(allow_short=True, commission=0.0005, slippage_bps=10.0),
    "short-close-fill": ref.Options(allow_short=True, fill="close", size=0.75, cash=25000.0),
}

frame_of, close_to = ref.frame_of, ref.close_to


def run_backtest(path, strategy, params, options, tmp_path):
    equity, trades = tmp_path / "equity.csv", tmp_path / "trades.csv"
    flags = sum([["--param", f"{k}={str(v).lower()}"] for k, v in params.items()], [])
    out = run_gtrader("backtest", "--data", path, "--strategy", strategy, *flags, *options.flags(), "--equity",
                      equity, "--trades", trades, "--json").stdout
    return json.loads(out), equity.read_text(), trades.read_text()


@pytest.mark.parametrize("option_name", list(OPTIONS))
@pytest.mark.parametrize("strategy,params", STRATEGIES, ids=lambda v: v if isinstance(v, str) else
                         "-".join(str(x) for x in v.values()))
@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
def test_trades_equity_and_metrics_equal_an_independent_reading(path, strategy, params, option_name, tmp_path):
    options = OPTIONS[option_name]
    frame = frame_of(path)
    summary, equity_csv, trades_csv = run_backtest(path, strategy, params, options, tmp_path)

    # Trades: the same bars, sides and prices as the reference account.
    expected_trades, expected_equity, expected_position = ref.simulate(frame, ref.strategy_events(frame, strategy,
                                                                                                  params), options)
    ours = ref.read_trades(trades_csv)
    ref.expect_trades_equal(ours, expected_trades, frame["stamp"].to_numpy())

    # Equity at every close.
    curve = pd.read_csv(io.StringIO(equity_csv))
    np.testing.assert_allclose(curve["equity"].to_numpy(), expected_equity, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(curve["position"].to_numpy(), expected_position, rtol=1e-9, atol=1e-12)

    # Every metric, recomputed from the written files.
    annual = ref.periods_per_year(frame)
    assert summary["periods_per_year"] == annual
    recomputed = ref.metrics_from_outputs(equity_csv, trades_csv, options.cash, annual)
    assert summary["trades"] > 0 or (params.get("volume_filter") and not frame["volume"].any())  # ES has no volume
    assert summary["ruined"] == (expected_equity[-1] == 0)
    for name, want in recomputed.items():
        got = summary[name]
        if got == "inf":
            got = np.inf
        assert close_to(got, want, rel=1e-9, abs_=1e-12), f"{name}: {got} != {want}"
