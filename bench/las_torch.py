#!/usr/bin/env python3
"""The las program's default LAS model in PyTorch 1.13 with the same shapes and batch as
bench/las_step.c (B=32, 150 listener frames of 80 features, 36 characters), timed per
training step (forward, backward, clipping, Adam), and heed's bench_las_step run in the
same process run, alternating, so both see the same machine. Each step is timed by the
wall clock and by the process's CPU clock (best of reps each): on a machine loaded by
other jobs the wall time mostly measures the wait for a core, the CPU time (one thread)
the work. Prints one JSON line with both ratios torch / heed. Both use the same thread
count.
Usage: /usr/bin/python3 bench/las_torch.py [build/bench/bench_las_step] [reps] [threads]"""
import json
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

exe = sys.argv[1] if len(sys.argv) > 1 else "build/bench/bench_las_step"
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
torch.set_num_threads(threads)
torch.manual_seed(0)
B, T, FEAT, L, V = 32, 150, 80, 36, 30
H, P, S, E, A, C, K = 64, 2, 128, 32, 64, 8, 15


class LAS(nn.Module):
    def __init__(self):
        super().__init__()
        self.listener = nn.ModuleList([nn.LSTM(FEAT, H, bidirectional=True, batch_first=True)] +
                                      [nn.LSTM(4 * H, H, bidirectional=True, batch_first=True) for _ in range(P)])
        self.embed = nn.Embedding(V, E)
        self.cell0 = nn.LSTMCell(E + 2 * H, S)
        self.cell1 = nn.LSTMCell(S, S)
        self.q = nn.Linear(S, A)
        self.k = nn.Linear(2 * H, A, bias=False)
        self.v = nn.Parameter(torch.randn(A) / A ** 0.5)
        self.conv = nn.Conv1d(1, C, K, padding=K // 2, bias=False)
        self.loc = nn.Linear(C, A, bias=False)
        self.out = nn.Linear(S + 2 * H, V)
        self.drop = nn.Dropout(0.1)

    def forward(self, x, targets):
        h, _ = self.listener[0](x)
        for layer in self.listener[1:]:  # pyramid: pair frames, halve time (an odd last frame pairs with zeros)
            b, t, d = h.shape
            if t % 2:
                h = F.pad(h, (0, 0, 0, 1))
            h, _ = layer(h.reshape(b, (t + 1) // 2, 2 * d))
        keys = self.k(h)
        N = h.shape[1]
        hs = [x.new_zeros(B, S) for _ in range(4)]
        ctx = x.new_zeros(B, 2 * H)
        w = x.new_zeros(B, N)
        w[:, 0] = 1
        prev = torch.zeros(B, dtype=torch.long)
        logits = []
        for t in range(L):
            inp = torch.cat([self.embed(prev), ctx], 1)
            hs[0], hs[1] = self.cell0(inp, (hs[0], hs[1]))
            hs[2], hs[3] = self.cell1(hs[0], (hs[2], hs[3]))
            f = self.loc(self.conv(w.unsqueeze(1)).transpose(1, 2))  # [B, N, A]
            e = torch.tanh(self.q(hs[2]).unsqueeze(1) + keys + f) @ self.v
            w = torch.softmax(e, 1)
            ctx = (w.unsqueeze(2) * h).sum(1)
            logits.append(self.out(self.drop(torch.cat([hs[2], ctx], 1))))
            prev = targets[:, t]
        return F.cross_entropy(torch.stack(logits, 1).reshape(B * L, V), targets.reshape(-1), label_smoothing=0.1)


model = LAS()
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x = torch.randn(B, T, FEAT)
targets = torch.randint(2, V, (B, L))
targets[:, -1] = 1


def step():
    opt.zero_grad()
    loss = model(x, targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    return loss.item()


def torch_best():
    step()
    best, best_cpu = 1e30, 1e30
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        best, best_cpu = min(best, time.perf_counter() - t0), min(best_cpu, time.process_time() - c0)
    return best * 1e3, best_cpu * 1e3


def heed_best():
    out = subprocess.run([exe, str(reps), str(threads)], capture_output=True, text=True, check=True).stdout
    j = json.loads(out.strip().splitlines()[-1])
    return j["step_ms"], j["step_cpu_ms"]


torch_ms, heed_ms = [], []
for _ in range(2):  # alternate, so a change in the machine's load hits both
    torch_ms.append(torch_best())
    heed_ms.append(heed_best())
t, h = min(w for w, _ in torch_ms), min(w for w, _ in heed_ms)
tc, hc = min(c for _, c in torch_ms), min(c for _, c in heed_ms)
n_params = sum(p.numel() for p in model.parameters())
print(json.dumps({"bench": "las_torch", "torch": torch.__version__, "threads": threads, "parameters": n_params,
                  "torch_step_ms": round(t, 2), "heed_step_ms": round(h, 2), "torch_over_heed": round(t / h, 2),
                  "torch_step_cpu_ms": round(tc, 2), "heed_step_cpu_ms": round(hc, 2),
                  "torch_over_heed_cpu": round(tc / hc, 2)}))
