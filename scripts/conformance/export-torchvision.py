#!/usr/bin/python3
# The torchvision conformance set (issue 14): each model of Debian's python3-torchvision (nothing is
# downloaded), trained on a seeded synthetic 10-class task until it has learnt it (fp32 accuracy 0.999-1.000 on
# held-out images, 20-60 s of one core per model) and exported to ONNX with PyTorch's exporter.
# Trained, not random: a random-weight network is chaotic (its top-1 class flips under input changes far below
# one int8 step, docs/benchmarks.md "int8 agreement"), and so is one trained too briefly (VERSION 2: 150 steps,
# accuracy 0.15-0.62, int8 agreement 0.46-0.93); a trained one has clear margins, like the pretrained models
# users bring. The task (`task_images`): plane waves whose class is their orientation (5 bands, each used at the
# middle 40 % of its 36 degrees) and frequency band (2), with a random level, amplitude and phase per channel
# and noise, rounded to 8 bits as camera frames are. Training draws fresh images every step (seeded), so the
# held-out images are never seen. Usage:
#   export-torchvision.py OUT_DIR [NAME ...]
# writes OUT_DIR/NAME.onnx for each model (all when none is named) and OUT_DIR/NAME.json with the input size,
# opset, the script's version and the training figures; and once, the task's images the tests and `bench models`
# use: OUT_DIR/task.json (sizes, labels) with task-test.u8 (held-out images, the agreement inputs) and
# task-calibration.u8 (from the training distribution, the calibration images), uint8 NCHW. A model already
# exported by this version of the script (VERSION in its .json) is skipped, so the set is made once.
import json
import math
import os
import sys

import torch
import torchvision.models as tvm

# Bump when the exported models or task images change: bench/conformance.ts reads this line and re-exports a
# model whose .json carries another version (a cache filled by an older script is never read as this one's).
VERSION = 3
CLASSES = 10
SIZE = 64
TEST_IMAGES = 1000
CALIBRATION_IMAGES = 256
BATCH = 16

# name -> (constructor, opset, training steps, peak learning rate). 64x64 inputs, 10 classes. SqueezeNet (no batch
# norm) collapses onto one class at 3e-3; MNASNet reaches 0.92 at 3e-3 and 0.999 at 1e-2.
MODELS = {
    'mobilenet_v2': (lambda: tvm.mobilenet_v2(num_classes=CLASSES), 13, 600, 3e-3),
    'mobilenet_v3_small': (lambda: tvm.mobilenet_v3_small(num_classes=CLASSES), 13, 600, 3e-3),
    'mobilenet_v3_large': (lambda: tvm.mobilenet_v3_large(num_classes=CLASSES), 17, 600, 3e-3),
    'resnet18': (lambda: tvm.resnet18(num_classes=CLASSES), 13, 600, 3e-3),
    'squeezenet1_1': (lambda: tvm.squeezenet1_1(num_classes=CLASSES), 13, 600, 3e-4),
    'shufflenet_v2_x0_5': (lambda: tvm.shufflenet_v2_x0_5(num_classes=CLASSES), 13, 600, 3e-3),
    'mnasnet0_5': (lambda: tvm.mnasnet0_5(num_classes=CLASSES), 13, 600, 1e-2),
    'efficientnet_b0': (lambda: tvm.efficientnet_b0(num_classes=CLASSES), 13, 600, 3e-3),
    'regnet_x_400mf': (lambda: tvm.regnet_x_400mf(num_classes=CLASSES), 13, 600, 3e-3),
    'googlenet': (lambda: tvm.googlenet(num_classes=CLASSES, aux_logits=False, init_weights=True), 13, 600, 3e-3),
}


def task_images(count, generator):
    """`count` images of the task, [count, 3, SIZE, SIZE] in [0, 1] on the 8-bit grid, and their labels."""
    labels = torch.randint(0, CLASSES, (count,), generator=generator)
    rand = lambda *shape: torch.rand(*shape, generator=generator)
    band = (labels % 5).float()
    angle = (band + 0.3 + 0.4 * rand(count)) * (math.pi / 5)
    high = (labels >= 5).float()
    cycles = 0.05 + 0.02 * rand(count) + high * (0.10 + 0.02 * rand(count))  # cycles per pixel
    fy = (2 * math.pi * cycles * torch.sin(angle)).view(count, 1, 1, 1)
    fx = (2 * math.pi * cycles * torch.cos(angle)).view(count, 1, 1, 1)
    level = 0.3 + 0.4 * rand(count, 3, 1, 1)
    amplitude = 0.25 + 0.15 * rand(count, 3, 1, 1)
    phase = 2 * math.pi * rand(count, 1, 1, 1)
    y = torch.arange(SIZE).view(1, 1, SIZE, 1).float()
    x = torch.arange(SIZE).view(1, 1, 1, SIZE).float()
    noise = 0.03 * torch.randn(count, 3, SIZE, SIZE, generator=generator)
    images = (level + amplitude * torch.sin(fy * y + fx * x + phase) + noise).clamp(0, 1)
    return torch.round(images * 255) / 255, labels


def write_task(out):
    """The held-out and calibration images, once per out dir (their generators are seeded apart from training's)."""
    meta_path = os.path.join(out, 'task.json')
    if os.path.exists(meta_path) and json.load(open(meta_path)).get('version') == VERSION:
        return
    test, labels = task_images(TEST_IMAGES, torch.Generator().manual_seed(1))
    calibration, _ = task_images(CALIBRATION_IMAGES, torch.Generator().manual_seed(2))
    for name, images in (('task-test.u8', test), ('task-calibration.u8', calibration)):
        write_atomically(os.path.join(out, name), torch.round(images * 255).to(torch.uint8).numpy().tobytes())
    write_atomically(meta_path, json.dumps({'version': VERSION, 'size': SIZE, 'classes': CLASSES,
                                            'test': TEST_IMAGES, 'calibration': CALIBRATION_IMAGES,
                                            'test_labels': labels.tolist()}).encode())


def write_atomically(path, data):
    """Written under a temporary name, then renamed: an interrupted export leaves no truncated file."""
    with open(path + '.tmp', 'wb') as f:
        f.write(data)
    os.replace(path + '.tmp', path)


def train(model, steps, lr, seed):
    """Adam on fresh task images every step (seeded), learning rate decayed to zero: 20-60 s of one core per model."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(steps):
        images, labels = task_images(BATCH, generator)
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return recalibrate(model.eval(), generator)


def recalibrate(model, generator):
    """Batch-norm statistics measured anew on task images (a cumulative average over 8 batches, the network
    frozen): the running averages of so short a training lag behind its weights (torchvision's MobileNetV3
    averages with momentum 0.01), and the evaluated model would predict one class for every image."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
        m.train()
    with torch.no_grad():
        for _ in range(8):
            model(task_images(BATCH, generator)[0])
    return model.eval()


def evaluate(model, out):
    """fp32 accuracy on the held-out images and the share of the most frequent predicted class."""
    raw = open(os.path.join(out, 'task-test.u8'), 'rb').read()
    images = torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(-1, 3, SIZE, SIZE).float() / 255
    labels = torch.tensor(json.load(open(os.path.join(out, 'task.json')))['test_labels'])
    with torch.no_grad():
        predicted = torch.cat([model(images[i:i + 100]).argmax(1) for i in range(0, len(images), 100)])
    accuracy = (predicted == labels).float().mean().item()
    majority = torch.bincount(predicted, minlength=CLASSES).max().item() / len(predicted)
    return accuracy, majority


def main():
    out = sys.argv[1]
    names = sys.argv[2:] or list(MODELS)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(1)  # OpenMP threads spin: on a loaded machine 2 threads ran 30x slower than 1
    write_task(out)
    for name in names:
        if name not in MODELS:
            sys.exit(f'unknown model {name}; known: {", ".join(MODELS)}')
        meta_path = os.path.join(out, name + '.json')
        if os.path.exists(meta_path) and json.load(open(meta_path)).get('version') == VERSION:
            continue
        make, opset, steps, lr = MODELS[name]
        index = list(MODELS).index(name)
        torch.manual_seed(1000 + index)
        model = train(make(), steps, lr, 2000 + index)
        accuracy, majority = evaluate(model, out)
        path = os.path.join(out, name + '.onnx')
        with torch.no_grad():
            torch.onnx.export(model, torch.zeros(1, 3, SIZE, SIZE), path + '.tmp', opset_version=opset,
                              input_names=['image'], output_names=['logits'], do_constant_folding=True)
        os.replace(path + '.tmp', path)
        write_atomically(meta_path, json.dumps({'name': name, 'size': SIZE, 'opset': opset, 'version': VERSION,
                                                'steps': steps, 'lr': lr, 'fp32_accuracy': accuracy,
                                                'fp32_majority_fraction': majority}).encode())
        print(f'{name}: {steps} steps, fp32 accuracy {accuracy:.3f}, most frequent class {majority:.3f}',
              file=sys.stderr)


if __name__ == '__main__':
    main()
