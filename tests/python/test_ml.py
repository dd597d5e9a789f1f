"""The signal models end to end: `gtrader train` -> `predict` -> `backtest --strategy model`, the
seed's Python names (GPUAccelerator, GPUConfig, TradingNN, ModelConfig), and the failures a user
meets (too few bars, bad values, files that are not models or do not match their own spec)."""
import json
import os
import re
import subprocess

import numpy as np
import pandas as pd
import pytest

import gpt_trader as gt
from conftest import DATA, gtrader_bin, run_gtrader

ORCL = DATA / "orcl-1995-2014.csv"

pytestmark = pytest.mark.skipif(not gt._core.torch_available(), reason="built without LibTorch (GT_TORCH=OFF)")

SMALL = ["--hidden", "16", "--layers", "1", "--seq-len", "20", "--epochs", "3", "--device", "cpu"]


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory):
    """The last 700 ORCL bars: seconds of CPU training."""
    path = tmp_path_factory.mktemp("ml") / "orcl-tail.csv"
    lines = ORCL.read_text().splitlines()
    path.write_text("\n".join([lines[0]] + lines[-700:]) + "\n")
    return path


@pytest.fixture(scope="module")
def trained(small_csv, tmp_path_factory):
    model = tmp_path_factory.mktemp("model") / "m.pt"
    proc = run_gtrader("train", "--data", small_csv, *SMALL, "--out", model, "--json")
    return model, json.loads(proc.stdout), proc


def test_commands_without_a_model_never_load_libtorch(small_csv, tmp_path):
    """LibTorch sits in a module loaded on the first call that needs it, so that the other commands
    start in milliseconds rather than spending half a second loading it."""
    env = dict(os.environ, LD_DEBUG="files")
    proc = subprocess.run([gtrader_bin(), "optimize", "--data", str(small_csv), "--strategy", "ma_cross", "--grid",
                           "fast=5:9", "--grid", "slow=20:24", "--no-cache"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    loads = lambda log, name: re.search(rf"file=\S*{name}\S* \[0\];", log) is not None  # noqa: E731
    assert not loads(proc.stderr, "libgt_torch") and not loads(proc.stderr, "libtorch")
    proc = subprocess.run([gtrader_bin(), "train", "--data", str(small_csv), *SMALL, "--out", str(tmp_path / "m.pt")],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and loads(proc.stderr, "libgt_torch") and loads(proc.stderr, "libtorch_cpu")
    # Without its module, the models fail saying what is missing and how to point at it.
    missing = tmp_path / "elsewhere" / "libgt_torch.so"
    proc = subprocess.run([gtrader_bin(), "train", "--data", str(small_csv), *SMALL, "--out", str(tmp_path / "n.pt")],
                          capture_output=True, text=True, env=dict(os.environ, GT_TORCH_MODULE=str(missing)))
    assert proc.returncode != 0 and not (tmp_path / "n.pt").exists()
    assert f"{missing}: no such file" in proc.stderr and "GT_TORCH_MODULE" in proc.stderr


def test_train_reports_each_epoch_and_writes_the_model(trained):
    model, report, proc = trained
    assert model.stat().st_size > 0
    assert report["device"] == "cpu" and report["epochs"] == 3 and len(report["history"]) == 3
    # Features start at bar 19 (volume_z's 20-bar window); each sample needs 20 bars and the next.
    assert report["train_samples"] + report["validation_samples"] + report["test_samples"] == 700 - 19 - 20
    assert 0 <= report["test_accuracy"] <= 1
    assert "device: cpu" in proc.stderr and proc.stderr.count("epoch ") == 3


def test_predict_gives_one_output_per_bar_with_a_full_window(trained, small_csv):
    model, _, _ = trained
    out = pd.read_csv(pd.io.common.StringIO(run_gtrader("predict", "--model", model, "--data", small_csv).stdout))
    assert list(out.columns) == ["time", "p_up"]
    # Features start at bar 19 (volume_z's 20-bar window); the first 20-bar window ends 19 bars later.
    assert len(out) == 700 - 19 - 19
    assert out["p_up"].between(0, 1).all()
    bars = pd.read_csv(small_csv)
    assert out["time"].iloc[0] == bars["Date"].iloc[19 + 19]


def test_python_predicts_what_the_cli_predicts(trained, small_csv):
    model, _, _ = trained
    cli = pd.read_csv(pd.io.common.StringIO(run_gtrader("predict", "--model", model, "--data", small_csv).stdout))
    accel = gt.GPUAccelerator(gt.GPUConfig(device="cpu"), verbose=False)
    series = accel.predict(gt.TradingNN.load(model, device="cpu"), small_csv).dropna()
    np.testing.assert_allclose(series.to_numpy(), cli["p_up"].to_numpy(), rtol=0, atol=1e-15)


def test_backtest_of_the_model_strategy(trained, small_csv):
    model, _, _ = trained
    flat = json.loads(run_gtrader("backtest", "--data", small_csv, "--strategy", "model", "--param", f"model={model}",
                                  "--param", "threshold=0.5", "--json").stdout)
    assert flat["trades"] == 0 and flat["exposure"] == 0  # no output is that far from 0.5
    cli = json.loads(run_gtrader("backtest", "--data", small_csv, "--strategy", "model", "--param", f"model={model}",
                                 "--json").stdout)
    py = next(iter(gt.backtest(str(small_csv), "model", {"model": str(model)}).values()))["metrics"]
    assert cli["trades"] == py["trades"]
    assert cli["sharpe"] == pytest.approx(py["sharpe"], rel=1e-12, abs=1e-12)


def test_seed_api_prepares_trains_predicts_and_round_trips(tmp_path):
    frame = pd.read_csv(ORCL).tail(600)
    accel = gt.GPUAccelerator(gt.GPUConfig(device="auto"), verbose=False)
    assert accel.device == gt._core.resolve_device("auto")
    model = gt.TradingNN(gt.ModelConfig(model_type="gru", hidden_dim=16, num_layers=2, dropout=0.1))
    X, y = accel.prepare_data(frame, sequence_length=30, features=["return", "range", "volume_z"])
    assert X.shape == (600 - 19 - 30, 30, 3) and X.dtype == np.float32 and y.shape == (X.shape[0],)
    assert set(np.unique(y)) <= {0.0, 1.0}
    report = accel.train_model(model, (X, y), epochs=2)
    assert len(report["history"]) == 2 and report["test_samples"] > 0
    windows = accel.predict(model, X)
    assert windows.shape == (X.shape[0],)
    path = tmp_path / "gru.pt"
    model.save(path)
    again = gt.TradingNN.load(path, device="cpu")
    assert again.config.model_type == "gru" and again.spec["features"] == ["return", "range", "volume_z"]
    np.testing.assert_array_equal(accel.predict(again, X), windows)
    # Bars in: the last sample (its label is the last bar) is the per-bar series at the bar before.
    series = accel.predict(again, frame)
    assert series.iloc[-2] == pytest.approx(float(accel.predict(again, X[-1:])[0]), abs=1e-6)


def test_arrays_without_names_train_but_cannot_predict_from_bars():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 10, 4)).astype(np.float32)
    y = (rng.random(200) > 0.5).astype(np.float32)
    accel = gt.GPUAccelerator(gt.GPUConfig(device="cpu"), verbose=False)
    model = gt.TradingNN(gt.ModelConfig(hidden_dim=8, num_layers=1))
    accel.train_model(model, (X, y), epochs=1)
    assert accel.predict(model, X).shape == (200,)
    with pytest.raises(ValueError, match="trained on arrays"):
        accel.predict(model, str(ORCL))


def test_too_few_bars_fail_saying_how_many_are_needed(tmp_path):
    lines = ORCL.read_text().splitlines()
    short = tmp_path / "short.csv"
    short.write_text("\n".join(lines[:51]) + "\n")
    proc = run_gtrader("train", "--data", short, "--seq-len", "60", "--out", tmp_path / "m.pt", check=False)
    assert proc.returncode == 2
    assert "50 bars are too few for sequence_length 60" in proc.stderr
    assert not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--model", "transformer"], "model_type 'transformer' is unknown; allowed: lstm, gru"),
        (["--features", "return,moon"], "unknown feature 'moon'"),
        (["--precision", "fp16", "--device", "cpu"], "precision fp16 needs a CUDA GPU"),
        (["--precision", "fp8"], "unknown precision 'fp8'; allowed: fp32, fp16, bf16"),
        (["--label", "up"], "unknown label 'up'; allowed: direction, return"),
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--validation", "0.6", "--test", "0.4"], "must leave at least 10% to train"),
    ],
)
def test_bad_training_options_fail_before_any_work(tmp_path, args, message):
    proc = run_gtrader("train", "--data", ORCL, *args, "--out", tmp_path / "m.pt", check=False)
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr
    assert "epoch" not in proc.stdout


def test_bad_values_in_data_fail_naming_the_line(tmp_path):
    lines = ORCL.read_text().splitlines()
    lines[300] = lines[300].split(",")[0] + ",nan,1,1,1,1,1"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    proc = run_gtrader("train", "--data", bad, *SMALL, "--out", tmp_path / "m.pt", check=False)
    assert proc.returncode == 2
    assert "bad.csv:301:" in proc.stderr


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit, used here only to edit a file
def test_files_that_are_not_models_or_not_their_own_shape_fail_clearly(trained, tmp_path, small_csv):
    proc = run_gtrader("predict", "--model", ORCL, "--data", small_csv, check=False)
    assert proc.returncode == 2 and "not a model file" in proc.stderr
    torch = pytest.importorskip("torch")
    model, _, _ = trained
    # A file whose spec says one shape and whose weights have another (hand-edited, or damaged).
    module = torch.jit.load(str(model))
    spec = json.loads(module.gt_spec)
    spec["hidden_dim"] = 32
    module.gt_spec = json.dumps(spec)
    edited = tmp_path / "edited.pt"
    torch.jit.save(module, str(edited))
    proc = run_gtrader("predict", "--model", edited, "--data", small_csv, check=False)
    assert proc.returncode == 2
    assert "weight 'rnn.weight_ih_l0' has shape [64, 5], but a lstm of hidden_dim 32" in proc.stderr
    proc = run_gtrader("backtest", "--data", small_csv, "--strategy", "model", check=False)
    assert proc.returncode == 2 and "--param model=FILE.pt" in proc.stderr
    proc = run_gtrader("optimize", "--data", small_csv, "--strategy", "model", "--grid", "threshold=0,0.1",
                       check=False)
    assert proc.returncode == 2 and "cannot be optimized over a grid" in proc.stderr
