#!/usr/bin/python3
# torchvision models beyond the trained conformance set, exported with random weights (issue 14: "the CNNs
# people actually use"): what the importer, the native plan and the quantizer must take, not what a model has
# learnt; also the models too slow to train here (ConvNeXt-Tiny). Debian's python3-torch and
# python3-torchvision; nothing is downloaded. Usage:
#   export-random-weights.py OUT_DIR NAME OPSET SIZE
# writes OUT_DIR/NAME-OPSET-SIZE.onnx (input [1, 3, SIZE, SIZE], 10 classes) and OUT_DIR/NAME-OPSET-SIZE.json
# with the script's version. Beyond torchvision's initialization, seeded:
#  - every 1-D parameter is drawn again (biases and norm shifts ~ N(0, 0.1), norm scales ~ 1 + N(0, 0.1),
#    ConvNeXt's layer scales ~ U(0.2, 1)): torchvision starts ConvNeXt's layer scales at 1e-6 and its Linear
#    biases at 0, which would hide its block MLP below any comparison tolerance;
#  - batch norms get random statistics and affine parameters: at mean 0, variance 1, scale 1, shift 0 a batch
#    norm is nearly the identity, and a standalone one (DenseNet's pre-activation ones) would be checked on
#    nothing.
import json
import sys

import torch
import torchvision.models as tvm

# Bump when the exported models change: bench/conformance.ts exports again a model whose .json carries another.
VERSION = 2

out_dir, name, opset, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(1)
torch.manual_seed(1)
kw = {'aux_logits': False, 'init_weights': True} if name in ('googlenet', 'inception_v3') else {}
model = getattr(tvm, name)(num_classes=10, **kw).eval()
with torch.no_grad():
    for pname, p in model.named_parameters():
        if 'layer_scale' in pname:
            p.uniform_(0.2, 1.0)
        elif p.dim() == 1 and pname.endswith('weight'):
            p.normal_(1.0, 0.1)
        elif p.dim() == 1:
            p.normal_(0.0, 0.1)
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
