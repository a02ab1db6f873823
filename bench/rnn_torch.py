#!/usr/bin/env python3
"""PyTorch's LSTM/GRU layers on the cases of bench/rnn.c, for comparison on the same
machine (needs torch; the Debian python3 has 1.13). Prints JSON lines like bench_rnn.
Torch starts with one thread here (its OpenMP default on this machine); this sets it to
every core, as heed uses.
Usage: /usr/bin/python3 bench/rnn_torch.py [reps] [threads]"""
import json
import os
import sys
import time

import torch

reps = int(sys.argv[1]) if len(sys.argv) > 1 else 3
torch.set_num_threads(int(sys.argv[2]) if len(sys.argv) > 2 else os.cpu_count())
torch.manual_seed(0)
cases = [("lstm T=100 B=32 I=H=256", "lstm", 100, 32, 256, 256, False),
         ("gru T=100 B=32 I=H=256", "gru", 100, 32, 256, 256, False),
         ("blstm T=100 B=32 I=H=256", "lstm", 100, 32, 256, 256, True)]
for name, kind, T, B, I, H, bidir in cases:
    mod = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(I, H, bidirectional=bidir)
    D = 2 if bidir else 1
    x = torch.randn(T, B, I, requires_grad=True)
    seed = torch.randn(T, B, D * H)

    def step():
        y, _ = mod(x)
        y.backward(seed)

    step()
    best = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - t0)
    G = 4 if kind == "lstm" else 3
    flops = 6.0 * T * B * G * H * (I + H) * D
    print(json.dumps({"bench": "rnn_torch", "case": name, "torch": torch.__version__, "threads": torch.get_num_threads(),
                      "fwd_bwd_ms": round(best * 1e3, 2), "gflops": round(flops / best * 1e-9, 1)}))
