#!/usr/bin/python3
# torchvision models beyond the conformance set, exported with random weights (issue 14: "the CNNs people
# actually use"): what the importer and the native plan must take, not what a model has learnt. Debian's
# python3-torch and python3-torchvision; nothing is downloaded. Usage:
#   export-random-weights.py OUT_DIR NAME OPSET SIZE
# writes OUT_DIR/NAME-OPSET-SIZE.onnx (input [1, 3, SIZE, SIZE], 10 classes) and OUT_DIR/NAME-OPSET-SIZE.json
# with the script's version. The batch norms' statistics and affine parameters are randomized (seeded): at
# torchvision's initialization (mean 0, variance 1, scale 1, shift 0) a batch norm is nearly the identity, and
# a standalone one (DenseNet's pre-activation ones) would be checked on nothing.
import json
import sys

import torch
import torchvision.models as tvm

# Bump when the exported models change: bench/conformance.ts exports again a model whose .json carries another.
VERSION = 1

out_dir, name, opset, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
torch.manual_seed(1)
kw = {'aux_logits': False, 'init_weights': True} if name in ('googlenet', 'inception_v3') else {}
model = getattr(tvm, name)(num_classes=10, **kw).eval()
with torch.no_grad():
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.copy_(0.5 + torch.rand(c))
            m.bias.copy_(0.1 * torch.randn(c))
            m.running_mean.copy_(0.1 * torch.randn(c))
            m.running_var.copy_(0.5 + torch.rand(c))
    stem = f'{out_dir}/{name}-{opset}-{size}'
    torch.onnx.export(model, torch.zeros(1, 3, size, size), f'{stem}.onnx', opset_version=opset,
                      input_names=['image'], output_names=['logits'])
with open(f'{stem}.json', 'w') as f:
    json.dump({'name': name, 'opset': opset, 'size': size, 'version': VERSION}, f)
