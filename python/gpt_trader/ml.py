"""Neural signal models (LSTM, GRU) with the seed system's names, over the C++ engine's LibTorch core.

    from gpt_trader import GPUAccelerator, GPUConfig, TradingNN, ModelConfig
    accel = GPUAccelerator(GPUConfig(device="auto"))          # CUDA, then MPS, then the CPU
    model = TradingNN(ModelConfig(model_type="lstm", hidden_dim=256, num_layers=3))
    X, y = accel.prepare_data(df, sequence_length=60, features=["return", "range", "volume_z"])
    history = accel.train_model(model, (X, y), epochs=100)
    p_up = accel.predict(model, df)                             # one value per bar (NaN before a full window)
    model.save("model.pt")                                      # gtrader predict/backtest read it

Windows, labels, splits and scaling follow the engine's no-look-ahead rules: features of a bar use
bars up to it, a window's label is the next bar, samples split in time order, and the scaler is
fitted on training bars only.
"""
from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np

from . import _core
from .data import DataLike, as_bars


@dataclass
class GPUConfig:
    """Where and how models run: device auto|cpu|cuda|cuda:N|mps; precision fp32|fp16|bf16 (CUDA)."""
    device: str = "auto"
    precision: str = "fp32"
    cuda_graphs: bool = True


@dataclass
class ModelConfig:
    """The network and its optimizer (AdamW with gradient clipping and early stopping)."""
    model_type: str = "lstm"
    hidden_dim: int = 128
    num_layers: int = 2
    dropout: float = 0.0
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    batch_size: int = 256
    patience: int = 10
    max_grad_norm: float = 1.0
    seed: int = 42


class TradingNN:
    """An LSTM/GRU signal model. Its weights exist once it is trained (or loaded)."""

    def __init__(self, config: ModelConfig | None = None):
        self.config = config or ModelConfig()
        self._model: Optional[_core.SignalModel] = None

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> "TradingNN":
        core = _core.SignalModel.load(str(path), device)
        spec = core.spec
        nn = cls(ModelConfig(model_type=spec["model_type"], hidden_dim=spec["hidden_dim"],
                             num_layers=spec["num_layers"], dropout=spec["dropout"]))
        nn._model = core
        return nn

    def save(self, path: str | os.PathLike) -> None:
        self._trained().save(str(path))

    @property
    def spec(self) -> dict:
        """What the model file holds besides its weights (features, window, scaler, network shape)."""
        return self._trained().spec

    @property
    def device(self) -> str:
        return self._trained().device

    def _trained(self) -> "_core.SignalModel":
        if self._model is None:
            raise RuntimeError("this TradingNN has no weights yet: train it with GPUAccelerator.train_model or load one")
        return self._model


class GPUAccelerator:
    """Prepares data, trains and predicts on the device its config names (printed when resolved)."""

    def __init__(self, config: GPUConfig | None = None, verbose: bool = True):
        self.config = config or GPUConfig()
        self.device = _core.resolve_device(self.config.device)
        # fp16 and bf16 run on CUDA only: elsewhere the same code runs in fp32, and says so.
        self.precision = self.config.precision if self.device.startswith("cuda") else "fp32"
        # What prepare_data made each X with (split, scaler, features), found again by identity.
        self._prepared: list[tuple[weakref.ref, dict]] = []
        if verbose:
            print(f"gpt_trader: models run on {self.device}"
                  + (" (auto: CUDA, then MPS, then CPU)" if self.config.device == "auto" else "")
                  + (f"; precision {self.config.precision} needs a CUDA GPU, so fp32 here"
                     if self.precision != self.config.precision else ""))

    def prepare_data(self, data: DataLike, sequence_length: int = 60, features: Sequence[str] | None = None,
                     label: str = "direction", validation_fraction: float = 0.15,
                     test_fraction: float = 0.15) -> tuple[np.ndarray, np.ndarray]:
        """Windows X (samples x sequence_length x features, float32) and labels y (float32) of one symbol."""
        import pandas as pd

        bars = as_bars(data)
        if len(bars) != 1:
            raise ValueError(f"prepare_data takes one symbol's bars, got {len(bars)}")
        d = _core.prepare_dataset(bars[0], sequence_length, list(features or []), label, validation_fraction,
                                  test_fraction)
        meta = {"sequence_length": sequence_length, "features": d["features"], "label": label,
                "validation_fraction": validation_fraction, "test_fraction": test_fraction,
                "scaler": d["scaler"], "train": d["train"], "validation": d["validation"], "test": d["test"],
                "end_time": pd.to_datetime(d["end_time"], unit="s"), "trained_on": bars[0].symbol}
        self._prepared = [(ref, m) for ref, m in self._prepared if ref() is not None]
        self._prepared.append((weakref.ref(d["X"]), meta))
        return d["X"], d["y"]

    def _meta_of(self, X) -> dict | None:
        return next((m for ref, m in self._prepared if ref() is X), None)

    def train_model(self, model: TradingNN, data: tuple, epochs: int = 100, validation_split: float = 0.15,
                    verbose: bool = False) -> dict:
        """Trains `model` on (X, y); returns the report (per-epoch history, best epoch, test figures).

        X from this accelerator's prepare_data keeps its own train/validation/test split, scaler and
        feature names (so the model can later predict from bars); other arrays are split in order,
        the last `validation_split` of the samples validating."""
        X, y = data
        meta = self._meta_of(X)
        X = np.ascontiguousarray(X, dtype=np.float32)
        y = np.ascontiguousarray(y, dtype=np.float32)
        if X.ndim != 3:
            raise ValueError(f"X must be samples x sequence_length x features, got shape {X.shape}")
        if meta is not None:
            train_end, validation_end = meta["train"][1], meta["validation"][1]
            spec_data = {k: meta[k] for k in ("sequence_length", "features", "label", "validation_fraction",
                                              "test_fraction", "scaler", "trained_on")}
        else:
            train_end = int(round(len(X) * (1 - validation_split)))
            validation_end = len(X)
            spec_data = {"sequence_length": X.shape[1], "features": [f"input_{i}" for i in range(X.shape[2])],
                         "label": "direction", "validation_fraction": validation_split, "test_fraction": 0.0,
                         "scaler": {"mean": [0.0] * X.shape[2], "scale": [1.0] * X.shape[2], "label_mean": 0.0,
                                    "label_scale": 1.0}, "trained_on": ""}
        c = model.config
        spec = {"model_type": c.model_type, "hidden_dim": c.hidden_dim, "num_layers": c.num_layers,
                "dropout": c.dropout, **spec_data}
        model._model = _core.SignalModel(spec, c.seed, self.device)
        options = {"epochs": epochs, "batch_size": c.batch_size, "learning_rate": c.learning_rate,
                   "weight_decay": c.weight_decay, "patience": c.patience, "max_grad_norm": c.max_grad_norm,
                   "seed": c.seed, "precision": self.precision, "cuda_graphs": self.config.cuda_graphs}
        report = model._model.train(X, y, train_end, validation_end, options)
        if verbose:
            for e in report["history"]:
                print(f"epoch {e['epoch']:>4}  train loss {e['train_loss']:.5f}  val loss {e['validation_loss']:.5f}")
        return report

    def predict(self, model: TradingNN, data: Any, batch_size: int = 0):
        """Windows (an ndarray of samples x L x F) -> one output each; bars (DataFrame, path, Bars) -> a
        Series over every bar, NaN where no full window ends. Outputs: P(up), or the expected return."""
        core = model._trained()
        precision = self.precision if core.device.startswith("cuda") else "fp32"
        if isinstance(data, np.ndarray):
            return core.predict(np.ascontiguousarray(data, dtype=np.float32), precision, batch_size)
        if core.spec["features"][0].startswith("input_"):
            raise ValueError("this model was trained on arrays, not on named features, so it cannot compute its "
                             "inputs from bars: pass windows (samples x sequence_length x features)")
        bars = as_bars(data)
        if len(bars) != 1:
            return {b.symbol: self.predict(model, b) for b in bars}
        import pandas as pd

        values = core.predict_bars(bars[0], precision)
        name = "p_up" if core.spec["label"] == "direction" else "expected_return"
        return pd.Series(values, index=pd.to_datetime(np.asarray(bars[0].time), unit="s"), name=name)
