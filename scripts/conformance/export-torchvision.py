#!/usr/bin/python3
# The torchvision conformance set (issue 14): each model of Debian's python3-torchvision built with random,
# seeded weights (nothing is downloaded) and exported to ONNX with PyTorch's exporter. Batch norm statistics
# scales and shifts are randomized too, so folding them is exercised, and the batch-norm statistics are
# measured on seeded random images (plane waves plus noise), as training would leave them: with made-up
# statistics, the activations of a random network fade after a few layers and every input gives the same
# logits. Usage:
#   export-torchvision.py OUT_DIR [NAME ...]
# writes OUT_DIR/NAME.onnx for each model (all when none is named) and OUT_DIR/NAME.json with the input
# size and opset; a model already exported (its .json present) is skipped, so the set is made once.
import json
import os
import sys

import torch
import torchvision.models as tvm

# name -> (constructor, input size, opset). 10 classes, as `npm run bench -- models` builds its zoo models: with
# random weights and 1,000 classes, top-1 compares logits a hair apart, which says little about quantization. 64x64 where the architecture allows it; 96x96 for the models
# whose stride-32 stack or fixed pooling needs more (GoogLeNet's 7x7 average pool is adaptive, but its
# stride-32 stages leave 2x2 at 64).
MODELS = {
    'mobilenet_v2': (lambda: tvm.mobilenet_v2(num_classes=10), 64, 13),
    'mobilenet_v3_small': (lambda: tvm.mobilenet_v3_small(num_classes=10), 64, 13),
    'mobilenet_v3_large': (lambda: tvm.mobilenet_v3_large(num_classes=10), 64, 17),
    'resnet18': (lambda: tvm.resnet18(num_classes=10), 64, 13),
    'squeezenet1_1': (lambda: tvm.squeezenet1_1(num_classes=10), 64, 13),
    'shufflenet_v2_x0_5': (lambda: tvm.shufflenet_v2_x0_5(num_classes=10), 64, 13),
    'mnasnet0_5': (lambda: tvm.mnasnet0_5(num_classes=10), 64, 13),
    'efficientnet_b0': (lambda: tvm.efficientnet_b0(num_classes=10), 64, 13),
    'regnet_x_400mf': (lambda: tvm.regnet_x_400mf(num_classes=10), 64, 13),
    'googlenet': (lambda: tvm.googlenet(num_classes=10, aux_logits=False, init_weights=True), 64, 13),
}


def images(count, size):
    """Per image and channel: a random level, a random plane wave and a little noise, in [0, 1]."""
    level = torch.rand(count, 3, 1, 1)
    amplitude = torch.rand(count, 3, 1, 1) * 0.5
    fy, fx = torch.rand(count, 3, 1, 1) * 0.5, torch.rand(count, 3, 1, 1) * 0.5
    phase = torch.rand(count, 3, 1, 1) * 6.2832
    y = torch.arange(size).view(1, 1, size, 1).float()
    x = torch.arange(size).view(1, 1, 1, size).float()
    noise = (torch.rand(count, 3, size, size) - 0.5) * 0.1
    return (level + amplitude * torch.sin(fy * y + fx * x + phase) + noise).clamp(0, 1)


def randomize(model, seed, size):
    torch.manual_seed(seed)
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm1d))]
    for m in norms:
        m.weight.data.uniform_(0.5, 1.5)
        m.bias.data.uniform_(-0.1, 0.1)
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(images(16, size))
    return model.eval()


def main():
    out = sys.argv[1]
    names = sys.argv[2:] or list(MODELS)
    os.makedirs(out, exist_ok=True)
    for index, name in enumerate(names):
        if name not in MODELS:
            sys.exit(f'unknown model {name}; known: {", ".join(MODELS)}')
        meta_path = os.path.join(out, name + '.json')
        if os.path.exists(meta_path):
            continue
        make, size, opset = MODELS[name]
        torch.manual_seed(1000 + index)
        model = randomize(make(), 2000 + index, size)
        x = images(1, size)
        path = os.path.join(out, name + '.onnx')
        with torch.no_grad():
            torch.onnx.export(model, x, path, opset_version=opset, input_names=['image'],
                              output_names=['logits'], do_constant_folding=True)
        with open(meta_path, 'w') as f:
            json.dump({'name': name, 'size': size, 'opset': opset}, f)


if __name__ == '__main__':
    main()
