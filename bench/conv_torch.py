#!/usr/bin/env python3
"""torch.nn.functional.conv2d forward + backward (dx, dw, dbias) on one case of
bench/conv.c (3x3 kernel, padding 1, float32), for the comparison bench_conv --pytorch
makes in the same run. Needs torch (the Debian python3 has 1.13). Prints one JSON line.
Usage: /usr/bin/python3 bench/conv_torch.py N C O H W [reps] [threads]"""
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

N, C, O, H, W = (int(a) for a in sys.argv[1:6])
reps = int(sys.argv[6]) if len(sys.argv) > 6 else 3
torch.set_num_threads(int(sys.argv[7]) if len(sys.argv) > 7 else os.cpu_count())
torch.manual_seed(0)
x = torch.randn(N, C, H, W, requires_grad=True)
w = (torch.randn(O, C, 3, 3) * 0.1).requires_grad_()
b = torch.zeros(O, requires_grad=True)
seed = torch.randn(N, O, H, W)


def step():
    x.grad = w.grad = b.grad = None
    F.conv2d(x, w, b, padding=1).backward(seed)


step()
best = 1e30
for _ in range(reps):
    t0 = time.perf_counter()
    step()
    best = min(best, time.perf_counter() - t0)
print(json.dumps({"bench": "conv2d_torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
                  "N": N, "C": C, "O": O, "H": H, "W": W, "fwd_bwd_ms": round(best * 1e3, 3)}))
