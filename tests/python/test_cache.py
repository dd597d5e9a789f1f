"""Durable results end to end: `gtrader optimize` killed with SIGKILL and resumed, and the result
cache on a real redis-server started here on loopback (killed mid-run, with a password, with
damaged entries). The on-disk store's framing and checksums are tested in tests/cpp/cache_test.cpp."""
import json
import pathlib
import random
import signal
import subprocess
import time

import pytest

from conftest import DAILY_FILES, gtrader_bin, run_gtrader
from redis_server import RedisServer

# Shorts force the reference engine: a grid of ~128,000 combinations runs for a few seconds, long
# enough to be killed at several points.
BIG = ["optimize", "--data", DAILY_FILES[0], "--data", DAILY_FILES[1], "--strategy", "ma_cross",
       "--grid", "fast=2:60", "--grid", "slow=10:200", "--grid", "ma_type=0:2", "--grid", "volume_filter=false,true",
       "--allow-short", "--threads", "2", "--no-progress"]
SEED = ["optimize", "--data", DAILY_FILES[0], "--strategy", "ma_cross", "--grid", "fast=5:19", "--grid", "slow=20:49",
        "--grid", "ma_type=0:2", "--grid", "volume_filter=false,true", "--no-progress"]


@pytest.fixture(scope="module")
def clean_big(tmp_path_factory):
    """The uninterrupted run's results file, computed without any cache."""
    out = tmp_path_factory.mktemp("clean") / "results.csv"
    summary = json.loads(run_gtrader(*BIG, "--no-cache", "--out", out, "--json").stdout)
    return out.read_bytes(), summary


def stored_bytes(folder):
    return sum(p.stat().st_size for p in pathlib.Path(folder).rglob("*.log")) if pathlib.Path(folder).exists() else 0


def kill_at_random_points(args, kills, seed, store, total_entries):
    """Starts `args` `kills` times and kills each with SIGKILL at a random point of the work it
    has left: once the store under `store` has grown by 5% to 30% of what is still missing (an
    entry takes at least 112 bytes), so every run is killed mid-work, however fast the machine."""
    rng = random.Random(seed)
    for _ in range(kills):
        before = stored_bytes(store)
        target = before + rng.uniform(0.05, 0.3) * max(0, total_entries * 112 - before)
        proc = subprocess.Popen([gtrader_bin(), *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while stored_bytes(store) < target and proc.poll() is None:
            time.sleep(0.005)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_sigkill_then_resume_gives_the_clean_runs_file(tmp_path, clean_big):
    clean_bytes, clean_summary = clean_big
    out = tmp_path / "results.csv"
    cache_dir = tmp_path / "cache"
    args = [*BIG, "--no-cache", "--cache-dir", cache_dir, "--out", out, "--resume"]
    kill_at_random_points(args, kills=4, seed=2026, store=cache_dir, total_entries=clean_summary["valid"])
    assert not out.exists(), "a killed run must not leave a partial results file"
    journals = list((cache_dir / "runs").iterdir())
    assert len(journals) == 1  # the run's journal, kept for --resume

    summary = json.loads(run_gtrader(*args, "--json").stdout)
    assert out.read_bytes() == clean_bytes
    assert summary["from_cache"] > 0 and summary["computed"] < clean_summary["valid"]
    assert summary["computed"] + summary["from_cache"] == clean_summary["valid"]
    assert summary["best"] == clean_summary["best"]
    assert not journals[0].exists(), "a completed run's journal is removed"


def test_without_resume_a_no_cache_run_starts_over(tmp_path):
    args = [*SEED, "--no-cache", "--cache-dir", tmp_path, "--json"]
    first = json.loads(run_gtrader(*args).stdout)
    again = json.loads(run_gtrader(*args).stdout)
    assert first["computed"] == again["computed"] == 2700 and again["from_cache"] == 0


def test_with_the_cache_on_a_killed_run_is_resumed_by_running_it_again(tmp_path, clean_big):
    clean_bytes, clean_summary = clean_big
    out = tmp_path / "results.csv"
    args = [*BIG, "--cache-dir", tmp_path / "cache", "--out", out]
    kill_at_random_points(args, kills=2, seed=7, store=tmp_path / "cache", total_entries=clean_summary["valid"])
    summary = json.loads(run_gtrader(*args, "--json").stdout)
    assert out.read_bytes() == clean_bytes
    assert 0 < summary["from_cache"] < clean_summary["valid"]
    rerun = json.loads(run_gtrader(*args, "--json").stdout)
    assert rerun["computed"] == 0 and rerun["from_cache"] == clean_summary["valid"]
    assert out.read_bytes() == clean_bytes


# ---- Redis -----------------------------------------------------------------------------------

@pytest.fixture
def redis():
    server = RedisServer()
    yield server
    server.stop()


def test_two_processes_share_results_through_redis(redis, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    first = json.loads(run_gtrader(*SEED, "--cache", redis.url, "--out", a, "--json").stdout)
    second = json.loads(run_gtrader(*SEED, "--cache", redis.url, "--out", b, "--json").stdout)
    assert (first["computed"], first["from_cache"]) == (2700, 0)
    assert (second["computed"], second["from_cache"]) == (0, 2700)
    assert a.read_bytes() == b.read_bytes()
    assert second["cache"] == f"redis://127.0.0.1:{redis.port}/0"
    keys = redis.command("KEYS", "gt-v3-*")
    assert len(keys) == 1 and redis.command("HLEN", keys[0]) == 2700


def test_redis_killed_mid_run_warns_and_the_run_completes_without_it(redis, tmp_path, clean_big):
    clean_bytes, _ = clean_big
    out = tmp_path / "results.csv"
    proc = subprocess.Popen([gtrader_bin(), *map(str, BIG), "--cache", redis.url, "--out", str(out), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until the run has stored results there (it was in use), however slow the machine is.
    deadline = time.monotonic() + 60
    while not redis.command("KEYS", "gt-v3-*") and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it was cut off: make BIG bigger"
    assert redis.command("HLEN", redis.command("KEYS", "gt-v3-*")[0]) > 0
    redis.stop()
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert f"warning: result cache redis://127.0.0.1:{redis.port}/0 unavailable" in stderr
    assert stderr.count("unavailable") == 1
    assert out.read_bytes() == clean_bytes


def test_redis_with_a_password(tmp_path):
    server = RedisServer(password="s3cret")
    try:
        summary = json.loads(run_gtrader(*SEED, "--cache", server.url, "--json").stdout)
        assert summary["computed"] == 2700
        assert summary["cache"] == f"redis://:***@127.0.0.1:{server.port}/0"  # never the password

        missing = run_gtrader(*SEED, "--cache", f"redis://127.0.0.1:{server.port}/0", check=False)
        assert missing.returncode != 0
        assert "NOAUTH" in missing.stderr and "redis://:PASSWORD@host:port/db" in missing.stderr

        wrong = run_gtrader(*SEED, "--cache", f"redis://:nope@127.0.0.1:{server.port}/0", check=False)
        assert wrong.returncode != 0
        assert "authentication failed" in wrong.stderr and "nope" not in wrong.stderr
    finally:
        server.stop()


def test_a_damaged_or_foreign_redis_entry_is_recomputed(redis, tmp_path):
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    run_gtrader(*SEED, "--cache", redis.url, "--out", a)
    ns = redis.command("KEYS", "gt-v3-*")[0]
    fields = sorted(redis.command("HKEYS", ns))
    damaged = bytearray(redis.command("HGET", ns, fields[10]))
    damaged[40] ^= 0x01  # one bit of one parameter or metric
    redis.command("HSET", ns, fields[10], bytes(damaged))
    # Another combination's intact entry under this combination's key.
    redis.command("HSET", ns, fields[20], redis.command("HGET", ns, fields[21]))

    proc = run_gtrader(*SEED, "--cache", redis.url, "--out", b, "--json")
    summary = json.loads(proc.stdout)
    assert (summary["computed"], summary["from_cache"], summary["cache_rejected"]) == (2, 2698, 2)
    assert "2 damaged or foreign cache entries were ignored" in proc.stderr
    assert a.read_bytes() == b.read_bytes()
    # The recomputed entries were written back intact.
    again = json.loads(run_gtrader(*SEED, "--cache", redis.url, "--json").stdout)
    assert (again["computed"], again["cache_rejected"]) == (0, 0)


SMALL = ["optimize", "--data", DAILY_FILES[0], "--strategy", "ma_cross", "--grid", "fast=5:9", "--grid", "slow=20:24",
         "--no-progress", "--json"]


@pytest.mark.parametrize("option", [["--slippage-bps", "50"], ["--commission", "0.002"], ["--size", "0.5"],
                                    ["--allow-short"], ["--cash", "5000"], ["--fill", "close"],
                                    ["--periods-per-year", "250"]], ids=lambda o: o[0])
def test_a_study_under_another_option_is_never_served_from_the_cache(option, tmp_path):
    cache = ["--cache-dir", tmp_path / "cache"]
    first = json.loads(run_gtrader(*SMALL, *cache, "--out", tmp_path / "a.csv").stdout)
    assert first["computed"] == 25 and first["from_cache"] == 0
    again = json.loads(run_gtrader(*SMALL, *cache, "--out", tmp_path / "b.csv").stdout)
    assert again["from_cache"] == 25  # the cache works: the same study is served
    changed = json.loads(run_gtrader(*SMALL, *option, *cache, "--out", tmp_path / "c.csv").stdout)
    assert changed["computed"] == 25 and changed["from_cache"] == 0, option
    uncached = json.loads(run_gtrader(*SMALL, *option, "--no-cache", "--out", tmp_path / "d.csv").stdout)
    assert (tmp_path / "c.csv").read_bytes() == (tmp_path / "d.csv").read_bytes()
    assert changed["best"] == uncached["best"]
