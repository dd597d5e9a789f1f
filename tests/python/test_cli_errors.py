"""Bad input: one clear message naming the file, line and field (or the allowed values), and a
non-zero exit code. Never a crash, never a silent skip."""
import pytest

from conftest import ALL_FILES, run_gtrader

GOOD = ALL_FILES[0]


def write(tmp_path, text, name="bad.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


HEADER = "Date,Open,High,Low,Close,Volume\n"


@pytest.mark.parametrize(
    "text,message",
    [
        (HEADER + "2020-01-02,1,1,1,1,1\n2020-01-02,1,1,1,1,1\n", "bad.csv:3: field 'Date': 2020-01-02 is not after"),
        (HEADER + "2020-01-03,1,1,1,1,1\n2020-01-02,1,1,1,1,1\n", "bad.csv:3: field 'Date'"),
        (HEADER + "2020-01-02,1,1,1,abc,1\n", "bad.csv:2: field 'Close': 'abc' is not a number"),
        (HEADER + "2020-01-02,-1,1,1,1,1\n", "bad.csv:2: field 'Open': price -1 must be finite and > 0"),
        (HEADER + "2020-01-02,1,1,1,inf,1\n", "bad.csv:2: field 'Close': price inf must be finite and > 0"),
        (HEADER + "2020-01-02,1,0.5,0.4,1,1\n", "bad.csv:2: field 'High': 0.5 is below max(Open, Close) = 1"),
        (HEADER + "2020-01-02,1,2,1.5,1,1\n", "bad.csv:2: field 'Low': 1.5 is above min(Open, Close) = 1"),
        ("Date,Open,High,Low,Volume\n2020-01-02,1,1,1,1\n", "bad.csv:1: missing column 'Close'"),
    ],
)
def test_bad_data(tmp_path, text, message):
    proc = run_gtrader("indicator", "SMA", "--period", "2", "--data", write(tmp_path, text), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert proc.stdout == ""


def test_missing_file():
    proc = run_gtrader("indicator", "SMA", "--data", "/no/such/file.csv", check=False)
    assert proc.returncode != 0
    assert "/no/such/file.csv: cannot open the file" in proc.stderr


def test_unknown_indicator_lists_the_allowed_names():
    proc = run_gtrader("indicator", "FOO", "--data", GOOD, check=False)
    assert proc.returncode != 0
    assert "unknown indicator 'FOO' (allowed: SMA, EMA, WMA, DEMA, TEMA, KAMA, RSI, ROC, ATR, ADX, OBV, MACD, BBANDS, STOCH)" in proc.stderr


@pytest.mark.parametrize("period,message", [("0", "period = 0 is out of range"), ("-3", "period = -3 is out of range"),
                                            ("999999", "is longer than the data (5036 bars)")])
def test_bad_period(period, message):
    proc = run_gtrader("indicator", "SMA", "--period", period, "--data", GOOD, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_skip_bad_rows_reports_the_count(tmp_path):
    p = write(tmp_path, HEADER + "2020-01-02,1,1,1,1,1\n2020-01-03,1,1,1,x,1\n2020-01-06,1,1,1,1,1\n")
    proc = run_gtrader("indicator", "SMA", "--period", "2", "--skip-bad-rows", "--data", p)
    assert "skipped 1 bad rows" in proc.stderr
    assert len(proc.stdout.splitlines()) == 3


@pytest.mark.parametrize(
    "args,message",
    [
        (["--strategy", "nope"], "unknown strategy 'nope' (allowed: ma_cross, rsi_reversion, bbands_reversion, macd_cross, donchian_breakout, model)"),
        (["--strategy", "ma_cross", "--param", "speed=3"], "strategy 'ma_cross' has no parameter 'speed' (its parameters: fast, slow, ma_type, volume_filter, stop_loss, take_profit, trailing_stop, max_bars, risk)"),
        (["--strategy", "ma_cross", "--param", "fast=40"], "ma_cross: fast = 40 must be below slow = 30"),
        (["--strategy", "ma_cross", "--param", "ma_type=7"], "ma_type = 7 is out of range (allowed: int 0 to 2)"),
        (["--strategy", "ma_cross", "--commission", "-0.01"], "commission = -0.01 is out of range"),
        (["--strategy", "ma_cross", "--size", "0"], "size = 0 is out of range (allowed: 0 < size <= 1)"),
        (["--strategy", "ma_cross", "--slippage-bps", "-1"], "slippage-bps = -1 is out of range"),
    ],
)
def test_bad_backtest_arguments(args, message):
    proc = run_gtrader("backtest", "--data", GOOD, *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr


def test_backtest_json_and_files(tmp_path):
    import json
    out = run_gtrader("backtest", "--data", GOOD, "--strategy", "ma_cross", "--json",
                      "--trades", tmp_path / "t.csv", "--equity", tmp_path / "e.csv").stdout
    result = json.loads(out)
    for key in ["total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "trades",
                "win_rate", "profit_factor", "exposure", "avg_trade_return"]:
        assert key in result
    trades = (tmp_path / "t.csv").read_text().splitlines()
    assert trades[0] == "entry_time,exit_time,side,entry_price,exit_price,units,pnl,return,bars_held,exit_reason"
    assert len(trades) - 1 >= result["trades"]
    equity = (tmp_path / "e.csv").read_text().splitlines()
    assert equity[0] == "time,equity,position,drawdown"
    assert len(equity) == 5037
