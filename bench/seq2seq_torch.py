#!/usr/bin/env python3
"""examples/seq2seq.c in PyTorch 1.13, line for line the same model, data and loop: it
learns to reverse sequences of 3..12 symbols (vocabulary 10, plus PAD, BOS, EOS) with an
embedding, a bidirectional LSTM encoder over the true lengths, a linear bridge from its
final state, an LSTM-cell decoder with additive attention and input feeding, a masked
loss, greedy decoding and an attention heatmap (a PGM: no matplotlib here). It is the
reference for the line count and the speed of bench/seq2seq.c.
Usage: /usr/bin/python3 bench/seq2seq_torch.py [--steps N] [--batch B] [--lr LR] [--seed S]
       [--eval-every N] [--threads N] [--heatmap PATH]"""
import argparse
import json
import random
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, BOS, EOS, V, MAXLEN, E, H, D, A = 0, 1, 2, 13, 12, 32, 64, 128, 64
ap = argparse.ArgumentParser()
for flag, kind, default in [("steps", int, 5000), ("batch", int, 64), ("lr", float, 3e-3), ("seed", int, 1),
                            ("eval-every", int, 50), ("threads", int, 0), ("heatmap", str, "seq2seq-attention.pgm")]:
    ap.add_argument("--" + flag, type=kind, default=default)
args = ap.parse_args()
random.seed(args.seed)
torch.manual_seed(args.seed)
if args.threads:
    torch.set_num_threads(args.threads)


def held_out(s):  # a tenth of all sequences, never trained on
    return sum((i + 1) * x for i, x in enumerate(s)) % 10 == 0


def sample(n, want_held_out):  # src [n, MAXLEN], lengths [n], decoder input and target [n, MAXLEN + 1]
    seqs = []
    while len(seqs) < n:
        s = [random.randrange(3, V) for _ in range(random.randint(3, MAXLEN))]
        if held_out(s) == want_held_out:
            seqs.append(s)
    tgt = [s[::-1] + [EOS] + [PAD] * (MAXLEN - len(s)) for s in seqs]
    src = [s + [PAD] * (MAXLEN - len(s)) for s in seqs]
    return (torch.tensor(src), torch.tensor([len(s) for s in seqs]), torch.tensor([[BOS] + t[:-1] for t in tgt]),
            torch.tensor(tgt))


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(V, E, padding_idx=PAD)
        self.enc = nn.LSTM(E, H, batch_first=True, bidirectional=True)
        self.bridge_h, self.bridge_c = nn.Linear(2 * H, D), nn.Linear(2 * H, D)
        self.cell = nn.LSTMCell(E + 2 * H, D)
        self.query_proj, self.key_proj = nn.Linear(D, A), nn.Linear(2 * H, A, bias=False)
        self.v = nn.Linear(A, 1, bias=False)
        self.out = nn.Linear(D + 2 * H, V)

    def encode(self, src, lengths):  # -> the keys, their projection, the padding and the decoder state
        packed = nn.utils.rnn.pack_padded_sequence(self.emb(src), lengths, batch_first=True, enforce_sorted=False)
        out, (h, c) = self.enc(packed)
        keys = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=MAXLEN)[0]
        pad = torch.arange(MAXLEN)[None] >= lengths[:, None]
        h0, c0 = torch.tanh(self.bridge_h(torch.cat([h[0], h[1]], 1))), self.bridge_c(torch.cat([c[0], c[1]], 1))
        return keys, self.key_proj(keys), pad, (h0, c0, keys.new_zeros(len(src), 2 * H))

    def step(self, enc, y, state):  # one decoder step from the embedded previous token y
        keys, keys_proj, pad, (h, c, context) = enc[0], enc[1], enc[2], state
        h, c = self.cell(torch.cat([y, context], 1), (h, c))
        scores = self.v(torch.tanh(self.query_proj(h)[:, None] + keys_proj)).squeeze(2).masked_fill(pad, -float("inf"))
        weights = scores.softmax(1)
        context = torch.bmm(weights[:, None], keys).squeeze(1)
        return self.out(torch.cat([h, context], 1)), (h, c, context), weights


@torch.no_grad()
def greedy(model, src, lengths):  # -> tokens [n, MAXLEN + 1] and attention [n, MAXLEN + 1, MAXLEN]
    enc = model.encode(src, lengths)
    state, y, tokens, weights = enc[3], torch.full((len(src),), BOS), [], []
    for t in range(MAXLEN + 1):
        logits, state, w = model.step(enc, model.emb(y), state)
        y = logits.argmax(1)
        tokens.append(y)
        weights.append(w)
    return torch.stack(tokens, 1), torch.stack(weights, 1)


model = Seq2Seq()
opt = torch.optim.Adam(model.parameters(), lr=args.lr)
test = sample(1000, True)
step, accuracy, train_seconds, first_loss = 0, 0.0, 0.0, None
while step < args.steps and accuracy < 0.99:
    step += 1
    t0 = time.perf_counter()
    src, lengths, dec_in, tgt = sample(args.batch, False)
    enc = model.encode(src, lengths)
    state, y, logits = enc[3], model.emb(dec_in), []
    for t in range(MAXLEN + 1):
        out, state, _ = model.step(enc, y[:, t], state)
        logits.append(out)
    loss = F.cross_entropy(torch.stack(logits, 1).flatten(0, 1), tgt.flatten(), ignore_index=PAD)
    opt.zero_grad()
    loss.backward()
    opt.step()
    train_seconds += time.perf_counter() - t0
    first_loss = first_loss or loss.item()
    if args.eval_every and (step % args.eval_every == 0 or step == args.steps):
        tokens, weights = greedy(model, test[0], test[1])
        accuracy = ((tokens == test[3]) | (test[3] == PAD)).all(1).float().mean().item()
        print(f"step {step} loss {loss.item():.4f} held-out accuracy {100 * accuracy:.1f}% ({train_seconds:.1f} s)")
if args.eval_every:
    n = test[1][0].item()  # the attention of the first held-out sequence
    img = (weights[0, :n + 1, :n] * 255).byte().repeat_interleave(16, 0).repeat_interleave(16, 1)
    with open(args.heatmap, "wb") as f:
        f.write(b"P5 %d %d 255\n" % (img.shape[1], img.shape[0]) + bytes(img.flatten().tolist()))
print(json.dumps({"steps": step, "first_loss": first_loss, "loss": loss.item(), "held_out_accuracy": accuracy,
                  "train_seconds": train_seconds, "steps_per_second": step / train_seconds}))
