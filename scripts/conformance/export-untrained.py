#!/usr/bin/python3
# Torchvision architectures exported untrained, with seeded random weights, for the import / native-kernel /
# quantizer checks of models too slow to train in CI (export-torchvision.py trains its set 20-60 s per model).
# ConvNeXt-Tiny (issue 14): its block MLP is nn.Linear on an NHWC tensor (MatMul by a constant matrix, Add of a
# bias), its norms LayerNormalization (channels-last, and channels-first in the stem and downsampling layers as
# Transpose / LayerNormalization / Transpose), its activation GELU spelled Div / Erf / Add / Mul.
# torchvision initializes ConvNeXt's layer scales to 1e-6 and its Linear biases to 0, which would hide the
# block MLP below any comparison tolerance: every 1-D parameter (biases, norm scales and shifts, layer scales)
# is drawn again here, so each block changes its input as a trained one does. Usage:
#   export-untrained.py OUT_DIR NAME ...
# writes OUT_DIR/NAME.onnx and OUT_DIR/NAME.json (input size, opset, the script's VERSION); bench/conformance.ts
# re-exports a model whose .json carries another version.
import json
import os
import sys

import torch
import torchvision.models as tvm

VERSION = 1
SIZE = 64
CLASSES = 10

# name -> (constructor, opset)
MODELS = {
    'convnext_tiny': (lambda: tvm.convnext_tiny(num_classes=CLASSES), 17),
}


def randomize(model):
    """Redraws every 1-D parameter (seeded by the caller): biases and norm shifts ~ N(0, 0.1), norm scales
    ~ 1 + N(0, 0.1), layer scales ~ U(0.2, 1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'layer_scale' in name:
                p.uniform_(0.2, 1.0)
            elif p.dim() == 1 and name.endswith('weight'):
                p.normal_(1.0, 0.1)
            elif p.dim() == 1:
                p.normal_(0.0, 0.1)


def main():
    out, names = sys.argv[1], sys.argv[2:]
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)
    for name in names:
        make, opset = MODELS[name]
        torch.manual_seed(1)
        model = make().eval()
        randomize(model)
        with torch.no_grad():
            torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), f'{out}/{name}.onnx', opset_version=opset,
                              input_names=['image'], output_names=['logits'])
        with open(f'{out}/{name}.json', 'w') as f:
            json.dump({'size': SIZE, 'opset': opset, 'version': VERSION}, f)


if __name__ == '__main__':
    main()
