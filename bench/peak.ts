// The peak throughput of one core for each number format, from the CPU's features and a measured clock.
//
//   peak ops/s = clock Hz × ops per cycle
//   fp32       ops/cycle = FMA units × (datapath bits / 32) × 2           (one FMA = 2 ops)
//   int8       ops/cycle = dot units × (datapath bits / 8)  × 2           (VPDPBUSD: 4 MACs per 32-bit lane)
//   fixed16    ops/cycle = dot units × (datapath bits / 16) × 2           (VPDPWSSD / VPMADDWD)
//   xnor       ops/cycle = popcount units × datapath bits × 2             (VPOPCNTQ: one XNOR-MAC per bit)
//   binary-weights, ternary, sparse, codebook, sparse-codebook: the fp32 peak (one add or FMA per weight on
//              fp32 data; sparse and sparse-codebook count the dense layer's operations)
//
// Without AVX-512 VNNI the int8 dot product takes VPMADDUBSW + VPMADDWD + VPADDD, a third of the rate; without
// VPOPCNTDQ a popcount is a 4-instruction PSHUFB table lookup, a quarter of the rate. The clock is measured
// with a chain of dependent integer adds (bench/clock.c), one add per cycle on every x86-64 and AArch64 core.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { packageRoot } from '../agent/package-root.js';
import { FORMATS as COMPRESSED_FORMATS } from '../native/formats.js';
import type { CpuFeatures } from '../native/index.js';
import { WhittleError } from '../native/whittle-error.js';

/** The dense formats, the compressed ones of the format kernels (native/formats.ts), the package number
 * formats that run on another format's kernels (sparse-codebook on the sparse kernels, bench/format-layers.ts)
 * and the ternary and codebook layers of an int8 package (int8 activations, on the int8 operators). */
export const FORMATS = [
  'fp32',
  'int8',
  ...COMPRESSED_FORMATS,
  'sparse-codebook',
  'ternary-int8',
  'codebook-int8',
] as const;
export type Format = (typeof FORMATS)[number];

/** The vector units of one core, per cycle. */
export interface CoreModel {
  /** e.g. "AMD Zen 5 (family 26)". */
  name: string;
  /** Bits one vector instruction processes per cycle per unit (Zen 4 runs 512-bit instructions on 256-bit
   * halves; Zen 5 server cores have full 512-bit units). */
  datapathBits: number;
  fmaUnits: number;
  dotUnits: number;
  popcountUnits: number;
  /** Divisors for missing instructions (see the header). */
  int8DotSlowdown: number;
  popcountSlowdown: number;
}

export class ClockMeasurementError extends WhittleError {
  override readonly name = 'ClockMeasurementError';
  readonly code = 'clock-measurement-failed';
}

export const PEAK_FORMULA =
  'peak = clock_hz x ops_per_cycle; fp32 = fma_units x datapath_bits/32 x 2; ' +
  'int8 and fixed8 = dot_units x datapath_bits/8 x 2 (/3 without VNNI); fixed16 = dot_units x datapath_bits/16 x 2; ' +
  'xnor = popcount_units x datapath_bits x 2 (/4 without VPOPCNTDQ); binary-weights, ternary, sparse, codebook, sparse-codebook = fp32; ' +
  'clock from a chain of dependent integer adds (bench/clock.c, best of 500 trials of 1e6 cycles); ops = 2 per multiply-accumulate';

function cpuidFamily(): { vendor: string; family: number } {
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    const vendor = /^vendor_id\s*:\s*(\S+)/m.exec(info)?.[1] ?? 'unknown';
    const family = Number(/^cpu family\s*:\s*(\d+)/m.exec(info)?.[1] ?? NaN);
    return { vendor, family };
  } catch {
    return { vendor: 'unknown', family: NaN };
  }
}

/** The core model for this CPU: AMD Zen 4 / Zen 5 from their documented units, otherwise a generic estimate
 * from the widest ISA the CPU has. */
export function coreModel(cpu: CpuFeatures): CoreModel {
  const { vendor, family } = cpuidFamily();
  const f = cpu.features;
  // Every model here has two FMA, dot-product and popcount units; they differ in name and datapath width.
  const model = (name: string, datapathBits: number): CoreModel => ({
    name,
    datapathBits,
    fmaUnits: 2,
    dotUnits: 2,
    popcountUnits: 2,
    int8DotSlowdown: f.avx512vnni || f.avxvnni || f.neondot ? 1 : 3,
    popcountSlowdown: f.avx512vpopcntdq || f.neon ? 1 : 4,
  });
  if (vendor === 'AuthenticAMD' && family === 26 && f.avx512f) return model('AMD Zen 5 (family 26)', 512);
  if (vendor === 'AuthenticAMD' && family === 25 && f.avx512f) return model('AMD Zen 4 (family 25)', 256);
  const datapathBits = f.avx512f ? 512 : f.avx2 ? 256 : 128;
  return model(`generic ${vendor} family ${family} (estimate)`, datapathBits);
}

/** Operations per cycle of one core for a format (2 per multiply-accumulate; binary: per bit). */
export function opsPerCycle(model: CoreModel, format: Format): number {
  const fp32 = model.fmaUnits * (model.datapathBits / 32) * 2;
  switch (format) {
    case 'fp32':
    case 'binary-weights':
    case 'ternary':
    case 'sparse':
    case 'codebook':
    case 'sparse-codebook':
      return fp32;
    case 'int8':
    case 'fixed8':
    case 'ternary-int8':
    case 'codebook-int8':
      return (model.dotUnits * (model.datapathBits / 8) * 2) / model.int8DotSlowdown;
    case 'fixed16':
      return model.dotUnits * (model.datapathBits / 16) * 2;
    case 'xnor':
      return (model.popcountUnits * model.datapathBits * 2) / model.popcountSlowdown;
  }
}

/** Compiles bench/clock.c into a temporary directory and runs it: the core clock in Hz. */
export function measureClockHz(): number {
  const dir = mkdtempSync(join(tmpdir(), 'whittle-clock-'));
  try {
    const binary = join(dir, 'clock');
    try {
      execFileSync('cc', ['-O2', '-o', binary, join(packageRoot(), 'bench', 'clock.c')], { stdio: 'pipe' });
    } catch (error) {
      throw new ClockMeasurementError(
        `Cannot compile bench/clock.c to measure the clock (needs a C compiler, \`cc\`): ${(error as Error).message}`,
      );
    }
    const hz = Number(execFileSync(binary, { encoding: 'utf8' }).trim());
    if (!Number.isFinite(hz) || hz < 1e8)
      throw new ClockMeasurementError(`bench/clock.c printed an implausible clock: ${hz} Hz`);
    return hz;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
