#!/usr/bin/env python3
"""The caption program's default model in PyTorch 1.13 with the same shapes and batch as
bench/caption_step.c: the decoder's training step on frozen-encoder annotations (B=64
scenes, 6x6 = 36 annotation vectors of 64, 16 steps, soft attention with the gate beta,
deep output, dropout 0.3, the doubly stochastic regulariser with lambda 0.05; forward,
backward, clipping, Adam) and the encoder's pretraining step (B=64 objects of 32x32), and
heed's bench_caption_step in the same run, alternating, so both see the same machine.
Prints one JSON line with both and the ratios torch / heed. Both use the same thread count.
Usage: /usr/bin/python3 bench/caption_torch.py [build/bench/bench_caption_step] [reps] [threads]"""
import json
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

exe = sys.argv[1] if len(sys.argv) > 1 else "build/bench/bench_caption_step"
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 5
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
torch.set_num_threads(threads)
torch.manual_seed(0)
B, N, D, L, V, S = 64, 36, 64, 16, 22, 32
E, H, A, LAMBDA = 64, 128, 64, 0.05


class Captioner(nn.Module):
    def __init__(self):
        super().__init__()
        chans = [1, 16, 32, D]
        self.convs = nn.ModuleList([nn.Conv2d(chans[i], chans[i + 1], 5 if i == 0 else 3, stride=2 if i == 0 else 1,
                                              padding=2 if i == 0 else 1) for i in range(3)])
        self.bns = nn.ModuleList([nn.BatchNorm2d(c) for c in chans[1:]])
        self.classifier = nn.Linear(D, 10)
        self.init_h, self.init_c = nn.Linear(D, H), nn.Linear(D, H)
        self.embed = nn.Embedding(V, E)
        self.q = nn.Linear(H, A)
        self.k = nn.Linear(D, A, bias=False)
        self.v = nn.Parameter(torch.randn(A) / A ** 0.5)
        self.beta = nn.Linear(H, 1)
        self.cell = nn.LSTMCell(E + D, H)
        self.out_h, self.out_z = nn.Linear(H, E, bias=False), nn.Linear(D, E, bias=False)
        self.out = nn.Linear(E, V)
        self.drop = nn.Dropout(0.3)

    def classify(self, x):
        for conv, bn in zip(self.convs, self.bns):
            x = F.max_pool2d(F.relu(bn(conv(x))), 2)
        return self.classifier(x.flatten(2).mean(2))

    def forward(self, a, targets):
        mean = a.mean(1)
        h, c = torch.tanh(self.init_h(mean)), torch.tanh(self.init_c(mean))
        keys = self.k(a)
        prev = torch.ones(B, dtype=torch.long)
        logits, alphas = [], []
        for t in range(L):
            emb = self.embed(prev)
            alpha = torch.softmax(torch.tanh(self.q(h).unsqueeze(1) + keys) @ self.v, 1)
            z = torch.sigmoid(self.beta(h)) * (alpha.unsqueeze(2) * a).sum(1)
            h, c = self.cell(torch.cat([emb, z], 1), (h, c))
            logits.append(self.out(self.drop(emb + self.out_h(h) + self.out_z(z))))
            alphas.append(alpha)
            prev = targets[:, t]
        ce = F.cross_entropy(torch.stack(logits, 1).reshape(B * L, V), targets.reshape(-1))
        reg = ((1 - torch.stack(alphas, 1).sum(1)) ** 2).sum() / B
        return ce + LAMBDA * reg


model = Captioner()
encoder = list(model.convs.parameters()) + list(model.bns.parameters()) + list(model.classifier.parameters())
decoder = [p for p in model.parameters() if all(p is not q for q in encoder)]
opt_dec = torch.optim.Adam(decoder, lr=1e-3)
opt_enc = torch.optim.Adam(encoder, lr=1e-3)
a = torch.rand(B, N, D)
targets = torch.randint(4, V, (B, L))
targets[:, -1] = 2
img = torch.rand(B, 1, S, S)
labels = torch.randint(0, 10, (B,))


def step():
    opt_dec.zero_grad()
    loss = model(a, targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(decoder, 5.0)
    opt_dec.step()


def pre_step():
    opt_enc.zero_grad()
    loss = F.cross_entropy(model.classify(img), labels)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(encoder, 5.0)
    opt_enc.step()


def best(fn):
    fn()
    b = 1e30
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        b = min(b, time.perf_counter() - t0)
    return b * 1e3


def heed_best():
    out = subprocess.run([exe, str(reps), str(threads)], capture_output=True, text=True, check=True).stdout
    j = json.loads(out.strip().splitlines()[-1])
    return j["step_ms"], j["pretrain_step_ms"]


t_dec, t_pre, h_dec, h_pre = [], [], [], []
for _ in range(2):  # alternate, so a change in the machine's load hits both
    t_dec.append(best(step))
    t_pre.append(best(pre_step))
    d, p = heed_best()
    h_dec.append(d)
    h_pre.append(p)
td, tp, hd, hp = min(t_dec), min(t_pre), min(h_dec), min(h_pre)
n_params = sum(p.numel() for p in model.parameters())
print(json.dumps({"bench": "caption_torch", "torch": torch.__version__, "threads": threads, "parameters": n_params,
                  "torch_step_ms": round(td, 2), "heed_step_ms": round(hd, 2), "torch_over_heed": round(td / hd, 2),
                  "torch_pretrain_step_ms": round(tp, 2), "heed_pretrain_step_ms": round(hp, 2),
                  "pretrain_torch_over_heed": round(tp / hp, 2)}))
