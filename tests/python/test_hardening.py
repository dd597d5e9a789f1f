"""What an adversarial new user tried, and what must happen instead: outputs through links,
devices and pipes, killed runs that leave no files behind, ruin, symbol names, CSV quoting,
leaked secrets and messages that name the cause. Each case failed before its fix."""
import csv
import io
import json
import os
import signal
import stat
import subprocess
import threading
import time

import pytest

from conftest import DAILY_FILES, DATA, gtrader_bin, run_gtrader

ORCL, YHOO = DAILY_FILES
BACKTEST = ["backtest", "--data", ORCL, "--strategy", "ma_cross"]


# -- 1. Outputs are written through links and into devices and pipes, never replacing them ------

def test_a_link_is_written_through_and_stays_a_link(tmp_path):
    target, link = tmp_path / "target.csv", tmp_path / "link.csv"
    target.write_text("old\n")
    link.symlink_to("target.csv")
    run_gtrader(*BACKTEST, "--trades", link)
    assert link.is_symlink() and os.readlink(link) == "target.csv"
    assert target.read_text().startswith("entry_time,")


def test_a_full_device_fails_the_run_and_stays_a_device():
    proc = run_gtrader(*BACKTEST, "--trades", "/dev/full", check=False)
    assert proc.returncode == 2 and "No space left on device" in proc.stderr
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_standard_output_receives_the_file():
    proc = run_gtrader(*BACKTEST, "--trades", "/dev/stdout")
    assert "entry_time,exit_time,side" in proc.stdout
    assert os.path.islink("/dev/stdout")


def test_a_named_pipe_is_written_to_and_stays_a_pipe(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_text()))
    reader.start()
    run_gtrader(*BACKTEST, "--trades", fifo)
    reader.join(10)
    assert received and received[0].startswith("entry_time,")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_folder_or_a_missing_folder_is_named_in_the_error(tmp_path):
    proc = run_gtrader(*BACKTEST, "--trades", tmp_path, check=False)
    assert proc.returncode == 2 and "is a folder" in proc.stderr and "Success" not in proc.stderr
    proc = run_gtrader(*BACKTEST, "--trades", tmp_path / "nodir" / "x.csv", check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# -- 6. Killed runs leave no temporary files ----------------------------------------------------

BIG = ["optimize", "--data", ORCL, "--strategy", "ma_cross", "--grid", "fast=2:60", "--grid", "slow=10:200",
       "--grid", "ma_type=0:2", "--allow-short", "--threads", "2", "--no-progress", "--no-cache"]


def start_and_wait_for_temp(out):
    proc = subprocess.Popen([gtrader_bin(), *map(str, BIG), "--out", str(out)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 30
    while not list(out.parent.glob(out.name + ".tmp.*")):
        assert proc.poll() is None and time.time() < deadline, "the run ended before its temporary file appeared"
        time.sleep(0.01)
    return proc


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stopped_run_removes_its_temporary_file(sig, tmp_path):
    out = tmp_path / "results.csv"
    proc = start_and_wait_for_temp(out)
    proc.send_signal(sig)
    proc.wait(30)
    assert proc.returncode == -sig
    assert list(tmp_path.iterdir()) == []


def test_a_killed_runs_temporary_file_is_removed_by_the_next_write(tmp_path):
    out = tmp_path / "results.csv"
    proc = start_and_wait_for_temp(out)
    proc.kill()
    proc.wait(30)
    assert len(list(tmp_path.glob("results.csv.tmp.*"))) == 1  # SIGKILL cannot be caught
    run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", "--grid", "fast=5:6", "--grid", "slow=20:21",
                "--no-cache", "--out", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


# -- 3. Ruin ------------------------------------------------------------------------------------

RUIN = ["--data", YHOO, "--strategy", "rsi_reversion", "--allow-short"]


def test_a_ruined_backtest_ends_at_zero_and_says_so():
    summary = json.loads(run_gtrader("backtest", *RUIN, "--param", "period=4", "--param", "lower=10", "--param",
                                     "upper=90", "--json").stdout)
    assert summary["ruined"] is True
    assert summary["total_return"] == -1.0 and summary["final_equity"] == 0.0 and summary["max_drawdown"] == 1.0
    text = run_gtrader("backtest", *RUIN, "--param", "period=4", "--param", "lower=10", "--param", "upper=90").stdout
    assert "RUINED" in text and "-100.00 %" in text


def test_ruined_combinations_rank_after_every_solvent_one(tmp_path):
    out = tmp_path / "results.csv"
    summary = json.loads(run_gtrader("optimize", *RUIN, "--grid", "period=2:8", "--grid", "lower=5,10,20,30",
                                     "--grid", "upper=70,80,90,95", "--top", "200", "--no-cache", "--out", out,
                                     "--json").stdout)
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    ruined = [r for r in rows if float(r["final_equity"]) == 0]
    solvent = [r for r in rows if float(r["final_equity"]) > 0]
    assert ruined and solvent
    assert any(float(r["sharpe"]) > max(float(s["sharpe"]) for s in solvent) for r in ruined) or \
        any(float(r["sharpe"]) > 0 for r in ruined)  # a ruined sharpe can look good: ranking must not trust it
    assert summary["best"]["final_equity"] > 0


# -- 2. An out-of-order row is the one bad row ---------------------------------------------------

@pytest.fixture
def mistyped_year(tmp_path):
    lines = ORCL.read_text().splitlines()
    fields = lines[501].split(",")
    fields[0] = "2096-12-23"  # line 502: a typo in the year
    lines[501] = ",".join(fields)
    path = tmp_path / "orcl.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_mistyped_year_is_blamed_on_its_own_line(mistyped_year):
    proc = run_gtrader(*["backtest", "--data", mistyped_year, "--strategy", "ma_cross"], check=False)
    assert proc.returncode == 2
    assert "orcl.csv:502: field 'Date': 2096-12-23 is out of order" in proc.stderr


def test_skipping_bad_rows_drops_the_outlier_alone_and_names_it(mistyped_year):
    proc = run_gtrader("backtest", "--data", mistyped_year, "--strategy", "ma_cross", "--skip-bad-rows", "--json")
    assert json.loads(proc.stdout)["bars"] == 5035
    assert "skipped 1 bad rows" in proc.stderr and "line 502" in proc.stderr


def test_python_skips_the_outlier_alone_and_names_it(mistyped_year):
    import gpt_trader as gt
    bars = gt.load(mistyped_year, skip_bad_rows=True)
    assert len(bars) == 5035 and bars.skipped_rows == 1
    assert bars.skipped[0].startswith("line 502: field 'Date': 2096-12-23")


# -- 4. Symbols never collide ------------------------------------------------------------------

def test_two_files_with_one_name_are_refused_naming_both(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.csv").write_bytes(ORCL.read_bytes())
    proc = run_gtrader("backtest", "--data", tmp_path / "a" / "x.csv", "--data", tmp_path / "b" / "x.csv",
                       "--strategy", "ma_cross", check=False)
    assert proc.returncode == 2
    assert "symbol name 'x'" in proc.stderr and "a/x.csv" in proc.stderr and "b/x.csv" in proc.stderr


def test_python_refuses_two_unnamed_frames_and_takes_names_from_a_dict():
    import pandas as pd
    import gpt_trader as gt
    frame = pd.read_csv(ORCL, parse_dates=["Date"], index_col="Date")
    with pytest.raises(ValueError, match="pass a dict"):
        gt.backtest([frame, frame], "ma_cross", {})
    results = gt.backtest({"one": frame, "two": ORCL}, "ma_cross", {})
    assert sorted(results) == ["one", "two"]


def test_a_frame_is_checked_row_by_row_like_a_file():
    import pandas as pd
    import gpt_trader as gt
    frame = pd.read_csv(ORCL, parse_dates=["Date"], index_col="Date")
    frame.iloc[3, frame.columns.get_loc("Low")] = frame["High"].iloc[3] + 1
    with pytest.raises(ValueError, match="row 3: field 'Low'"):
        gt.backtest(frame, "ma_cross", {})


# -- 5. CSV written by the tool is quoted (RFC 4180) and read back ------------------------------

def test_a_symbol_with_a_comma_is_quoted_and_the_report_reads_it(tmp_path):
    odd = tmp_path / 'my,sym "x".csv'
    odd.write_bytes(ORCL.read_bytes())
    data = ["--data", odd, "--data", YHOO]
    results, trades = tmp_path / "results.csv", tmp_path / "trades.csv"
    run_gtrader("optimize", *data, "--strategy", "ma_cross", "--grid", "fast=5:7", "--grid", "slow=20:22",
                "--no-cache", "--out", results)
    rows = list(csv.DictReader(io.StringIO(results.read_text())))
    assert {r["symbol"] for r in rows} == {'my,sym "x"', "yhoo-1996-2014"}
    run_gtrader("backtest", *data, "--strategy", "ma_cross", "--trades", trades, "--equity", tmp_path / "eq.csv")
    assert {r["symbol"] for r in csv.DictReader(io.StringIO(trades.read_text()))} == {'my,sym "x"', "yhoo-1996-2014"}
    assert {r["symbol"] for r in csv.DictReader(io.StringIO((tmp_path / "eq.csv").read_text()))} == {
        'my,sym "x"', "yhoo-1996-2014"}
    run_gtrader("report", "--results", results, "--symbol", 'my,sym "x"', "--out", tmp_path / "report.html")
    assert "my,sym" in (tmp_path / "report.html").read_text()


# -- 7. Ray options: bad values exit 2 naming the option, an unreachable cluster fails fast -----

SMALL = ["optimize", "--data", ORCL, "--strategy", "ma_cross", "--grid", "fast=5:6", "--grid", "slow=20:21"]


@pytest.mark.parametrize("option", [["--workers", "abc"], ["--workers", "0"], ["--workers", "-2"],
                                    ["--chunk-size", "-1"], ["--chunk-size", "0"]], ids=lambda o: " ".join(o))
def test_bad_ray_options_exit_2_naming_the_option(option):
    proc = run_gtrader(*SMALL, "--engine", "ray", *option, check=False)
    assert proc.returncode == 2, proc.stderr
    assert option[0] in proc.stderr and "Traceback" not in proc.stderr


def test_an_unreachable_ray_cluster_fails_within_seconds_naming_the_address():
    start = time.time()
    proc = run_gtrader(*SMALL, "--engine", "ray", "--address", "127.0.0.1:1", check=False)
    assert proc.returncode == 2 and "127.0.0.1:1" in proc.stderr and "Traceback" not in proc.stderr
    assert time.time() - start < 15


# -- 8. Passwords never appear; a malformed cache location is an error --------------------------

@pytest.mark.parametrize("url", ["redis://:s3cret@127.0.0.1:6390/-1", "redis://:s3cret@127.0.0.1:99999/0",
                                 "redis://:s3cret@127.0.0.1:abc/0", "rediss://:s3cret@127.0.0.1:6379/0",
                                 "redis://user:s3cret@127.0.0.1:1/0", "redis://s3cret@127.0.0.1:1/0"])
def test_the_password_is_masked_in_every_message(url):
    proc = run_gtrader(*SMALL, "--cache", url, check=False)
    assert proc.returncode == 2
    assert "s3cret" not in proc.stderr + proc.stdout and "***" in proc.stderr


def test_a_url_with_a_slash_missing_is_an_error_not_a_folder(tmp_path):
    proc = subprocess.run([gtrader_bin(), *map(str, SMALL), "--cache", "redis:/127.0.0.1:6379"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 2 and "malformed" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# -- 9. Inputs beyond what the arithmetic holds are refused, never answered with nan or inf -----

def scaled_copy(tmp_path, scale):
    lines = ORCL.read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        f = line.split(",")
        out.append(",".join([f[0], *(repr(float(x) * scale) for x in f[1:5]), *f[5:]]))
    path = tmp_path / "scaled.csv"
    path.write_text("\n".join(out) + "\n")
    return path


@pytest.mark.parametrize("scale", [1e306, 1e-310])
def test_prices_outside_the_engines_range_are_refused(scale, tmp_path):
    proc = run_gtrader("backtest", "--data", scaled_copy(tmp_path, scale), "--strategy", "ma_cross", check=False)
    assert proc.returncode == 2 and "is outside [1e-12, 1e+12]" in proc.stderr
    assert "nan" not in proc.stdout and "inf" not in proc.stdout


@pytest.mark.parametrize("option", [["--cash", "1e308"], ["--periods-per-year", "0"], ["--periods-per-year", "-1"]])
def test_options_outside_their_range_are_refused(option):
    proc = run_gtrader(*BACKTEST, *option, check=False)
    assert proc.returncode == 2 and "out of range" in proc.stderr and option[0].lstrip("-").replace("-", "") in \
        proc.stderr.replace("-", "").replace("_", "")


def test_python_refuses_the_same_options():
    import gpt_trader as gt
    with pytest.raises(ValueError, match="cash"):
        gt.backtest(str(ORCL), "ma_cross", {}, cash=1e308)
    with pytest.raises(ValueError, match="periods"):
        gt.backtest(str(ORCL), "ma_cross", {}, periods_per_year=0)


def test_extreme_slippage_gives_finite_metrics():
    summary = json.loads(run_gtrader(*BACKTEST, "--slippage-bps", "9999", "--json").stdout)
    for name, value in summary.items():
        if isinstance(value, float):
            assert value == value and abs(value) != float("inf"), name


# -- 10. Messages that name the cause -------------------------------------------------------------

def test_a_byte_order_mark_is_passed_over(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbf" + ORCL.read_bytes())
    assert json.loads(run_gtrader("backtest", "--data", path, "--strategy", "ma_cross", "--json").stdout)["bars"] == 5036


def test_a_gzip_file_is_read_and_a_binary_one_named(tmp_path):
    import gzip
    (tmp_path / "orcl.csv.gz").write_bytes(gzip.compress(ORCL.read_bytes()))
    summary = json.loads(run_gtrader("backtest", "--data", tmp_path / "orcl.csv.gz", "--strategy", "ma_cross",
                                     "--json").stdout)
    assert summary["bars"] == 5036 and summary["symbol"] == "orcl"
    (tmp_path / "sheet.csv").write_bytes(b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 4)
    proc = run_gtrader("backtest", "--data", tmp_path / "sheet.csv", "--strategy", "ma_cross", check=False)
    assert proc.returncode == 2 and "not a text CSV file" in proc.stderr
    assert len(proc.stderr) < 300  # the bytes are not echoed


def test_a_huge_grid_bound_and_a_negative_thread_count_are_named():
    proc = run_gtrader(*SMALL[:5], "--grid", "fast=5:99999999999999999999", check=False)
    assert proc.returncode == 2 and "100001 is out of range (allowed: 2 to 100000)" in proc.stderr
    proc = run_gtrader(*SMALL, "--threads", "-1", check=False)
    assert proc.returncode == 2 and "0 to 4096" in proc.stderr and len(proc.stderr) < 200


def test_the_png_folder_is_checked_before_anything_is_written(tmp_path):
    results = tmp_path / "results.csv"
    run_gtrader(*SMALL, "--no-cache", "--out", results)
    proc = run_gtrader("report", "--results", results, "--out", tmp_path / "r.html", "--png", tmp_path / "no" / "x.png",
                       check=False)
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert not (tmp_path / "r.html").exists()


@pytest.fixture
def fake_servers():
    """A port that accepts and never answers, and one that answers like a web server."""
    import socket
    silent, web = socket.socket(), socket.socket()
    for s in (silent, web):
        s.bind(("127.0.0.1", 0))
        s.listen(8)
    stop = threading.Event()

    def serve():
        web.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = web.accept()
            except OSError:
                continue
            conn.recv(1024)
            conn.sendall(b"<html>400 Bad Request</html>\r\n")
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield silent.getsockname()[1], web.getsockname()[1]
    stop.set()
    thread.join()
    silent.close()
    web.close()


def test_a_cache_port_that_is_not_redis_is_named_as_such(fake_servers):
    silent, web = fake_servers
    proc = run_gtrader(*SMALL, "--cache", f"redis://127.0.0.1:{silent}/0", check=False)
    assert proc.returncode == 2 and "no answer within 5 s" in proc.stderr
    proc = run_gtrader(*SMALL, "--cache", f"redis://127.0.0.1:{web}/0", check=False)
    assert proc.returncode == 2 and "does not speak Redis's protocol" in proc.stderr


# -- 13. Nothing is accepted silently ------------------------------------------------------------

def test_a_grid_without_a_valid_combination_is_an_error_and_writes_nothing(tmp_path):
    proc = run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", "--grid", "fast=30:40", "--grid",
                       "slow=10:20", "--out", tmp_path / "r.csv", "--json", check=False)
    assert proc.returncode == 2 and "none of the grid's 121 combinations is valid" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_python_refuses_a_grid_without_a_valid_combination():
    import gpt_trader as gt
    with pytest.raises(ValueError, match="none of the grid's"):
        gt.optimize(str(ORCL), "ma_cross", {"fast": "30:40", "slow": "10:20"})


@pytest.fixture
def three_bars(tmp_path):
    path = tmp_path / "three.csv"
    path.write_text("\n".join(ORCL.read_text().splitlines()[:4]) + "\n")
    return path


def test_too_few_bars_for_the_strategy_is_an_error(three_bars):
    proc = run_gtrader("backtest", "--data", three_bars, "--strategy", "ma_cross", check=False)
    assert proc.returncode == 2 and "3 bars" in proc.stderr and "needs at least 31 bars" in proc.stderr
    proc = run_gtrader("optimize", "--data", three_bars, "--strategy", "ma_cross", "--grid", "slow=20:30", check=False)
    assert proc.returncode == 2 and "needs at least 21 bars" in proc.stderr


def test_python_refuses_too_few_bars(three_bars):
    import gpt_trader as gt
    with pytest.raises(ValueError, match="needs at least 31 bars"):
        gt.backtest(str(three_bars), "ma_cross", {})


@pytest.mark.parametrize("text,message", [
    ("grid:\n  fast: 5:9\ngrid:\n  slow: 20:24\n", "key 'grid' appears twice"),
    ("grid:\n  fast: 5:9\n  fast: 6:7\n", "key 'fast' appears twice"),
    ("grid:\n  fast: 5:9\nslo: 20\n", "unknown key 'slo'"),
    ("", "the grid file is empty"),
    ("strategy: rsi_reversion\ngrid:\n  period: 5:9\n", "a grid of strategy 'rsi_reversion', not 'ma_cross'"),
])
def test_grid_files_that_would_lose_or_ignore_something_are_refused(text, message, tmp_path):
    grid = tmp_path / "grid.yaml"
    grid.write_text(text)
    proc = run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", "--grid-file", grid, check=False)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr


@pytest.mark.parametrize("args,message", [
    (["--param", "fast=5", "--param", "fast=7"], "--param fast is given twice"),
    (["--trades", ""], "an empty path"),
])
def test_repeated_params_and_empty_paths_are_refused(args, message):
    proc = run_gtrader(*BACKTEST, *args, check=False)
    assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.parametrize("args,message", [(["--top", "-1"], "--top"), (["--out", ""], "an empty path")])
def test_optimize_refuses_a_negative_top_and_an_empty_out(args, message):
    proc = run_gtrader(*SMALL, *args, check=False)
    assert proc.returncode == 2 and message in proc.stderr


@pytest.mark.parametrize("word,expected", [("TRUE", True), ("on", True), ("Yes", True), ("OFF", False),
                                           ("False", False), ("0", False)])
def test_booleans_are_read_in_any_case_in_the_cli_and_python(word, expected):
    import gpt_trader as gt
    summary = json.loads(run_gtrader(*BACKTEST, "--param", f"volume_filter={word}", "--json").stdout)
    assert summary["parameters"]["volume_filter"] is expected
    results = gt.backtest(str(ORCL), "ma_cross", {"volume_filter": word})
    assert next(iter(results.values()))["metrics"]["trades"] == summary["trades"]


# -- 11. Python: wrong arguments are TypeError/ValueError naming the argument -------------------

def python_error(call):
    import gpt_trader as gt
    try:
        call(gt)
    except (TypeError, ValueError) as exc:
        return type(exc), str(exc)
    raise AssertionError("no error")


@pytest.mark.parametrize("call,kind,words", [
    (lambda gt: gt.load(str(DATA)), ValueError, "is a folder"),
    (lambda gt: gt.backtest(str(ORCL), "ma_cross", {}, commission="0.1"), TypeError, "commission must be a number"),
    (lambda gt: gt.backtest(str(ORCL), "ma_cross", {}, comission=0.1), TypeError, "unknown argument 'comission'"),
    (lambda gt: gt.indicator("SMA", str(ORCL), period="5"), TypeError, "period must be a whole number"),
    (lambda gt: gt.indicator("SMA", str(ORCL), perod=5), TypeError, "unknown argument 'perod'"),
    (lambda gt: gt.optimize(str(ORCL), "ma_cross", {"fast": "5:9"}, top=-1), ValueError, "top must be"),
    (lambda gt: gt.backtest(str(ORCL), "ma_cross", "fast=5"), TypeError, "params must be a dict"),
    (lambda gt: gt.optimize(str(ORCL), "ma_cross", "fast=5:9"), TypeError, "param_grid must be a dict"),
    (lambda gt: gt.backtest({}, "ma_cross"), ValueError, "no market data given"),
    (lambda gt: gt.backtest(42, "ma_cross"), TypeError, "unsupported market data"),
], ids=["load-folder", "string-commission", "typo-option", "string-period", "typo-period", "negative-top",
        "string-params", "string-grid", "empty-dict", "a-number"])
def test_python_arguments_fail_naming_what_is_accepted(call, kind, words):
    got_kind, message = python_error(call)
    assert got_kind is kind and words in message, message
    assert "std::" not in message and "Invoked with" not in message


def test_yfinance_style_columns_are_named():
    import pandas as pd
    frame = pd.read_csv(ORCL, parse_dates=["Date"], index_col="Date")[["Open", "High", "Low", "Close", "Volume"]]
    frame.columns = pd.MultiIndex.from_product([frame.columns, ["ORCL"]])
    _, message = python_error(lambda gt: gt.backtest(frame, "ma_cross"))
    assert "MultiIndex" in message and "xs(" in message


# -- 12. What the docs promise holds -------------------------------------------------------------

@pytest.mark.parametrize("damage", ["truncated", "random", "zeroed"])
def test_a_damaged_cache_file_is_recomputed_and_counted(damage, tmp_path):
    import random
    args = [*SMALL, "--cache-dir", tmp_path / "cache", "--json"]
    first = json.loads(run_gtrader(*args).stdout)
    store = tmp_path / "cache" / "results.log"
    data = store.read_bytes()
    store.write_bytes({"truncated": data[: len(data) // 2], "random": random.Random(7).randbytes(len(data)),
                       "zeroed": bytes(len(data))}[damage])
    again = json.loads(run_gtrader(*args).stdout)
    assert again["computed"] > 0 and again["cache_rejected"] >= again["computed"]
    assert again["best"] == first["best"]


def test_reduced_precision_on_a_cpu_falls_back_to_fp32_and_says_so(capsys):
    import gpt_trader as gt
    accel = gt.GPUAccelerator(gt.GPUConfig(device="cpu", precision="bf16"))
    assert accel.precision == "fp32"
    assert "bf16 needs a CUDA GPU, so fp32 here" in capsys.readouterr().out


# -- 6. A study that cannot fit is refused before it starts, with an estimate -------------------

HUGE = ["--grid", "fast=2:100000", "--grid", "slow=2:100000"]


def test_a_grid_the_disk_cannot_hold_is_refused_with_an_estimate(tmp_path):
    proc = run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", *HUGE, "--out", tmp_path / "r.csv",
                       check=False)
    assert proc.returncode == 2 and "does not fit" in proc.stderr and "9999800001 combinations" in proc.stderr
    assert "--force" in proc.stderr and list(tmp_path.iterdir()) == []


def test_python_refuses_the_same_study():
    import gpt_trader as gt
    with pytest.raises(ValueError, match="does not fit"):
        gt.optimize(str(ORCL), "ma_cross", {"fast": "2:100000", "slow": "2:100000"}, out="/tmp/never-written.csv")
    assert not os.path.exists("/tmp/never-written.csv")


def png_rows(path):
    """A PNG's pixel rows as bytes (RGB or RGBA, 8 bits), read with zlib alone."""
    import struct
    import zlib
    data = path.read_bytes()
    at, chunks, width, height, channels = 8, b"", 0, 0, 0
    while at < len(data):
        length, kind = struct.unpack(">I4s", data[at:at + 8])
        body = data[at + 8:at + 8 + length]
        if kind == b"IHDR":
            width, height, depth, color = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and color in (2, 6)
            channels = 3 if color == 2 else 4
        elif kind == b"IDAT":
            chunks += body
        at += 12 + length
    raw, stride, rows, prev = zlib.decompress(chunks), width * channels, [], bytearray(width * channels)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = prev[x], prev[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 255
            elif kind == 2:
                line[x] = (line[x] + up) & 255
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        prev = line
    return rows, width, channels


def test_the_report_picture_shows_the_whole_table(tmp_path):
    results, png = tmp_path / "results.csv", tmp_path / "r.png"
    run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", "--grid", "fast=5:8", "--grid", "slow=20:23",
                "--no-cache", "--out", results)
    run_gtrader("report", "--results", results, "--out", tmp_path / "r.html", "--png", png)
    rows, width, channels = png_rows(png)
    # Nothing is drawn in the rightmost 20 pixels: the table (the widest thing) ends inside the page.
    for row in rows:
        edge = row[(width - 20) * channels:]
        assert min(edge) > 230, "something is drawn at the picture's right edge: the table is cut off"
