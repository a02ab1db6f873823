"""PyTorch <-> heed weights round trip through safetensors files written and read by hand
(json + struct: the `safetensors` package is not needed).

    python3 tests/torch/roundtrip.py build/tests/torch_weights_io

1. PyTorch model -> state_dict -> torch.safetensors (save_safetensors below)
2. heed imports it, prints its forward output, adds 0.5 to every weight, exports
3. PyTorch loads heed's file (load_safetensors below) into the same model
Checks: heed's output equals PyTorch's (f32 tolerance), and the weights coming back are
exactly PyTorch's + 0.5.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import torch

DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.float16: "F16", torch.bfloat16: "BF16",
          torch.int64: "I64", torch.int32: "I32"}
TORCH = {v: k for k, v in DTYPES.items()}


def save_safetensors(path, tensors, metadata=None):
    """tensors: name -> torch.Tensor (contiguous, little-endian host)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, t in tensors.items():
        b = t.detach().contiguous().cpu().numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


def load_safetensors(path):
    """-> (name -> torch.Tensor, metadata dict)"""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    out = {}
    for name, e in header.items():
        b, end = e["data_offsets"]
        raw = bytearray(data[8 + n + b:8 + n + end])
        t = torch.frombuffer(raw, dtype=TORCH[e["dtype"]]) if raw else torch.empty(0, dtype=TORCH[e["dtype"]])
        out[name] = t.reshape(e["shape"]).clone()
    return out, meta


class Square(torch.nn.Module):
    def forward(self, x):
        return x * x


def main():
    exe = sys.argv[1]
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 16), Square(), torch.nn.Linear(16, 3))
    x = torch.tensor([(i % 7 - 3) / 4.0 for i in range(20)], dtype=torch.float32).reshape(4, 5)
    with tempfile.TemporaryDirectory() as d:
        src, back = os.path.join(d, "torch.safetensors"), os.path.join(d, "heed.safetensors")
        save_safetensors(src, model.state_dict(), {"format": "pt"})
        run = subprocess.run([exe, src, back], capture_output=True, text=True)
        if run.returncode != 0:
            sys.exit("heed failed: " + run.stderr)
        y_heed = torch.tensor([float(v) for v in run.stdout.split()]).reshape(4, 3)
        y_torch = model(x).detach()
        err = (y_heed - y_torch).abs().max().item()
        print(f"forward: max |heed - torch| = {err:.3g} (scale {y_torch.abs().max().item():.3g})")
        assert err <= 1e-5 * max(1.0, y_torch.abs().max().item()), "forward outputs differ"
        tensors, meta = load_safetensors(back)
        print(f"heed file: metadata {meta}, tensors {sorted(tensors)}")
        expect = {k: v + 0.5 for k, v in model.state_dict().items()}
        model.load_state_dict(tensors, strict=True)
        for k, v in model.state_dict().items():
            assert torch.equal(v, expect[k]), k
    print("round trip ok: torch -> heed -> torch, weights bitwise, outputs agree")


if __name__ == "__main__":
    main()
