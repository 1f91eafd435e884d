#!/usr/bin/env python3
"""torchvision's ResNet training step and inference in PyTorch: the figures
`postergrad profile --model resnet50` is compared with (docs/performance.md).

Same workload as postergrad's: torchvision's resnet (random weights), a
25-genre head, sigmoid + BCE, Adam (lr 1e-4), random images in [0, 1]
normalised with ImageNet's mean/std inside the step, one fixed batch;
training = forward, backward, Adam step, loss read back; inference = the
forward in eval mode (what feature extraction with a frozen backbone
costs), probabilities read back. Timed after a warm-up step; on CUDA with
events and TF32 off unless --tf32. Prints one JSON line per pass with
images/s and the process's peak RSS.

    python3 tools/torch_resnet_step.py --device cpu --threads 2 --batch 32 --steps 2
    python3 tools/torch_resnet_step.py --device cuda --batch 32 --steps 20

PyTorch is not a dependency of postergrad: this script only measures the
framework we compare against, on whichever machine has it.
"""
import argparse
import json
import resource
import time

import torch
from torch import nn
from torchvision.models import resnet

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="resnet50")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--pass", dest="passes", default="training,inference")
    ap.add_argument("--tf32", action="store_true")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.backends.cuda.matmul.allow_tf32 = a.tf32
    torch.backends.cudnn.allow_tf32 = a.tf32
    dev = torch.device(a.device)
    torch.manual_seed(0)
    model = getattr(resnet, a.arch)(num_classes=25).to(dev)
    x = torch.rand(a.batch, 3, a.size, a.size, device=dev)
    y = (torch.rand(a.batch, 25, device=dev) < 0.1).float()
    mean, std = MEAN.to(dev), STD.to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    loss_fn = nn.BCELoss()

    def train_step():
        model.train()
        opt.zero_grad(set_to_none=True)
        p = torch.sigmoid(model((x - mean) / std))
        loss = loss_fn(p, y)
        loss.backward()
        opt.step()
        return loss.item()

    def infer():
        model.eval()
        with torch.no_grad():
            return torch.sigmoid(model((x - mean) / std)).cpu()[0, 0].item()

    for name in a.passes.split(","):
        step = train_step if name == "training" else infer
        step()  # warm-up
        if dev.type == "cuda":
            torch.cuda.synchronize()
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(a.steps):
                step()
            end.record()
            torch.cuda.synchronize()
            seconds = start.elapsed_time(end) / 1e3 / a.steps
        else:
            t = time.perf_counter()
            for _ in range(a.steps):
                step()
            seconds = (time.perf_counter() - t) / a.steps
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps({
            "engine": f"pytorch {torch.__version__}",
            "device": str(dev),
            "threads": torch.get_num_threads(),
            "arch": a.arch,
            "pass": name,
            "size": a.size,
            "batch": a.batch,
            "step_ms": round(seconds * 1e3, 1),
            "images_per_s": round(a.batch / seconds, 2),
            "peak_rss_mb": round(rss),
        }), flush=True)


if __name__ == "__main__":
    main()
