// A measure-packages request (the manager's check that an optimized package pays on this device): each
// package is downloaded and verified as a deployment's is (agent/deploy/verify-file.ts, then the loader's
// embedded signature, CPU family and memory budget), built as the served model is, and the packages are
// timed interleaved at batch 1: one camera frame through infer per package per round, the packages in a
// rotated order each round (timeRound, as the latency table's points), so that drift hits them alike. A
// package refused (too large, corrupt, unsigned or signed by another key) refuses the whole request with the
// deployment's code; nothing is timed. The files are deleted afterwards.
import type { KeyObject } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

import { activeIsa, addonBuildHash, getThreads } from '../../native/index.js';
import { downloadResumable } from '../deploy/download.js';
import { DeployError, deployErrorOfLoad } from '../deploy/errors.js';
import { checkSignedFile } from '../deploy/verify-file.js';
import { median, timedRun, timeRound } from '../profile/latency-table.js';
import type { PackageTiming, RequestMessage } from '../protocol/messages.js';
import type { PackageModel } from '../runtime/package-model.js';
import { percentile } from '../telemetry/stats-window.js';
import type { ResponseBody } from './requests.js';

type PackagesRequest = Extract<RequestMessage, { kind: 'measure-packages' }>;

export interface PackageMeasureHost {
  /** The agent's state directory: packages are downloaded under <stateDir>/measure. */
  stateDir: string;
  /** The pinned package key; null refuses every package (as every deployment). */
  publicKey: KeyObject | null;
  /** Builds a verified file as a deployed package is built (embedded signature, memory budget). */
  loadPackage: (path: string) => PackageModel;
  signal: AbortSignal;
  log: (line: string) => void;
}

/** Downloads, verifies and builds the request's packages; refuses the first that fails with its code. */
async function loadPackages(request: PackagesRequest, host: PackageMeasureHost): Promise<PackageModel[]> {
  const dir = join(host.stateDir, 'measure');
  mkdirSync(dir, { recursive: true });
  const models: PackageModel[] = [];
  for (const [i, pkg] of request.packages.entries()) {
    const path = join(dir, `${pkg.sha256}.part`);
    const which = `package ${i + 1} of ${request.packages.length} (${pkg.sha256.slice(0, 12)})`;
    try {
      rmSync(path, { force: true });
      await downloadResumable({
        url: pkg.url,
        dest: path,
        expectedBytes: pkg.bytes,
        signal: host.signal,
        retries: 2,
        log: host.log,
      });
      await checkSignedFile(path, pkg, host.publicKey, host.signal);
      try {
        models.push(host.loadPackage(path));
      } catch (err) {
        throw deployErrorOfLoad(err);
      }
    } catch (err) {
      if (err instanceof DeployError) throw new DeployError(err.code, `${which}: ${err.message}`);
      throw err;
    } finally {
      rmSync(path, { force: true });
    }
  }
  return models;
}

/** Times the request's packages on this device and answers with their timings (see the file comment). */
export async function measurePackagesOnRequest(
  request: PackagesRequest,
  host: PackageMeasureHost,
  send: (body: ResponseBody) => void,
): Promise<void> {
  send({ kind: 'packages-start', total: request.packages.length });
  const models = await loadPackages(request, host);
  // The frame each package is timed on: its probe (a real image) when it carries one, else a grey frame.
  const runs = models.map((model) => {
    const { width, height, channels } = model.input;
    const bytes = width * height * channels;
    const probe = model.probe?.input;
    const frame = probe?.length === bytes ? probe : new Uint8Array(bytes).fill(128);
    return timedRun(() => model.infer(frame), 0);
  });
  for (let r = 0; r < request.runs; r++) {
    if (host.signal.aborted)
      throw new DeployError('interrupted', 'the agent stopped while it timed the packages');
    timeRound(runs, r);
    // Lets an abort be seen between rounds.
    if (r % 8 === 7) await new Promise<void>((resolve) => setImmediate(resolve));
  }
  const timings: PackageTiming[] = runs.map((t, i) => {
    const sorted = [...t.samples].sort((a, b) => a - b);
    return {
      sha256: request.packages[i]!.sha256,
      median_ms: median(sorted),
      p90_ms: percentile(sorted, 90),
      runs: t.samples.length * t.reps,
    };
  });
  send({
    kind: 'packages-measured',
    timings,
    isa: activeIsa(),
    threads: getThreads(),
    build_hash: addonBuildHash(),
  });
}
