#!/usr/bin/env python3
"""The poster model's training step in PyTorch: the reference figure that
`postergrad profile` is compared with (docs/performance.md).

Same model as GUIDE §1 and src/nn.rs (Keras semantics: relu inside the conv
and dense layers before the batch norm, BN eps 1e-3 and momentum 0.99,
dropout 0.3/0.3/0.4/0.5/0.5/0.5, Adam lr 1e-3 eps 1e-7, BCE on sigmoid
outputs), random data, one optimizer step per batch, timed after warm-up
steps; on CUDA with events around the timed steps, and with TF32 off unless
--tf32 is given, so that both engines multiply in full f32.

    python3 tools/torch_poster_step.py --size 350 --batch 32 --steps 10
    python3 tools/torch_poster_step.py --device cpu --threads 2 --steps 3

PyTorch is not a dependency of postergrad: this script only measures the
framework we compare against, on whichever machine has it.
"""
import argparse
import json
import resource
import time

import torch
from torch import nn


def conv_block(cin, cout, p):
    return [
        nn.Conv2d(cin, cout, 3),
        nn.ReLU(),
        nn.BatchNorm2d(cout, eps=1e-3, momentum=0.01),
        nn.MaxPool2d(2),
        nn.Dropout(p),
    ]


def dense_block(fin, fout):
    return [
        nn.Linear(fin, fout),
        nn.ReLU(),
        nn.BatchNorm1d(fout, eps=1e-3, momentum=0.01),
        nn.Dropout(0.5),
    ]


def poster_model(size):
    side = size
    for _ in range(4):
        side = (side - 2) // 2
    flat = side * side * 128
    return nn.Sequential(
        *conv_block(3, 16, 0.3),
        *conv_block(16, 32, 0.3),
        *conv_block(32, 64, 0.4),
        *conv_block(64, 128, 0.5),
        nn.Flatten(),
        *dense_block(flat, 128),
        *dense_block(128, 128),
        nn.Linear(128, 25),
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=350)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: PyTorch's default)")
    ap.add_argument("--tf32", action="store_true", help="allow TF32 matrix units on CUDA")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.backends.cudnn.benchmark = True
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = poster_model(args.size).to(dev)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(m.weight)
            nn.init.zeros_(m.bias)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.BCEWithLogitsLoss()
    x = torch.rand(args.batch, 3, args.size, args.size, device=dev)
    y = (torch.rand(args.batch, 25, device=dev) < 0.1).float()

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return loss

    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    warm_s = time.perf_counter() - t0
    if dev.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(args.steps):
            step()
        end.record()
        torch.cuda.synchronize()
        ms = start.elapsed_time(end) / args.steps
    else:
        t = time.perf_counter()
        for _ in range(args.steps):
            step()
        ms = (time.perf_counter() - t) * 1e3 / args.steps
    out = {
        "engine": f"pytorch {torch.__version__}",
        "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu, {torch.get_num_threads()} threads",
        "tf32": args.tf32,
        "size": args.size,
        "batch": args.batch,
        "steps": args.steps,
        "ms_per_step": round(ms, 3),
        "ms_per_sample": round(ms / args.batch, 4),
        "warmup_s": round(warm_s, 2),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    if dev.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated(dev) // (1 << 20)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
