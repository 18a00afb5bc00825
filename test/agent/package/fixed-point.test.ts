// The reader's checks of the activation fractional lengths of fixed16 / fixed8 layers (format 1.1): every
// bad value is refused before anything loads, with a PackageError naming the layer.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { encodeRaw } from '../../../agent/package/encodings.js';
import { PackageError } from '../../../agent/package/errors.js';
import type { ManifestNode } from '../../../agent/package/manifest.js';
import { readPackage } from '../../../agent/package/reader.js';
import { Model } from '../../../agent/runtime/model.js';
import type { PackageContent } from '../../../optimize/package/writer.js';
import { writePackage } from '../../../optimize/package/writer.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';
import { fixedPointCnn, images, keys } from '../runtime/fixed-point-fixtures.js';

/** The fixed8 network with one node changed by `edit` (and the whole content, for edits of constants). */
function withNode(layer: string, edit: (node: ManifestNode, content: PackageContent) => void): Buffer {
  const { content } = fixedPointCnn(8);
  const node = content.manifest.nodes.find((n) => n.name === layer)!;
  edit(node, content);
  return writePackage(content, keys.privateKey);
}

function refusal(bytes: Buffer): PackageError {
  try {
    readPackage(bytes, { publicKey: keys.publicKey });
  } catch (error) {
    assert.ok(error instanceof PackageError, `expected a PackageError, got ${String(error)}`);
    return error;
  }
  assert.fail('expected the package to be refused');
}

describe('fixed-point activation fractional lengths', () => {
  test('the converted package reads back with both attributes on every fixed-point layer', () => {
    const pkg = readPackage(
      withNode('conv1', () => undefined),
      { publicKey: keys.publicKey },
    );
    const conv1 = pkg.manifest.nodes.find((n) => n.name === 'conv1')!;
    assert.equal(typeof conv1.attrs.input_fl, 'number');
    assert.equal(typeof conv1.attrs.output_fl, 'number');
  });

  const cases: { what: string; layer: string; edit: Parameters<typeof withNode>[1]; message: RegExp }[] = [
    {
      what: 'a fractional input length',
      layer: 'conv2',
      edit: (n) => void (n.attrs.input_fl = 3.5),
      message: /input_fl must be an integer in \[-64, 64\], got 3\.5/,
    },
    {
      what: 'a string',
      layer: 'fc1',
      edit: (n) => void (n.attrs.output_fl = '7'),
      message: /output_fl must be an integer.*got "7"/,
    },
    {
      what: 'a list',
      layer: 'fc1',
      edit: (n) => void (n.attrs.output_fl = [7]),
      message: /output_fl must be an integer/,
    },
    {
      what: "past the kernels' bound",
      layer: 'conv1',
      edit: (n) => void (n.attrs.input_fl = 65),
      message: /input_fl must be an integer in \[-64, 64\], got 65/,
    },
    {
      what: "below the kernels' bound",
      layer: 'fc2',
      edit: (n) => void (n.attrs.output_fl = -65),
      message: /output_fl must be an integer in \[-64, 64\]/,
    },
    {
      what: 'one without the other',
      layer: 'conv2',
      edit: (n) => void delete n.attrs.output_fl,
      message: /input_fl needs output_fl too/,
    },
    {
      what: 'a shift past 62',
      layer: 'fc2',
      edit: (n) => void ((n.attrs.input_fl = 64), (n.attrs.output_fl = 0)),
      message: /input_fl \+ weight fracBits - output_fl = 64 \+ 7 - 0 = 71, outside \[-32, 62\]/,
    },
    {
      what: 'a shift below -32',
      layer: 'conv1',
      edit: (n) => void ((n.attrs.input_fl = -30), (n.attrs.output_fl = 10)),
      message: /= -30 \+ 7 - 10 = -33, outside \[-32, 62\]/,
    },
    {
      what: 'weights stored raw',
      layer: 'conv1',
      edit: (n, content) => {
        const w = n.inputs[1]!;
        content.constants = new Map(
          [...content.constants].map(([i, e]) => [i, i === w ? encodeRaw(new Float32Array(150)) : e]),
        );
      },
      message: /weights\) must be a constant stored as fixed8, got raw/,
    },
    {
      what: 'weights of the other word size',
      layer: 'fc2',
      edit: (n) => void (n.format = 'fixed16'),
      message: /must be a constant stored as fixed16, got fixed8/,
    },
    {
      what: 'on an op that has no fixed-point kernel',
      layer: 'pool1',
      edit: (n) => void ((n.format = 'fixed8'), (n.attrs.input_fl = 6), (n.attrs.output_fl = 6)),
      message: /belong to conv2d and fully_connected layers only/,
    },
  ];
  for (const { what, layer, edit, message } of cases) {
    test(`${what} is refused naming layer ${layer}`, () => {
      const error = refusal(withNode(layer, edit));
      assert.equal(error.code, 'bad-manifest', error.message);
      assert.equal(error.location.layer, layer, error.message);
      assert.match(error.message, message);
      assert.match(error.message, new RegExp(`layer "${layer}"`));
    });
  }

  test('400 random attribute values: accepted exactly when valid, and then the model runs', () => {
    const random = new SeededRandom(2026);
    const values = (): ManifestNode['attrs'][string] | undefined => {
      switch (random.int(0, 9)) {
        case 0:
          return undefined;
        case 1:
          return random.int(-70, 70) + 0.5;
        case 2:
          return String(random.int(-8, 8));
        case 3:
          return [random.int(-8, 8)];
        case 4:
          return random.next() < 0.5;
        case 5:
        case 6:
          return random.int(-70, 70);
        default:
          // Near the fractional lengths a calibration gives, so that many draws are valid.
          return random.int(0, 16);
      }
    };
    const valid = (v: unknown): v is number =>
      Number.isInteger(v) && (v as number) >= -64 && (v as number) <= 64;
    let accepted = 0;
    for (let i = 0; i < 400; i++) {
      const layer = ['conv1', 'conv2', 'fc1', 'fc2'][random.int(0, 3)]!;
      const [inputFl, outputFl] = [values(), values()];
      let weightFl = 0;
      const bytes = withNode(layer, (node, content) => {
        weightFl = (content.constants.get(node.inputs[1]!)!.encoding as { fracBits: number }).fracBits;
        for (const [key, value] of [
          ['input_fl', inputFl],
          ['output_fl', outputFl],
        ] as const) {
          if (value === undefined) delete node.attrs[key];
          else node.attrs[key] = value;
        }
      });
      const shift = (inputFl as number) + weightFl - (outputFl as number);
      const ok =
        (inputFl === undefined && outputFl === undefined) ||
        (valid(inputFl) && valid(outputFl) && shift >= -32 && shift <= 62);
      const what = `${layer} input_fl ${JSON.stringify(inputFl)} output_fl ${JSON.stringify(outputFl)}`;
      if (!ok) {
        const error = refusal(bytes);
        assert.equal(error.code, 'bad-manifest', `${what}: ${error.message}`);
        assert.equal(error.location.layer, layer, `${what}: ${error.message}`);
        continue;
      }
      accepted++;
      const pkg = readPackage(bytes, { publicKey: keys.publicKey });
      const logits = Model.fromPackage(pkg).run([images(1, i)])[4]!.data;
      assert.ok(logits.every(Number.isFinite), what);
    }
    assert.ok(accepted > 80, `only ${accepted} valid cases were drawn`);
  });
});
