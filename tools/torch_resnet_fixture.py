#!/usr/bin/env python3
"""Reference numbers for postergrad's ResNets from torchvision itself.

Builds a torchvision ResNet with random weights (and random batch-norm
running statistics, so that inference and training modes differ), and
writes:

  <out>/<name>.safetensors   its state_dict (torchvision's names)
  <out>/<name>.pth           the same state_dict through torch.save
  <out>/<name>-check.safetensors
      input        [N, 3, S, S] images in [0, 1] (normalised inside, as
                   postergrad's ResNets do: ImageNet mean/std)
      target       [N, L] 0/1 labels
      logits_eval  [N, L] logits in inference mode (model.eval())
      probs_eval   [N, L] sigmoid of those
      loss_train   [1] BCE of sigmoid(logits) in training mode (batch statistics)
      grad.<name>  the gradient of loss_train for every parameter
      running_mean.<bn>, running_var.<bn>: the statistics after that step

    python3 tools/torch_resnet_fixture.py --arch tiny --half --out tests/fixtures
    python3 tools/torch_resnet_fixture.py --arch tiny-basic --out tests/fixtures
    python3 tools/torch_resnet_fixture.py --arch resnet50 --labels 25 --size 224 --batch 2 --out /tmp/r50

`--arch tiny` is the narrow ResNet the tests use (tests/resnet.rs): a 7×7
stem of 8 channels, the padded 3×3 pool, bottlenecks of widths 4, 8, 8, 16
with [2, 1, 1, 1] blocks (layer1.0 with a downsample, layer1.1 without, a
strided downsample in each later stage), global pooling and a 5-label head
on 48×48 inputs: every block type ResNet-50 uses, in a few kilobytes.
`--arch tiny-basic` is the same with BasicBlocks (resnet18/34's block).

PyTorch and torchvision are not dependencies of postergrad: this script
only makes reference files, on whichever machine has them.
"""
import argparse
import os

import torch
from torch import nn
from torchvision.models import resnet
from safetensors.torch import save_file

MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


class Narrow(resnet.ResNet):
    """torchvision's ResNet with other widths: its own blocks, _make_layer,
    initialisation and forward; only the stem and stage widths change."""

    def __init__(self, block, layers, stem, widths, num_classes):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = stem
        self.dilation = 1
        self.groups = 1
        self.base_width = 64
        self.conv1 = nn.Conv2d(3, stem, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


def build(arch, labels):
    if arch == "tiny":
        return Narrow(resnet.Bottleneck, [2, 1, 1, 1], 8, [4, 8, 8, 16], labels)
    if arch == "tiny-basic":
        return Narrow(resnet.BasicBlock, [2, 1, 1, 1], 8, [4, 8, 8, 16], labels)
    return getattr(resnet, arch)(num_classes=labels)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", default="tiny")
    ap.add_argument("--labels", type=int, default=5)
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--name", default=None)
    ap.add_argument("--half", action="store_true", help="also write f16 safetensors and bf16 .pth copies")
    a = ap.parse_args()
    name = a.name or f"resnet_{a.arch.replace('-', '_')}"
    torch.manual_seed(a.seed)
    torch.use_deterministic_algorithms(True)
    model = build(a.arch, a.labels).double()
    # batch norms away from their initial values, so that a weight loaded
    # under the wrong name or a mode mix-up shows
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    state = {k: v.float().contiguous() for k, v in model.state_dict().items()}
    os.makedirs(a.out, exist_ok=True)
    save_file(state, os.path.join(a.out, f"{name}.safetensors"))
    torch.save(state, os.path.join(a.out, f"{name}.pth"))
    if a.half:
        # 16-bit copies (hubs ship f16; bf16 through torch.save), with the
        # counters as torch keeps them
        half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
        save_file(half, os.path.join(a.out, f"{name}_f16.safetensors"))
        bf16 = {k: (v.bfloat16() if v.is_floating_point() else v) for k, v in state.items()}
        torch.save(bf16, os.path.join(a.out, f"{name}_bf16.pth"))
    # the model as stored (f32 values), run in f64 for the reference
    model.load_state_dict({k: v.double() for k, v in state.items()})

    x = torch.rand(a.batch, 3, a.size, a.size, dtype=torch.float32)
    t = (torch.rand(a.batch, a.labels) < 0.3).float()
    xn = ((x.double() - MEAN.double()) / STD.double())
    check = {"input": x, "target": t}
    model.eval()
    with torch.no_grad():
        logits = model(xn)
    check["logits_eval"] = logits.float()
    check["probs_eval"] = torch.sigmoid(logits).float()
    model.train()
    logits = model(xn)
    loss = nn.functional.binary_cross_entropy(torch.sigmoid(logits), t.double())
    loss.backward()
    check["loss_train"] = loss.detach().float().reshape(1)
    for k, p in model.named_parameters():
        check[f"grad.{k}"] = p.grad.float().contiguous()
    for k, m in model.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            check[f"running_mean.{k}"] = m.running_mean.float().contiguous()
            check[f"running_var.{k}"] = m.running_var.float().contiguous()
    save_file(check, os.path.join(a.out, f"{name}-check.safetensors"))
    params = sum(p.numel() for p in model.parameters())
    print(f"{name}: {params} parameters, loss {loss.item():.6f}, files in {a.out}")


if __name__ == "__main__":
    main()
