"""`gtrader live` and `gtrader replay` (docs/SEMANTICS.md "Live signals") on a real redis-server on
loopback with a password: the decisions equal the backtest's on every data file (read here from
`gtrader backtest --trades`: an entry or a rule exit fills at the open after its decision, an exit
by price or time within its bar); killed with SIGKILL at random moments and restarted, or with
Redis itself restarted, the signals stream is exactly an uninterrupted run's; bad bars are set
aside with their reason; a wrong password is told at once."""
import os
import random
import secrets
import signal
import subprocess
import threading
import time

import pandas as pd
import pytest

from conftest import ALL_FILES, DAILY_FILES, gtrader_bin, run_gtrader
from redis_server import RedisServer

STRATEGIES = {
    "ma_cross": ["--strategy", "ma_cross", "--param", "fast=10", "--param", "slow=30"],
    "stops and shorts": ["--strategy", "ma_cross", "--param", "fast=5", "--param", "slow=20", "--param",
                         "stop_loss=0.03", "--param", "take_profit=0.06", "--allow-short"],
    "rules at the close": ["--strategy-file", "strategies/trend_rsi.yaml", "--fill", "close"],
}


@pytest.fixture
def redis():
    server = RedisServer(password=secrets.token_hex(8))
    yield server
    server.stop()


def signals(redis, stream="signals"):
    """The signals stream as (symbol, time, action) in order."""
    entries = redis.command("XRANGE", stream, "-", "+")
    out = []
    for _, fields in entries:
        f = dict(zip(fields[::2], fields[1::2]))
        out.append((f[b"symbol"].decode(), f[b"time"].decode(), f[b"action"].decode()))
    return out


def expected_decisions(path, args, tmp_path):
    """What the backtest decided, from its trades: (symbol, decision bar's time, action)."""
    trades_csv = tmp_path / "trades.csv"
    run_gtrader("backtest", "--data", path, *args, "--trades", trades_csv)
    frame = pd.read_csv(path, dtype=str)
    times = list(frame["Date"] + " " + frame["Time"] if "Time" in frame else frame["Date"])
    before = {t: times[i - 1] for i, t in enumerate(times) if i > 0}
    close_fills = "--fill" in args and args[args.index("--fill") + 1] == "close"
    out = []
    for row in pd.read_csv(trades_csv, dtype=str, keep_default_na=False).itertuples():
        long = row.side == "long"
        out.append((row.entry_time if close_fills else before[row.entry_time], "buy" if long else "short"))
        if row.exit_reason in ("end", ""):
            continue
        ordered = row.exit_reason == "rule" and not close_fills
        out.append((before[row.exit_time] if ordered else row.exit_time, "sell" if long else "cover"))
    # A reversal's exit comes before its entry at the same decision; trades are in entry order.
    out.sort(key=lambda d: (times.index(d[0]), d[1] in ("buy", "short")))
    return [(path.stem, t, a) for t, a in out], times[-1]


def live(redis, *args, idle="1.5", check=True):
    return run_gtrader("live", "--redis", redis.url, "--bars-stream", "bars", "--signals-stream", "signals",
                       "--idle-exit", idle, *args, check=check)


# The crossover on every file; the other strategies on one.
CASES = [(path, "ma_cross") for path in ALL_FILES] + [(DAILY_FILES[0], name) for name in STRATEGIES if name != "ma_cross"]


@pytest.mark.parametrize("path, name", CASES, ids=[f"{p.stem}-{n}" for p, n in CASES])
def test_live_decisions_equal_the_backtests(path, name, redis, tmp_path):
    args = STRATEGIES[name]
    run_gtrader("replay", "--data", path, "--redis", redis.url, "--bars-stream", "bars")
    summary = live(redis, *args).stdout
    got = signals(redis)
    want, last_time = expected_decisions(path, args, tmp_path)
    # The last bar's order would fill after the file ends: the backtest cannot show it.
    assert [d for d in got if d[1] != last_time] == want
    assert len([d for d in got if d[1] == last_time]) <= 2
    assert f"{len(pd.read_csv(path))} bars, {len(got)} signals" in summary


def test_sigkill_at_random_moments_then_restart_gives_the_uninterrupted_signals(redis, tmp_path):
    args = STRATEGIES["stops and shorts"]
    for path in DAILY_FILES:
        run_gtrader("replay", "--data", path, "--redis", redis.url, "--bars-stream", "bars")
    live(redis, *args)
    uninterrupted = signals(redis)
    assert len(uninterrupted) > 400
    redis.command("DEL", "signals", "bars")
    redis.command("DEL", *[k for k in redis.command("KEYS", "gtrader:live:*")] or ["none"])
    # The bars arrive as a feed's would, for about two seconds, while the engine is killed again and again.
    replayed = threading.Thread(target=lambda: [
        run_gtrader("replay", "--data", path, "--redis", redis.url, "--bars-stream", "bars", "--speed", "5000")
        for path in DAILY_FILES])
    replayed.start()
    rng = random.Random(7)
    kills = 0
    command = [gtrader_bin(), "live", "--redis", redis.url, "--bars-stream", "bars", "--signals-stream", "signals",
               "--idle-exit", "1", *args]
    while True:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(rng.uniform(0.05, 0.3))
        done = False
        if not replayed.is_alive():
            last_bar = redis.command("XREVRANGE", "bars", "+", "-", "COUNT", 1)[0][0]
            done = redis.command("GET", "gtrader:live:bars:gtrader:signals:last") == last_bar
        if done or proc.poll() is not None:  # everything processed: let it finish
            assert proc.wait(timeout=60) == 0, proc.stderr.read()
            break
        os.kill(proc.pid, signal.SIGKILL)  # at any instant: between bars, or inside a transaction
        proc.wait()
        kills += 1
    replayed.join()
    assert kills >= 3, "the run should have been interrupted several times"
    assert signals(redis) == uninterrupted


def test_redis_restarted_mid_run_loses_and_repeats_nothing(tmp_path):
    password = secrets.token_hex(8)
    server = RedisServer(password=password, directory=tmp_path)
    lines = DAILY_FILES[0].read_text().splitlines()
    halves = [tmp_path / half / DAILY_FILES[0].name for half in ("first", "second")]  # one symbol
    for half in halves:
        half.parent.mkdir()
    halves[0].write_text("\n".join(lines[:2500]) + "\n")
    halves[1].write_text("\n".join([lines[0]] + lines[2500:]) + "\n")
    try:
        args = STRATEGIES["ma_cross"]
        run_gtrader("replay", "--data", halves[0], "--redis", server.url, "--bars-stream", "bars")
        command = [gtrader_bin(), "live", "--redis", server.url, "--bars-stream", "bars", "--signals-stream",
                   "signals", "--idle-exit", "3", *args]
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        last_bar = server.command("XREVRANGE", "bars", "+", "-", "COUNT", 1)[0][0]
        deadline = time.time() + 30
        while server.command("GET", "gtrader:live:bars:gtrader:signals:last") != last_bar:
            assert time.time() < deadline and proc.poll() is None
            time.sleep(0.05)
        server.stop()  # killed while the engine waits for bars; its append-only file keeps every acknowledged write
        time.sleep(0.5)
        server = RedisServer(password=password, port=server.port, directory=tmp_path)
        run_gtrader("replay", "--data", halves[1], "--redis", server.url, "--bars-stream", "bars")
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        assert "reconnection" in out
        want, last_time = expected_decisions(DAILY_FILES[0], args, tmp_path)
        assert [d for d in signals(server) if d[1] != last_time] == want
    finally:
        server.stop()


def test_the_model_strategy_decides_live_as_in_its_backtest(redis, tmp_path):
    """An LSTM trained here (CPU) predicts on each new window as bars arrive."""
    small = tmp_path / "small.csv"
    small.write_text("\n".join(DAILY_FILES[0].read_text().splitlines()[:601]) + "\n")
    model = tmp_path / "m.pt"
    run_gtrader("train", "--data", small, "--hidden", "16", "--layers", "1", "--seq-len", "20", "--epochs", "2",
                "--device", "cpu", "--out", model)
    args = ["--strategy", "model", "--param", f"model={model}", "--param", "threshold=0.002", "--allow-short"]
    run_gtrader("replay", "--data", small, "--redis", redis.url, "--bars-stream", "bars")
    summary = live(redis, *args).stdout
    got = signals(redis)
    want, last_time = expected_decisions(small, args, tmp_path)
    assert len(want) > 10
    assert [d for d in got if d[1] != last_time] == want
    assert "600 bars" in summary


def test_bad_bars_are_set_aside_with_their_reason_and_counted(redis):
    def bar(symbol, when, open_price=10):
        fields = {"symbol": symbol, "time": when, "open": open_price, "high": 11, "low": 9, "close": 10,
                  "volume": 1000}
        redis.command("XADD", "bars", "*", *sum([[k, v] for k, v in fields.items()], []))

    bar("a", "2020-01-02")
    bar("a", "2020-01-01")  # before the previous bar
    bar("a", "2020-01-03", open_price="ten")
    redis.command("XADD", "bars", "*", "symbol", "a", "time", "2020-01-04")  # no prices
    bar("b", "2020-01-03")  # another symbol's first bar: its own state
    summary = live(redis, *STRATEGIES["ma_cross"], idle="0.5").stdout
    assert "2 bars, 0 signals" in summary and "3 set aside in bars:dead" in summary
    dead = [dict(zip(f[::2], f[1::2])) for _, f in redis.command("XRANGE", "bars:dead", "-", "+")]
    reasons = [d[b"reason"].decode() for d in dead]
    assert "is not after the previous bar's 2020-01-02" in reasons[0]
    assert "field 'open': 'ten' is not a number" in reasons[1]
    assert "field 'open' is missing" in reasons[2]


def test_a_wrong_password_is_told_at_once(redis):
    proc = run_gtrader("live", "--redis", f"redis://:wrong@127.0.0.1:{redis.port}/0", "--bars-stream", "bars",
                       "--signals-stream", "signals", "--strategy", "ma_cross", check=False)
    assert proc.returncode == 2 and "authentication failed" in proc.stderr and "wrong" not in proc.stderr


def test_python_live_engine_and_replay_give_the_commands_signals(redis):
    import gpt_trader as gt

    assert gt.replay(str(DAILY_FILES[1]), redis.url, "bars") == len(pd.read_csv(DAILY_FILES[1]))
    report = gt.LiveEngine(redis.url, "bars", "signals", "ma_cross", {"fast": 5, "slow": 20}, idle_exit=0.5,
                           stop_loss=0.03, allow_short=True).run()
    from_python = signals(redis)
    assert report["bars"] == len(pd.read_csv(DAILY_FILES[1])) and report["decisions"] == len(from_python) > 100
    redis.command("DEL", "signals", *redis.command("KEYS", "gtrader:live:*"))
    redis.command("XGROUP", "DESTROY", "bars", "gtrader")
    live(redis, "--strategy", "ma_cross", "--param", "fast=5", "--param", "slow=20", "--param", "stop_loss=0.03",
         "--allow-short", idle="0.5")
    assert signals(redis) == from_python
