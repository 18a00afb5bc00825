// The renderer's checker against zod: on the contract's own bodies and thousands of mutations of them
// (fixed seed), the checker built from the generated JSON Schemas accepts exactly what zod accepts and
// decodes to the same value, so the renderer and the core cannot disagree on a limit.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { LatencyTable } from '../../../agent/profile/latency-table.js';
import type { DeviceProfile } from '../../../agent/profile/profile.js';
import {
  CONTRACT_SCHEMAS,
  type ContractBodyName,
  type DeploymentView,
  type DeviceView,
} from '../../../electron/api/contract.js';
import { assertCheckable, checkJson } from '../../../electron/api/json-schema-check.js';
import { CONTRACT_JSON_SCHEMAS } from '../../../electron/api/json-schemas.js';
import { SeededRandom } from '../../../optimize/seeded-random.js';

const SHA = 'ab'.repeat(32);

const device: DeviceView = {
  id: 'cam-1',
  online: true,
  info: {
    id: 'cam-1',
    hostname: 'pi',
    arch: 'arm64',
    platform: 'linux',
    cpuModel: 'Cortex-A72',
    cpus: 4,
    memTotalBytes: 4e9,
    agentVersion: '0.1.0',
    nodeVersion: 'v20.19.0',
    camera: 'testsrc',
    model: { id: 'fashion', name: 'Fashion LeNet-5' },
  },
  lastSeen: 1_700_000_000_000,
  stats: {
    v: 1,
    seq: 7,
    epoch: 'e1',
    ts: 1_700_000_000_000,
    windowMs: 1000,
    frames: 30,
    fps: 29.9,
    latencyMs: { p50: 0.5, p95: 0.9, p99: 1.1, max: 2 },
    cpuPercent: 12.5,
    rssBytes: 5e7,
    temperatureC: 48,
    prediction: { classIndex: 3, label: 'Dress', confidence: 0.9 },
    classCounts: [1, 2, 27],
    meanConfidence: 0.8,
    accuracy: { frames: 30, correct: 28 },
    dropped: 0,
  },
};

const deployment: DeploymentView = {
  id: 'd-1',
  createdAt: 1,
  package: { sha256: SHA, modelId: 'fashion', modelVersion: '1.2' },
  devices: [
    {
      device: 'cam-1',
      phase: 'rolled-back',
      code: 'over-latency-budget',
      reason: 'p95 3 ms',
      serving: 'bundled',
      updatedAt: 2,
      finished: true,
    },
    {
      device: 'cam-2',
      phase: 'pending',
      code: null,
      reason: null,
      serving: null,
      updatedAt: 1,
      finished: false,
    },
  ],
  finished: false,
  succeeded: false,
};

const profile: DeviceProfile = {
  profile_version: 1,
  collected_at: 1_700_000_000_000,
  hostname: 'pi',
  cpu: {
    model: 'Cortex-A72',
    cores: 4,
    emulated: false,
    isa_features: ['neon'],
    freq_khz: { cur: [600000, 1500000, 1500000, 1500000], max: null },
    caches: [{ level: 1, type: 'Data', size_bytes: 32768, shared_cpus: 1 }],
  },
  memory: { total_bytes: 4e9, free_bytes: 3e9 },
  storage: { free_bytes: null, path: '/var/lib/whittle-agent' },
  thermal: [{ zone: 'thermal_zone0', type: 'cpu-thermal', temp_c: 48.3 }],
  os: { platform: 'linux', arch: 'arm64', release: '6.1.0', kernel: '#1 SMP', name: null },
  node_version: '20.19.0',
  cameras: ['/dev/video0'],
  kernels: { isa: 'neon', build_hash: '0123456789abcdef' },
};

const table: LatencyTable = {
  table_version: 3,
  build_hash: '0123456789abcdef',
  isa: 'neon',
  threads: 1,
  grid_id: 'fedcba9876543210',
  complete: false,
  measured_at: 5,
  conditions: { before: { temps_c: [48.3], freq_khz: [] }, after: { temps_c: [], freq_khz: [1500000] } },
  entries: [
    {
      key: 'conv2d/int8/k3s1/r8/c32-32',
      op: 'conv2d+relu',
      format: 'int8',
      kernel: 'qs8_gemm',
      shape: { op: 'conv2d', format: 'int8', kernel: 3, stride: 1, size: 8, inC: 32, outC: 32 },
      macs: 589824,
      in_elements: 2048,
      out_elements: 2048,
      weight_bytes: 9344,
      density: 1,
      calls: 3,
      ms: 0.0421,
      runs: 900,
    },
  ],
};

/** One valid body of each name the contract has; the test fails when a name is added without one. */
const SAMPLES: Record<ContractBodyName, unknown[]> = {
  ApiError: [{ error: 'no', code: 'bad-json' }, { error: 'no' }],
  DeviceView: [device],
  HealthResponse: [{ ok: true, version: '0.1.0' }],
  DevicesResponse: [
    {
      devices: [
        device,
        { ...device, info: null, stats: null, lastSeen: null },
        { ...device, paused: { reason: 'measurement', request: 'r1', since: 5 } },
      ],
    },
  ],
  DeviceProfileResponse: [{ device: 'cam-1', receivedAt: 3, profile }],
  MeasureRequest: [{ grid: 'quick' }, { grid: 'default', limit: 6, threads: 2 }],
  LatencyTablesResponse: [
    { device: 'cam-1', buildHash: null, current: null, stale: [], measurement: null },
    {
      device: 'cam-1',
      buildHash: '0123456789abcdef',
      current: table,
      stale: [{ build_hash: 'aa', grid_id: 'bb', threads: 1, complete: true, entries: 40, measured_at: 2 }],
      measurement: { request: 'r1', state: 'failed', done: 1, total: 6, startedAt: 1, error: 'went offline' },
    },
  ],
  MeasurePackagesRequest: [{ packages: [SHA] }, { packages: [SHA, SHA], runs: 50 }],
  MeasurePackagesResponse: [
    {
      device: 'cam-1',
      timings: [{ sha256: SHA, median_ms: 0.5, p90_ms: 0.7, runs: 50 }],
      isa: 'neon',
      threads: 4,
      build_hash: '0123456789abcdef',
      receivedAt: 6,
    },
    { device: 'cam-1', timings: [], isa: null, threads: 1, build_hash: null, receivedAt: 6 },
  ],
  SnapshotResponse: [
    { device: 'cam-1', snapshot: null },
    {
      device: 'cam-1',
      snapshot: {
        v: 1,
        ts: 5,
        jpeg: '/9j/4AAQ',
        prediction: { classIndex: 1, label: 'x', confidence: 1 },
        trueLabel: 'x',
      },
    },
  ],
  PackageView: [
    { sha256: SHA, modelId: 'm', modelVersion: '1', name: null, bytes: 10, cpuFamily: 'any', addedAt: 3 },
  ],
  PackagesResponse: [
    {
      packages: [
        {
          sha256: SHA,
          modelId: 'm',
          modelVersion: '1',
          name: 'n',
          bytes: 0,
          cpuFamily: 'x86_64',
          addedAt: 3,
        },
      ],
    },
  ],
  DeployRequest: [
    { package: SHA, devices: 'all' },
    { package: SHA, devices: ['cam-1', 'cam-2'], rollback: true, healthSeconds: 5, latencyBudgetMs: 10 },
  ],
  DeploymentView: [deployment],
  DeploymentsResponse: [{ deployments: [deployment] }],
  DeploymentEventsResponse: [
    {
      deployment: 'd-1',
      events: [{ device: 'cam-1', phase: 'committed', code: null, reason: null, serving: SHA, at: 4 }],
    },
  ],
  LiveMessage: [
    { type: 'snapshot', devices: [device] },
    { type: 'device', device },
    { type: 'deployment', deployment },
  ],
};

/** Values a mutation puts in place of a member: wrong types, edges of the limits, extra members. */
const REPLACEMENTS: unknown[] = [
  null,
  undefined,
  -1,
  0,
  1.5,
  2 ** 53,
  -0.0001,
  1e308,
  '',
  'x',
  'cam 1',
  'a'.repeat(65),
  'b'.repeat(2001),
  SHA,
  'AB'.repeat(32),
  true,
  [],
  {},
  ['cam-1'],
  { unexpected: 1 },
  'all',
  'pending',
  'committed',
  'io',
  'deployment',
  '/9j/',
];

type Path = (string | number)[];

function leaves(value: unknown, path: Path = [], out: Path[] = []): Path[] {
  out.push(path);
  if (Array.isArray(value)) value.forEach((v, i) => leaves(v, [...path, i], out));
  else if (typeof value === 'object' && value !== null)
    for (const [k, v] of Object.entries(value)) leaves(v, [...path, k], out);
  return out;
}

function mutate(value: unknown, path: Path, replacement: unknown, addMember: boolean): unknown {
  const copy: unknown = structuredClone(value);
  if (path.length === 0) return replacement;
  let parent = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) parent = parent[key] as Record<string | number, unknown>;
  const last = path[path.length - 1]!;
  if (addMember && typeof parent[last] === 'object' && parent[last] !== null && !Array.isArray(parent[last]))
    (parent[last] as Record<string, unknown>).extra = replacement;
  else if (replacement === undefined && !Array.isArray(parent)) delete parent[last];
  else parent[last] = replacement;
  return copy;
}

function agree(name: ContractBodyName, value: unknown): void {
  const zod = CONTRACT_SCHEMAS[name].safeParse(value);
  const checked = checkJson(CONTRACT_JSON_SCHEMAS, name, value);
  // Refinements (.refine) have no JSON Schema form; the core checks them where the data arrives.
  if (!zod.success && zod.error.issues.every((i) => i.code === 'custom')) return;
  const shown = JSON.stringify(value)?.slice(0, 300);
  assert.equal(checked.ok, zod.success, `${name} ${shown}: ${checked.ok ? 'zod refused' : checked.reason}`);
  if (checked.ok && zod.success) assert.deepEqual(checked.value, zod.data, `${name} ${shown}`);
}

test('every contract schema has a checkable JSON Schema and a sample', () => {
  assertCheckable(CONTRACT_JSON_SCHEMAS);
  for (const name of Object.keys(CONTRACT_SCHEMAS) as ContractBodyName[]) {
    assert.ok(Object.hasOwn(CONTRACT_JSON_SCHEMAS, name), name);
    assert.ok(SAMPLES[name].length > 0, name);
  }
});

test('the samples decode to what zod decodes', () => {
  for (const [name, samples] of Object.entries(SAMPLES) as [ContractBodyName, unknown[]][]) {
    for (const sample of samples) {
      assert.ok(CONTRACT_SCHEMAS[name].safeParse(sample).success, `${name}: sample is not valid`);
      agree(name, sample);
    }
  }
});

test('on 20,000 mutated bodies the checker accepts and refuses exactly what zod does', () => {
  const random = new SeededRandom(12);
  const pick = <T>(items: readonly T[]): T => items[random.int(0, items.length - 1)]!;
  const names = Object.keys(SAMPLES) as ContractBodyName[];
  let refused = 0;
  for (let i = 0; i < 20_000; i++) {
    const name = pick(names);
    const sample = pick(SAMPLES[name]);
    const value = mutate(sample, pick(leaves(sample)), pick(REPLACEMENTS), random.next() < 0.15);
    if (!CONTRACT_SCHEMAS[name].safeParse(value).success) refused++;
    agree(name, value);
  }
  // The mutations must exercise refusals, not only harmless changes.
  assert.ok(refused > 5000, `only ${refused} mutations were refused`);
});

test('a refusal names the member, what was expected and what came', () => {
  const bad = structuredClone(device) as unknown as { stats: { fps: unknown } };
  bad.stats.fps = 'x';
  assert.deepEqual(checkJson(CONTRACT_JSON_SCHEMAS, 'DevicesResponse', { devices: [bad] }), {
    ok: false,
    reason: 'devices[0].stats.fps: expected a number, got "x"',
  });
  assert.deepEqual(checkJson(CONTRACT_JSON_SCHEMAS, 'LiveMessage', { type: 'other' }), {
    ok: false,
    reason: 'type: expected one of snapshot, device, deployment, got "other"',
  });
  const reason = checkJson(CONTRACT_JSON_SCHEMAS, 'LiveMessage', {
    type: 'device',
    device: { ...device, id: 'a b' },
  });
  assert.equal(reason.ok, false);
  assert.match(reason.ok ? '' : reason.reason, /^device\.id: expected a string matching/);
});

test('a schema keyword the checker does not implement is refused, not ignored', () => {
  assert.throws(
    () => assertCheckable({ X: { type: 'string', format: 'email' } }),
    /"format" is not implemented/,
  );
  assert.throws(
    () => assertCheckable({ X: { type: 'object', properties: { a: { type: 'array', prefixItems: [] } } } }),
    /X\.a: the keyword "prefixItems"/,
  );
  assert.throws(() => assertCheckable({ X: { $ref: 'Y' } }), /\$ref "Y" names no schema of the set/);
});
