// The agent's facts about its CPU: the kernel's model only when the kernel describes this process's CPU.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { cpuModelFact, deviceFacts, kernelCpuFamily } from '../../../agent/telemetry/device-facts.js';

const X86_CPUINFO =
  'processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx2\n';
const ARM_CPUINFO =
  'processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd crc32\nCPU implementer\t: 0x41\n';

test('the kernel CPU family is read from /proc/cpuinfo fields', () => {
  assert.equal(kernelCpuFamily(X86_CPUINFO), 'x86');
  assert.equal(kernelCpuFamily(ARM_CPUINFO), 'arm');
  assert.equal(kernelCpuFamily(''), 'unknown');
});

test("an ARM process on an x86 kernel (qemu-user) does not claim the host's CPU as its own", () => {
  assert.equal(cpuModelFact('arm64', 'AMD EPYC', X86_CPUINFO), 'arm64 (emulated on AMD EPYC)');
  assert.equal(cpuModelFact('arm', 'AMD EPYC', X86_CPUINFO), 'arm (emulated on AMD EPYC)');
});

test("a native process reports the kernel's model as it is", () => {
  assert.equal(cpuModelFact('x64', ' AMD EPYC ', X86_CPUINFO), 'AMD EPYC');
  assert.equal(cpuModelFact('arm64', 'Cortex-A72', ARM_CPUINFO), 'Cortex-A72');
  assert.equal(cpuModelFact('arm64', undefined, ''), 'unknown');
});

test("this process's facts: its own arch and the addon's kernel path", () => {
  const facts = deviceFacts();
  assert.equal(facts.arch, process.arch);
  assert.ok(facts.isa && facts.isa.length > 0, JSON.stringify(facts));
  assert.ok(Array.isArray(facts.cpuFeatures));
  assert.ok(facts.cpus >= 1 && facts.memTotalBytes > 0);
});
