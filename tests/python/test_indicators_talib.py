"""Every indicator and every output equals TA-Lib (the PyPI ta-lib package) on every bundled file.

The reference values are computed here, by TA-Lib itself, with its own default parameters.
Tolerance: 1e-9 relative. Values that are mathematically zero (e.g. %K on a bar that closes at
the low) carry a rounding residue of order 1e-14 from running sums, in TA-Lib as here, so an
absolute floor of 1e-12 applies.
"""
import io

import numpy as np
import pandas as pd
import pytest
import talib
import talib.abstract

from conftest import ALL_FILES, run_gtrader

# name, extra CLI arguments, TA-Lib call, TA-Lib parameters the CLI arguments set
CASES = [
    ("SMA", [], {}), ("SMA", ["--period", "5"], {"timeperiod": 5}),
    ("EMA", [], {}), ("EMA", ["--period", "12"], {"timeperiod": 12}),
    ("WMA", [], {}), ("WMA", ["--period", "7"], {"timeperiod": 7}),
    ("DEMA", [], {}), ("TEMA", [], {}), ("TEMA", ["--period", "9"], {"timeperiod": 9}),
    ("KAMA", [], {}), ("KAMA", ["--period", "10"], {"timeperiod": 10}),
    ("RSI", [], {}), ("RSI", ["--period", "2"], {"timeperiod": 2}),
    ("ROC", [], {}), ("ATR", [], {}), ("ATR", ["--period", "1"], {"timeperiod": 1}),
    ("ADX", [], {}), ("ADX", ["--period", "5"], {"timeperiod": 5}),
    ("OBV", [], {}),
    ("MACD", [], {}), ("MACD", ["--fast", "5", "--slow", "35", "--signal", "5"],
                       {"fastperiod": 5, "slowperiod": 35, "signalperiod": 5}),
    ("BBANDS", [], {}), ("BBANDS", ["--period", "5", "--nbdev", "1.5"],
                         {"timeperiod": 5, "nbdevup": 1.5, "nbdevdn": 1.5}),
    ("STOCH", [], {}), ("STOCH", ["--fastk", "14", "--slowk", "3", "--slowd", "3"],
                        {"fastk_period": 14, "slowk_period": 3, "slowd_period": 3}),
]


def reference(name, frame, params):
    fn = talib.abstract.Function(name)
    inputs = {c.lower(): frame[c].to_numpy(dtype=float) for c in ["Open", "High", "Low", "Close", "Volume"]}
    out = fn(inputs, **params)
    return out if isinstance(out, list) else [out]


@pytest.mark.parametrize("path", ALL_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("name,args,params", CASES, ids=lambda c: str(c))
def test_matches_talib(path, name, args, params):
    frame = pd.read_csv(path)
    got = pd.read_csv(io.StringIO(run_gtrader("indicator", name, "--data", path, *args).stdout))
    expected = reference(name, frame, params)
    assert got.columns[0] == "date"
    assert len(got.columns) == 1 + len(expected)
    assert len(got) == len(frame)
    for column, ref in zip(got.columns[1:], expected):
        values = got[column].to_numpy(dtype=float)
        assert np.array_equal(np.isnan(values), np.isnan(ref)), f"{column}: lookback differs"
        m = ~np.isnan(ref)
        assert m.any()
        err = np.abs(values[m] - ref[m])
        bound = 1e-9 * np.abs(ref[m]) + 1e-12
        worst = int(np.argmax(err - bound))
        assert (err <= bound).all(), f"{column}: {values[m][worst]!r} vs TA-Lib {ref[m][worst]!r}"


def test_output_columns_follow_talib_order():
    path = ALL_FILES[0]
    header = lambda name: run_gtrader("indicator", name, "--data", path).stdout.splitlines()[0]
    assert header("MACD") == "date,macd,signal,hist"
    assert header("BBANDS") == "date,upper,middle,lower"
    assert header("STOCH") == "date,k,d"
    assert header("rsi") == "date,rsi"


def test_intraday_dates_carry_the_time():
    lines = run_gtrader("indicator", "SMA", "--period", "3", "--data", ALL_FILES[2]).stdout.splitlines()
    assert lines[1] == "2006-01-02 09:05:00,"
    assert lines[3].startswith("2006-01-02 09:15:00,")
