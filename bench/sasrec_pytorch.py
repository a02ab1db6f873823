#!/usr/bin/env python3
"""SASRec in PyTorch, the same model as heed's models/sasrec.c, to time an epoch on the same
data and machine (examples/sasrec/bench_epoch.c runs it when asked to).

Model: item embedding * sqrt(d) + learned positions, dropout, timeline mask; per block
LN -> causal attention (queries from the normalised input, padded keys masked, dropout on
the weights) -> residual from the normalised input -> LN -> point-wise feed-forward with
residual -> mask; final LN. Loss: BCE on the next item and one sampled negative at every
non-padding position. Adam (lr 0.001, betas 0.9, 0.98). Epoch: every user with two or more
training items once, in batches, rows built as the reference sampler does.

Prints one JSON line: {"seconds_per_epoch": ..., "loss": ...}.
"""
import argparse
import json
import math
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def load(path):
    seqs = {}
    n_items = 0
    with open(path) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            u, i = int(parts[0]), int(parts[1])
            seqs.setdefault(u, []).append(i)
            n_items = max(n_items, i)
    train = {u: (s[:-2] if len(s) >= 3 else s) for u, s in seqs.items()}
    return train, n_items


class Block(nn.Module):
    def __init__(self, d, heads, p):
        super().__init__()
        self.ln1 = nn.LayerNorm(d, eps=1e-8)
        self.q, self.k, self.v = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-8)
        self.w1, self.w2 = nn.Linear(d, d), nn.Linear(d, d)
        self.heads, self.p = heads, p

    def forward(self, x, bias, mask):
        B, N, d = x.shape
        H = self.heads
        z = self.ln1(x)
        q = self.q(z).view(B, N, H, d // H).transpose(1, 2)
        k = self.k(x).view(B, N, H, d // H).transpose(1, 2)
        v = self.v(x).view(B, N, H, d // H).transpose(1, 2)
        s = q @ k.transpose(-1, -2) / math.sqrt(d // H) + bias
        a = torch.softmax(s, -1)
        a = F.dropout(a, self.p, self.training)
        o = (a @ v).transpose(1, 2).reshape(B, N, d)
        y = self.ln2(z + o)
        f = F.dropout(F.relu(self.w1(y)), self.p, self.training)
        f = F.dropout(self.w2(f), self.p, self.training)
        return (y + f) * mask


class SASRec(nn.Module):
    def __init__(self, n_items, maxlen, d, blocks, heads, p):
        super().__init__()
        self.item = nn.Embedding(n_items + 1, d, padding_idx=0)
        self.pos = nn.Embedding(maxlen, d)
        self.blocks = nn.ModuleList(Block(d, heads, p) for _ in range(blocks))
        self.ln = nn.LayerNorm(d, eps=1e-8)
        self.p, self.d, self.maxlen = p, d, maxlen

    def forward(self, seq):
        B, N = seq.shape
        mask = (seq != 0).unsqueeze(-1).float()
        causal = torch.ones(N, N, dtype=torch.bool).triu(1)
        # -1e9 rather than -inf: a padded query sees no real key, and softmax of an all -inf
        # row is NaN; its output is masked away at the end of the block either way
        bias = torch.zeros(B, 1, N, N).masked_fill(causal, -1e9)
        bias = bias.masked_fill((seq == 0)[:, None, None, :], -1e9)
        x = self.item(seq) * math.sqrt(self.d) + self.pos.weight[:N]
        x = F.dropout(x, self.p, self.training) * mask
        for b in self.blocks:
            x = b(x, bias, mask)
        return self.ln(x)

    def loss(self, seq, pos, neg):
        h = self.forward(seq)
        pl = (h * self.item(pos)).sum(-1)
        nl = (h * self.item(neg)).sum(-1)
        m = pos != 0
        return (F.binary_cross_entropy_with_logits(pl[m], torch.ones_like(pl[m]), reduction="sum")
                + F.binary_cross_entropy_with_logits(nl[m], torch.zeros_like(nl[m]), reduction="sum")) / m.sum()


def rows(train, users, maxlen, n_items, rng):
    B = len(users)
    seq = [[0] * maxlen for _ in range(B)]
    pos = [[0] * maxlen for _ in range(B)]
    neg = [[0] * maxlen for _ in range(B)]
    for r, u in enumerate(users):
        s = train[u]
        seen = set(s)
        nxt, idx = s[-1], maxlen - 1
        for i in reversed(s[:-1]):
            seq[r][idx], pos[r][idx] = i, nxt
            t = rng.randint(1, n_items)
            while t in seen:
                t = rng.randint(1, n_items)
            neg[r][idx] = t
            nxt = i
            idx -= 1
            if idx < 0:
                break
    return torch.tensor(seq), torch.tensor(pos), torch.tensor(neg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--maxlen", type=int, default=50)
    ap.add_argument("--hidden", type=int, default=50)
    ap.add_argument("--blocks", type=int, default=2)
    ap.add_argument("--heads", type=int, default=1)
    ap.add_argument("--dropout", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    train, n_items = load(args.data)
    users = [u for u, s in train.items() if len(s) >= 2]
    model = SASRec(n_items, args.maxlen, args.hidden, args.blocks, args.heads, args.dropout)
    for name, p in model.named_parameters():
        if p.dim() > 1:
            nn.init.xavier_uniform_(p)
    opt = torch.optim.Adam(model.parameters(), lr=0.001, betas=(0.9, 0.98))
    rng = random.Random(1)
    times, losses = [], []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        order = users[:]
        rng.shuffle(order)
        total = 0.0
        steps = 0
        for b0 in range(0, len(order), args.batch):
            seq, pos, neg = rows(train, order[b0:b0 + args.batch], args.maxlen, n_items, rng)
            opt.zero_grad()
            loss = model.loss(seq, pos, neg)
            loss.backward()
            opt.step()
            total += loss.item()
            steps += 1
        times.append(time.perf_counter() - t0)
        losses.append(total / steps)
    print(json.dumps({"seconds_per_epoch": min(times), "loss": losses[-1], "threads": torch.get_num_threads(),
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
