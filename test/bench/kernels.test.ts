// The kernel benchmark's report on a tiny shape with few rounds: every field the issue asks for is there,
// ONNX Runtime really ran its quantized kernel, and bad shapes files or flags are refused with typed errors.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { packageRoot } from '../../agent/package-root.js';
import { macs, outputSize, parseShapes, ShapesFileError } from '../../bench/kernel-shapes.js';
import {
  BenchArgumentError,
  checkTargets,
  formatKernelTable,
  type KernelBenchRow,
  kernelsCommand,
  positiveInteger,
  positiveIntegers,
  runKernelBench,
} from '../../bench/kernels.js';
import { FORMATS } from '../../bench/peak.js';
import { assertUsageError } from './cli-usage.js';

const tinyShapes = parseShapes(
  JSON.stringify({
    version: 1,
    shapes: [
      {
        name: 'tiny-conv',
        kind: 'conv2d',
        inputChannels: 3,
        outputChannels: 5,
        kernel: 3,
        inputSize: 6,
        padding: 1,
        groups: 1,
      },
      { name: 'tiny-fc', kind: 'fullyConnected', inChannels: 17, outChannels: 6 },
    ],
  }),
  'tiny shapes',
);

describe('bench kernels', () => {
  test('the JSON report has one entry per shape x format x threads with every required field', async () => {
    const report = await runKernelBench({
      shapes: tinyShapes,
      threads: [1, 2],
      rounds: 3,
      batchMs: 0.2,
      profileRuns: 3,
    });
    const json = JSON.parse(JSON.stringify(report)) as typeof report;
    for (const key of ['cpu', 'isa', 'threads', 'commit', 'clock_ghz'] as const)
      assert.ok(json.machine[key] !== undefined && json.machine[key] !== '', `machine.${key}`);
    assert.deepEqual(json.machine.threads, [1, 2]);
    assert.ok(
      json.machine.clock_ghz > 0.1 && json.machine.clock_ghz < 10,
      `clock ${json.machine.clock_ghz} GHz`,
    );
    // fp32 and int8 always; each other format either measured or listed as skipped with a reason.
    const measured = new Set(json.results.map((r) => r.format));
    for (const format of FORMATS)
      assert.ok(
        measured.has(format) || json.skipped.some((s) => s.format === format && s.reason.length > 0),
        `${format} neither measured nor skipped`,
      );
    for (const shape of ['tiny-conv', 'tiny-fc'])
      for (const format of FORMATS) {
        if (json.skipped.some((s) => s.shape === shape && s.format === format)) continue;
        for (const threads of [1, 2])
          assert.equal(
            json.results.filter((r) => r.shape === shape && r.format === format && r.threads === threads)
              .length,
            1,
            `${shape} ${format} ${threads}`,
          );
      }
    assert.ok(measured.has('fp32') && measured.has('int8'));
    for (const r of json.results) {
      assert.ok(FORMATS.includes(r.format));
      for (const key of ['gops', 'vs_ort_int8', 'vs_ort_fp32', 'peak_fraction', 'us'] as const)
        assert.ok(Number.isFinite(r[key]) && r[key] > 0, `${r.shape} ${r.format} ${key} = ${r[key]}`);
    }
    for (const o of json.ort) {
      assert.equal(
        o.int8_kernel,
        o.shape === 'tiny-fc' ? 'QLinearMatMul' : 'QLinearConv',
        o.int8_ops.join('+'),
      );
      assert.ok(o.int8_kernel_us !== null && o.fp32_kernel_us !== null);
    }
    assert.ok(json.targets.some((t) => t.target.startsWith('int8 >= 1.0x') && t.shape === 'tiny-conv'));
    assert.match(formatKernelTable(report), /tiny-conv +int8 +1 /);
  });

  test('the checked-in shapes file holds the shapes of the issues, the stem convolutions included', () => {
    const path = join(packageRoot(), 'bench', 'shapes.json');
    const shapes = parseShapes(readFileSync(path, 'utf8'), path);
    assert.deepEqual(
      shapes.map((s) => s.name),
      [
        'lenet5-conv2',
        'mobilenet-pw-1x1',
        'depthwise-3x3',
        'vgg-3x3',
        'lenet5-conv1',
        'vgg-stem',
        'mobilenet-stem',
        'regnet-group-3x3',
        'fc-400-120',
        'fc-2048-10',
      ],
    );
    // The stems as the zoo builds them: LeNet 28x28x1 -> 24x24x6, the small VGG's first conv 32x32x3 -> 32
    // filters, MobileNet at alpha 0.5 (32 * 0.5 = 16 filters, stride 2: 96 -> 48).
    const byName = new Map(shapes.map((s) => [s.name, s]));
    const geometry = (name: string) => {
      const s = byName.get(name);
      assert.ok(s !== undefined && s.kind === 'conv2d', name);
      return { out: outputSize(s), outputChannels: s.outputChannels, macs: macs(s) };
    };
    assert.deepEqual(geometry('lenet5-conv1'), { out: 24, outputChannels: 6, macs: 24 * 24 * 6 * 25 });
    assert.deepEqual(geometry('vgg-stem'), { out: 32, outputChannels: 32, macs: 32 * 32 * 32 * 27 });
    assert.deepEqual(geometry('mobilenet-stem'), { out: 48, outputChannels: 16, macs: 48 * 48 * 16 * 27 });
    assert.equal(geometry('vgg-3x3').out, 16, 'a shape without a stride keeps stride 1');
    // RegNetX-400MF's second stage as the conformance export runs it (64x64 input): 3x3 groups of 16 channels.
    assert.deepEqual(geometry('regnet-group-3x3'), { out: 8, outputChannels: 64, macs: 8 * 8 * 64 * 9 * 16 });
  });

  test('a target whose format was not measured is reported as not measured, never as met', () => {
    const targets = checkTargets([], tinyShapes);
    const xnor = targets.find((t) => t.format === 'xnor' && t.shape === 'tiny-conv');
    assert.equal(xnor?.met, null);
    assert.equal(xnor?.measured, null);
  });

  test('the XNOR depthwise target is int8 / xnor time on depthwise shapes only', () => {
    const path = join(packageRoot(), 'bench', 'shapes.json');
    const shapes = parseShapes(readFileSync(path, 'utf8'), path);
    const rows = ['depthwise-3x3', 'vgg-3x3'].flatMap((shape) => [
      { shape, format: 'int8', threads: 1, us: 3 },
      { shape, format: 'xnor', threads: 1, us: shape === 'vgg-3x3' ? 1 : 4 },
    ]) as unknown as KernelBenchRow[];
    const depthwise = checkTargets(rows, shapes).filter(
      (t) => t.target === 'xnor depthwise >= 1.0x our int8',
    );
    assert.deepEqual(
      depthwise.map((t) => [t.shape, t.measured, t.met]),
      [['depthwise-3x3', 0.75, false]],
    );
    const faster = rows.map((r) => (r.format === 'xnor' ? { ...r, us: 2 } : r));
    assert.equal(checkTargets(faster, shapes).find((t) => t.target.startsWith('xnor depthwise'))?.met, true);
  });

  test('bad shapes files are refused with a ShapesFileError saying what is wrong', () => {
    assert.throws(
      () => parseShapes('{', 'f.json'),
      (e) => e instanceof ShapesFileError && /not JSON/.test(e.message),
    );
    assert.throws(
      () => parseShapes(JSON.stringify({ version: 1, shapes: [] }), 'f.json'),
      (e) => e instanceof ShapesFileError && /shapes/.test(e.message),
    );
    const conv = {
      name: 'a',
      kind: 'conv2d',
      inputChannels: 6,
      outputChannels: 4,
      kernel: 3,
      inputSize: 8,
      padding: 0,
      groups: 4,
    };
    assert.throws(
      () => parseShapes(JSON.stringify({ version: 1, shapes: [conv] }), 'f.json'),
      (e) => e instanceof ShapesFileError && /multiples of groups/.test(e.message),
    );
    assert.throws(
      () =>
        parseShapes(JSON.stringify({ version: 1, shapes: [{ ...conv, groups: 1, kernel: 9 }] }), 'f.json'),
      (e) => e instanceof ShapesFileError && /larger than the input/.test(e.message),
    );
    assert.throws(
      () =>
        parseShapes(JSON.stringify({ version: 1, shapes: [{ ...conv, groups: 1, stride: 0 }] }), 'f.json'),
      (e) => e instanceof ShapesFileError && /stride/.test(e.message),
    );
    const fc = { name: 'a', kind: 'fullyConnected', inChannels: 4, outChannels: 2 };
    assert.throws(
      () => parseShapes(JSON.stringify({ version: 1, shapes: [fc, fc] }), 'f.json'),
      (e) => e instanceof ShapesFileError && /twice/.test(e.message),
    );
  });

  test('bad flags are refused before anything runs', async () => {
    await assert.rejects(kernelsCommand(['--threads', '0']), BenchArgumentError);
    await assert.rejects(kernelsCommand(['--rounds', 'many']), BenchArgumentError);
    await assert.rejects(kernelsCommand(['--shapes', '/nonexistent/shapes.json']), ShapesFileError);
  });

  test('counts take their own range: rounds beyond 64 (the default is 151), thread lists at most 64', () => {
    assert.equal(positiveInteger(undefined, 151, '--rounds'), 151);
    assert.equal(positiveInteger('500', 151, '--rounds'), 500);
    for (const bad of ['0', '-3', '2.5', 'many', '', '4,5'])
      assert.throws(() => positiveInteger(bad, 151, '--rounds'), BenchArgumentError, bad);
    assert.deepEqual(positiveIntegers('1,2', '--threads'), [1, 2]);
    for (const bad of ['65', '1,,2', '1,x'])
      assert.throws(() => positiveIntegers(bad, '--threads'), BenchArgumentError, bad);
  });

  test('the CLI answers a bad flag with one line and exit code 2, not a stack trace', () => {
    for (const [args, message] of [
      [['kernels', '--bogus'], /Unknown option '--bogus'/],
      [['kernels', '--threads', 'x'], /Expected integers in \[1, 64\] for --threads/],
      [['kernels', '--shapes', '/nonexistent/shapes.json'], /Cannot read the shapes file/],
    ] as const)
      assertUsageError(args, message);
  });
});
