"""Every function a rule may call (docs/SEMANTICS.md "Rules") against TA-Lib or a plain NumPy reading,
on every bundled file, through gpt_trader.evaluate: what the engine computes for the rules is what
these functions give. The expected values are computed here, by TA-Lib itself. Tolerance: 1e-9
relative with an absolute floor of 1e-12 (running sums leave residues of order 1e-14 on values
that are mathematically zero, in TA-Lib as in the engine)."""
import numpy as np
import pandas as pd
import pytest
import talib

import gpt_trader as gt
import reference as ref
from conftest import ALL_FILES


@pytest.fixture(scope="module", params=ALL_FILES, ids=lambda p: p.stem)
def bars(request):
    frame = ref.load_frame(request.param)
    columns = {c: frame[c].to_numpy(dtype=float) for c in ("open", "high", "low", "close", "volume")}
    return gt.load(request.param), columns


def from_first_defined(x, f):
    """TA-Lib applied from a series' first defined value on, as rules apply it."""
    out = np.full(len(x), np.nan)
    first = int(np.argmax(~np.isnan(x)))
    out[first:] = f(x[first:])
    return out


def rolling(x, n, how):
    return getattr(pd.Series(x).rolling(n, min_periods=n), how)().to_numpy()


CASES = [
    ("sma(close, 20)", lambda c: talib.SMA(c["close"], 20)),
    ("ema(close, 12)", lambda c: talib.EMA(c["close"], 12)),
    ("wma(close, 7)", lambda c: talib.WMA(c["close"], 7)),
    ("dema(close, 10)", lambda c: talib.DEMA(c["close"], 10)),
    ("tema(close, 9)", lambda c: talib.TEMA(c["close"], 9)),
    ("kama(close, 10)", lambda c: talib.KAMA(c["close"], 10)),
    *[(f"ma(close, 15, {t})", lambda c, t=t: talib.MA(c["close"], 15, matype=t)) for t in range(5)],
    ("rsi(close, 14)", lambda c: talib.RSI(c["close"], 14)),
    ("rsi(close, 2)", lambda c: talib.RSI(c["close"], 2)),
    ("roc(close, 10)", lambda c: talib.ROC(c["close"], 10)),
    ("atr(14)", lambda c: talib.ATR(c["high"], c["low"], c["close"], 14)),
    ("adx(14)", lambda c: talib.ADX(c["high"], c["low"], c["close"], 14)),
    ("obv()", lambda c: talib.OBV(c["close"], c["volume"])),
    ("macd(close, 12, 26, 9)", lambda c: talib.MACD(c["close"], 12, 26, 9)[0]),
    ("macd_signal(close, 12, 26, 9)", lambda c: talib.MACD(c["close"], 12, 26, 9)[1]),
    ("macd_hist(close, 5, 35, 5)", lambda c: talib.MACD(c["close"], 5, 35, 5)[2]),
    ("bb_upper(close, 20, 2)", lambda c: talib.BBANDS(c["close"], 20, 2, 2)[0]),
    ("bb_middle(close, 20, 2)", lambda c: talib.BBANDS(c["close"], 20, 2, 2)[1]),
    ("bb_lower(close, 5, 1.5)", lambda c: talib.BBANDS(c["close"], 5, 1.5, 1.5)[2]),
    ("stoch_k(14, 3, 3)", lambda c: talib.STOCH(c["high"], c["low"], c["close"], 14, 3, 0, 3, 0)[0]),
    ("stoch_d(5, 3, 4)", lambda c: talib.STOCH(c["high"], c["low"], c["close"], 5, 3, 0, 4, 0)[1]),
    ("highest(high, 20)", lambda c: rolling(c["high"], 20, "max")),
    ("lowest(low, 10)", lambda c: rolling(c["low"], 10, "min")),
    ("abs(close - open)", lambda c: np.abs(c["close"] - c["open"])),
    ("min(open, close)", lambda c: np.minimum(c["open"], c["close"])),
    ("max(open, close)", lambda c: np.maximum(c["open"], c["close"])),
    # Functions of functions: TA-Lib from the inner series' first defined value on.
    ("sma(rsi(close, 14), 10)", lambda c: from_first_defined(talib.RSI(c["close"], 14), lambda x: talib.SMA(x, 10))),
    ("ema(close - sma(close, 50), 9)",
     lambda c: from_first_defined(c["close"] - talib.SMA(c["close"], 50), lambda x: talib.EMA(x, 9))),
    ("highest(atr(14), 5)", lambda c: rolling(talib.ATR(c["high"], c["low"], c["close"], 14), 5, "max")),
    # k bars ago, and arithmetic (division by zero is undefined).
    ("close[3]", lambda c: np.concatenate([np.full(3, np.nan), c["close"][:-3]])),
    ("(high - low) / (close - open)",
     lambda c: np.where(c["close"] == c["open"], np.nan, (c["high"] - c["low"]) / np.where(
         c["close"] == c["open"], 1.0, c["close"] - c["open"]))),
]


@pytest.mark.parametrize("expression,expected", CASES, ids=[c[0] for c in CASES])
def test_each_function_equals_talib(bars, expression, expected):
    data, columns = bars
    got = gt.evaluate(expression, data).to_numpy()
    want = np.asarray(expected(columns), dtype=float)
    assert np.array_equal(np.isnan(got), np.isnan(want)), expression
    defined = ~np.isnan(want)
    assert defined.any()
    np.testing.assert_allclose(got[defined], want[defined], rtol=1e-9, atol=1e-12)


def test_crossings_are_the_crossover_events_with_the_tie_band(bars):
    data, columns = bars
    fast, slow = talib.EMA(columns["close"], 10), talib.SMA(columns["close"], 30)
    up, down = ref.crossings(fast, slow)
    above = gt.evaluate("cross_above(ema(close, 10), sma(close, 30))", data).to_numpy()
    below = gt.evaluate("cross_below(ema(close, 10), sma(close, 30))", data).to_numpy()
    assert np.array_equal(above == 1, up) and np.array_equal(below == 1, down)
    defined = ~(np.isnan(fast) | np.isnan(slow))
    defined[1:] &= defined[:-1]
    defined[0] = False
    assert np.array_equal(~np.isnan(above), defined)  # undefined until both are defined now and a bar ago


def test_conditions_keep_undefined_in_three_valued_logic(bars):
    data, columns = bars
    rsi = talib.RSI(columns["close"], 14)
    got = gt.evaluate("rsi(close, 14) < 30 or close > 0", data).to_numpy()
    assert (got == 1).all()  # true whatever the undefined side is
    got = gt.evaluate("rsi(close, 14) < 30 and close < 0", data).to_numpy()
    assert (got == 0).all()  # false whatever the undefined side is
    got = gt.evaluate("not (rsi(close, 14) < 30)", data).to_numpy()
    with np.errstate(invalid="ignore"):
        want = np.where(np.isnan(rsi), np.nan, (rsi >= 30).astype(float))
    assert np.array_equal(got, want, equal_nan=True)


def test_parameters_and_series_of_ones_own_are_read_by_name(bars):
    data, columns = bars
    sentiment = np.cos(np.arange(len(columns["close"])) / 7.0)
    sentiment[::13] = np.nan
    got = gt.evaluate("sentiment * k + sma(close, n)", data, {"k": 2.5, "n": 5}, series={"sentiment": sentiment})
    np.testing.assert_allclose(got.to_numpy(), sentiment * 2.5 + talib.SMA(columns["close"], 5), rtol=1e-12)
