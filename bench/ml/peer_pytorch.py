"""The peer: the seed's case in PyTorch from Python, timed the way ml_bench times gtrader.

LSTM 2 x 128 (batch_first) and a linear head on the last step, 5,000 training sequences of
60 x 5 (random values: timing does not depend on them), batch 256, AdamW (PyTorch's default
implementation), BCE-with-logits loss; fp32, fp16 (autocast + GradScaler) and bf16 (autocast).
Inference: eval mode, no_grad, inputs already on the GPU, batch 1 to 65,536.
    python3 bench/ml/peer_pytorch.py --json peer.json
"""
import argparse
import json
import statistics
import time

import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, features, hidden, layers):
        super().__init__()
        self.rnn = nn.LSTM(features, hidden, num_layers=layers, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1]).squeeze(-1)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def train_epochs(device, precision, epochs, x, y, hidden, layers, batch=256):
    torch.manual_seed(42)
    net = Net(x.shape[2], hidden, layers).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    loss_fn = nn.BCEWithLogitsLoss()
    times = []
    for _ in range(epochs):
        sync(device)
        start = time.perf_counter()
        order = torch.randperm(x.shape[0], device=device)
        for b in range(0, x.shape[0], batch):
            idx = order[b:b + batch]
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                loss = loss_fn(net(x[idx]).float(), y[idx])
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
        sync(device)
        times.append(time.perf_counter() - start)
    return net, times


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--batches", default="1,16,256,4096,16384,65536")
    ap.add_argument("--precisions", default="fp32,fp16,bf16")
    ap.add_argument("--json")
    a = ap.parse_args()
    device = torch.device(a.device)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(5000, 60, 5, generator=g).to(device)
    y = (torch.rand(5000, generator=g) > 0.5).float().to(device)
    out = {"device": str(device), "torch": torch.__version__, "training": [], "predict": []}
    net = None
    for p in a.precisions.split(","):
        if p != "fp32" and device.type != "cuda":
            continue
        trained, times = train_epochs(device, p, a.epochs, x, y, a.hidden, a.layers)
        net = trained if p == "fp32" else net
        ms = 1e3 * statistics.median(times[1:])
        print(f"peer train {p:>4}: epoch {ms:8.2f} ms (first {1e3 * times[0]:8.2f} ms)", flush=True)
        out["training"].append({"precision": p, "epoch_ms": ms, "first_epoch_ms": 1e3 * times[0]})
    net.eval()
    for p in a.precisions.split(","):
        if p != "fp32" and device.type != "cuda":
            continue
        dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(p)
        for batch in [int(b) for b in a.batches.split(",")]:
            xb = torch.randn(batch, 60, 5, device=device)
            with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                for _ in range(3):
                    torch.sigmoid(net(xb)).float()
                sync(device)
                calls, start = 0, time.perf_counter()
                while True:
                    torch.sigmoid(net(xb)).float()
                    calls += 1
                    if calls >= 5 and time.perf_counter() - start > 0.5:
                        break
                sync(device)
                per_call = (time.perf_counter() - start) / calls
            print(f"peer predict {p:>4} batch {batch:>6}: {1e6 * per_call:10.1f} us per call "
                  f"{batch / per_call:12.0f} predictions/s", flush=True)
            out["predict"].append({"precision": p, "batch": batch, "us_per_call": 1e6 * per_call,
                                   "predictions_per_sec": batch / per_call})
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
