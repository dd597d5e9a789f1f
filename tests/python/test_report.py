"""HTML reports, rendered the way a user opens them: in a browser (Debian's chromium, headless, a
fresh profile, no network), with every chart drawn and no console error."""
import json
import os
import shutil
import subprocess
import time

import pytest

from conftest import DATA, gtrader_bin, run_gtrader

ORCL = DATA / "orcl-1995-2014.csv"
SEED_GRID = ["--grid", "fast=5:19", "--grid", "slow=20:49", "--grid", "ma_type=0:2", "--grid",
             "volume_filter=false,true"]


def render(page, tmp_path, screenshot=None):
    """(status text, console lines, seconds) of `page` in headless chromium."""
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed (scripts/setup.sh installs it)"
    args = [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    start = time.perf_counter()
    proc = subprocess.run(args + ["--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    status = proc.stdout.split('id="gt-status">', 1)[1].split("<", 1)[0] if 'id="gt-status">' in proc.stdout else ""
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    if screenshot:
        subprocess.run(args + ["--window-size=1300,1800", "--virtual-time-budget=10000", f"--screenshot={screenshot}",
                               page.as_uri()], capture_output=True, timeout=120, check=True)
    return status, console, seconds


@pytest.fixture(scope="module")
def seed_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "results.csv"
    run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", *SEED_GRID, "--out", out, "--no-cache")
    return out


def test_the_seed_grid_report_draws_every_chart_is_small_and_opens_fast(seed_results, tmp_path):
    page = tmp_path / "report.html"
    proc = run_gtrader("report", "--results", seed_results, "--x", "fast", "--y", "slow", "--metric", "sharpe",
                       "--out", page)
    assert f"report written to {page}" in proc.stdout
    assert page.stat().st_size < 5_000_000
    html = page.read_text()
    assert "http://" not in html.split("<script>", 1)[0] and "<script src" not in html  # nothing fetched
    status, console, _ = render(page, tmp_path, screenshot=tmp_path / "report.png")
    charts = dict(item.split("=") for item in status.split())
    assert charts["charts"] == charts["drawn"] == "2", status
    assert int(charts["ms"]) < 2000, f"the page took {charts['ms']} ms to draw"
    assert not [line for line in console if "ERROR" in line or "Error" in line or "WARN" in line], console
    assert (tmp_path / "report.png").stat().st_size > 20_000  # a drawn page, not a blank one
    # The table's first row is the best combination by sharpe, as `optimize` ranks it.
    best = json.loads(run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", *SEED_GRID, "--json",
                                  "--no-cache").stdout)["best"]["parameters"]
    assert f"best: fast={best['fast']} slow={best['slow']} ma_type={best['ma_type']}" in html


def test_a_backtest_report_draws_price_fills_equity_and_drawdown(tmp_path):
    page = tmp_path / "backtest.html"
    run_gtrader("backtest", "--data", ORCL, "--strategy", "ma_cross", "--param", "fast=10", "--param", "slow=30",
                "--param", "stop_loss=0.03", "--param", "take_profit=0.06", "--report", page)
    status, console, _ = render(page, tmp_path)
    charts = dict(item.split("=") for item in status.split())
    assert charts["charts"] == charts["drawn"] == "3", status
    assert not [line for line in console if "ERROR" in line or "WARN" in line], console
    html = page.read_text()
    # Fills by reason: entries, and each exit coloured by why it happened.
    for marker in ("long entry", "exit: rule", "exit: stop_loss", "exit: take_profit"):
        assert f'"fill":"{marker}"' in html, marker


def test_heatmap_choices_are_shown_and_bad_requests_fail_clearly(seed_results, tmp_path):
    page = tmp_path / "mean.html"
    run_gtrader("report", "--results", seed_results, "--x", "slow", "--y", "fast", "--metric", "max_drawdown",
                "--others", "mean", "--out", page)
    html = page.read_text()
    assert "max_drawdown over slow x fast (mean over the other parameters (2))" in html
    assert "ranked by max_drawdown (lower is better)" in html
    status, _, _ = render(page, tmp_path)
    assert "drawn=2" in status, status
    for args, message in [
        (["--metric", "alpha"], "metric 'alpha' is not in the results; available: total_return"),
        (["--x", "speed"], "parameter 'speed' is not in the results"),
        (["--others", "median"], "--others 'median' is unknown; allowed: best, mean, max"),
    ]:
        proc = run_gtrader("report", "--results", seed_results, *args, "--out", tmp_path / "x.html", check=False)
        assert proc.returncode == 2 and message in proc.stderr, proc.stderr
        assert not (tmp_path / "x.html").exists()
    broken = tmp_path / "broken.csv"
    broken.write_text(seed_results.read_text().splitlines()[0] + "\n5,20,0,false,abc\n")
    proc = run_gtrader("report", "--results", broken, "--out", tmp_path / "x.html", check=False)
    assert proc.returncode == 2 and "broken.csv:2: 5 fields, the header has 21" in proc.stderr


def test_png_pictures_for_terminals(seed_results, tmp_path):
    png = tmp_path / "report.png"
    proc = run_gtrader("report", "--results", seed_results, "--out", tmp_path / "r.html", "--png", png)
    assert f"picture written to {png}" in proc.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    bt_png = tmp_path / "bt.png"
    run_gtrader("backtest", "--data", ORCL, "--strategy", "ma_cross", "--report", tmp_path / "bt.html",
                "--report-png", bt_png)
    assert bt_png.read_bytes()[:4] == b"\x89PNG"
    proc = run_gtrader("backtest", "--data", ORCL, "--strategy", "ma_cross", "--report-png", bt_png, check=False)
    assert proc.returncode == 2 and "give --report too" in proc.stderr


def test_a_walk_forward_report_draws_equity_sharpes_and_parameters(tmp_path):
    page = tmp_path / "walkforward.html"
    proc = run_gtrader("walkforward", "--data", ORCL, "--strategy", "ma_cross", "--grid", "fast=5,10,15", "--grid",
                       "slow=30,50", "--train", "1000", "--test", "500", "--report", page)
    assert f"report written to {page}" in proc.stderr
    status, console, _ = render(page, tmp_path)
    charts = dict(item.split("=") for item in status.split())
    assert charts["charts"] == charts["drawn"] == "3", status
    assert not [line for line in console if "ERROR" in line or "WARN" in line], console
    html = page.read_text()
    for text in ("Out-of-sample equity against buy-and-hold", "buy and hold", "Sharpe per window, in and out of sample",
                 "Parameters chosen, by test window", "walk-forward efficiency"):
        assert text in html, text


def test_optimize_robustness_report_draws_the_logits_and_the_rank_scatter(tmp_path):
    """`optimize --robustness --report`: the study's report with its robustness panel (the logits'
    histogram and the chronological split's rank scatter), no results file asked for and none left."""
    page, temp = tmp_path / "robust.html", tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.run([str(gtrader_bin()), "optimize", "--data", str(ORCL),
                           "--strategy", "ma_cross", *SEED_GRID, "--robustness", "--report", str(page), "--json",
                           "--no-cache", "--cache-dir", str(tmp_path / "cache")],
                          capture_output=True, text=True, env={**os.environ, "TMPDIR": str(temp)})
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["report"] == str(page)
    assert list(temp.iterdir()) == []  # the temporary results file is gone
    (robust,) = summary["robustness"]
    status, console, _ = render(page, tmp_path)
    charts = dict(item.split("=") for item in status.split())
    assert charts["charts"] == charts["drawn"] == "4", status
    assert not [line for line in console if "ERROR" in line or "WARN" in line], console
    html = page.read_text()
    assert f"Probability of backtest overfitting {robust['pbo']:.3f}" in html
    assert f"Deflated Sharpe ratio {robust['deflated_sharpe']:.3f}" in html
    assert "Logits of the 12870 splits" in html and "first half of the bars (in sample)" in html
    # Without robustness the report has no panel; a grid that varies one parameter has no heatmap.
    plain = tmp_path / "plain.html"
    run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", *SEED_GRID, "--report", plain, "--no-cache",
                "--cache-dir", tmp_path / "cache")
    assert "Is the best combination real?" not in plain.read_text()
    bad = run_gtrader("optimize", "--data", ORCL, "--strategy", "ma_cross", "--grid", "fast=5:9", "--report",
                      tmp_path / "one.html", "--no-cache", "--cache-dir", tmp_path / "cache", check=False)
    assert bad.returncode == 2 and "--report draws a heatmap over two parameters" in bad.stderr, bad.stderr
    assert not (tmp_path / "one.html").exists()


def test_a_report_of_several_symbols_has_a_section_for_each(tmp_path):
    """`optimize --report` over two symbols: each symbol's heading, heatmap, distributions, robustness
    panel and best combinations; `gtrader report --symbol` draws one of them alone."""
    yhoo = DATA / "yhoo-1996-2014.csv"
    page, out = tmp_path / "two.html", tmp_path / "two.csv"
    summary = json.loads(run_gtrader("optimize", "--data", ORCL, "--data", yhoo, "--strategy", "ma_cross", *SEED_GRID,
                                     "--robustness", "--report", page, "--out", out, "--json", "--no-cache",
                                     "--cache-dir", tmp_path / "cache").stdout)
    status, console, _ = render(page, tmp_path)
    charts = dict(item.split("=") for item in status.split())
    assert charts["charts"] == charts["drawn"] == "8", status
    assert not [line for line in console if "ERROR" in line or "WARN" in line], console
    html = page.read_text()
    for robust in summary["robustness"]:
        assert f"<h2>{robust['symbol']}</h2>" in html
        assert f"Probability of backtest overfitting {robust['pbo']:.3f}" in html
        best = robust["parameters"]
        section = html.split(f"<h2>{robust['symbol']}</h2>", 1)[1]
        assert f"{robust['symbol']}: " in section and f"best: fast={best['fast']} slow={best['slow']}" in section
    assert len(summary["robustness"]) == 2
    one = tmp_path / "one.html"
    run_gtrader("report", "--results", out, "--symbol", summary["robustness"][1]["symbol"], "--out", one)
    status, _, _ = render(one, tmp_path)
    assert dict(item.split("=") for item in status.split())["charts"] == "2", status
    assert "<h2>" + summary["robustness"][0]["symbol"] + "</h2>" not in one.read_text()
