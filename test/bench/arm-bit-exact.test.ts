// Bit-exactness on ARM, end to end: the bundled int8 package gives the same top-1 and the same raw int8
// scores on emulated arm64 (Cortex-A72) and armv7 (Cortex-A7) devices as on this machine. The suite runs
// 300 Fashion-MNIST test images; `npm run bench -- arm-bit-exact` runs the full 1,000 (docs/benchmarks.md).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { compareAcrossDevices } from '../../bench/arm-bit-exact.js';
import { DEVICE_CLASSES } from '../support/device-classes.js';
import { emulationSkipReason } from '../support/emulated-device.js';

const CLASSES = [DEVICE_CLASSES.rpi4, DEVICE_CLASSES.armv7];
const IMAGES = 300;

const skip = CLASSES.map(emulationSkipReason).find((reason) => reason !== undefined);
if (skip) console.log(`# skipping ARM bit-exactness: ${skip}`);

test(
  `the int8 package agrees bit for bit on x64, emulated arm64 and armv7 over ${IMAGES} images`,
  { skip: skip ?? false, timeout: 600_000 },
  async (t) => {
    const report = await compareAcrossDevices({ images: IMAGES, classes: CLASSES });
    assert.equal(report.images, IMAGES);
    assert.deepEqual(
      report.devices.map((d) => d.arch),
      [process.arch, 'arm64', 'arm'],
    );
    assert.deepEqual(
      report.devices.slice(1).map((d) => d.isa),
      CLASSES.map((cls) => cls.isa),
    );
    for (const d of report.devices) {
      t.diagnostic(
        `${d.device} (${d.arch}, ${d.isa}): ${(d.ms / 1000).toFixed(1)} s, ${d.correct}/${IMAGES} correct`,
      );
      assert.equal(d.raw.length, IMAGES * 10, `${d.device}: ten int8 scores per image`);
      assert.equal(d.top1Differences, 0, `${d.device}: images whose top-1 differs from this machine's`);
      assert.equal(d.rawDifferences, 0, `${d.device}: images whose raw int8 scores differ`);
    }
    // Not a vacuous agreement: the model classifies, and its scores are not all equal.
    assert.ok(report.devices[0]!.correct > 0.8 * IMAGES, `${report.devices[0]!.correct} correct`);
    assert.ok(new Set(report.devices[0]!.raw).size > 10, 'the raw scores vary');
  },
);
