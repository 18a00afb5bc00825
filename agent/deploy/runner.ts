// Runs deployments: plan (plan.ts) → execute each step (the executor map below) → commit, or roll back.
//
// Invariants of the runner:
// - One deployment at a time: runs are chained; a new target aborts the one running, which rolls back
//   if it had switched, before the new one starts.
// - Only the runner writes active.json after start-up (recover() runs before the runner exists).
// - The target is persisted (deploy/target.json) before it runs, so an agent killed mid-deployment
//   resumes it after restarting: the download continues with a Range request; an interrupted health
//   check is rolled back by recover() and tried again, at most MAX_ATTEMPTS times in all (the counter
//   in target.json), since the new model itself may be what kills the agent.
// - A finished deployment (committed, refused, failed, rolled back) is recorded in deploy/last.json and
//   never run again under the same deploymentId.
// - Every phase is reported to the manager with the model served after it.
// - Nothing is switched to before it is verified twice against the pinned key (the target's signature
//   over the file's SHA-256, then the package's embedded signature) and built by the runtime: a package
//   for another CPU family or over the memory budget fails at `verify`. A model wanting other camera frames
//   is not refused: the daemon reopens the camera for it when it is switched to (and back on a rollback).
import type { KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';

import type { FrameShape } from '../camera/camera-feed.js';
import {
  type DeployErrorCode,
  type DeployPhase,
  type DeployReport,
  type DeployTarget,
  DeployTargetSchema,
  PROTOCOL_VERSION,
} from '../protocol/messages.js';
import { percentile } from '../telemetry/stats-window.js';
import { fsyncDirSync, writeFileAtomicSync } from './atomic-file.js';
import { type DownloadOptions, downloadResumable } from './download.js';
import { DeployError, deployErrorOfLoad } from './errors.js';
import { type InstalledModel, ModelStore, sha256File } from './model-store.js';
import { plan, type Step, type StepKind } from './plan.js';
import { checkSignedFile } from './verify-file.js';

export type { FrameShape };

/** The model as the deployment sees it: enough to probe it and hand it to the frame loop. */
export interface DeployableModel {
  readonly id: string;
  readonly input: Readonly<FrameShape>;
  /** A known frame and the class the model must give it, carried by the model itself. */
  readonly probe?: { input: Uint8Array; expectedClass: number } | undefined;
  infer(frame: Uint8Array): { classIndex: number; logits: Float32Array };
}

/** What the daemon provides to the runner. */
export interface DeployHost<M extends DeployableModel> {
  store: ModelStore;
  /** The directory of target.json and last.json. */
  deployDir: string;
  /** The pinned package-signing key; null refuses every deployment. */
  publicKey: KeyObject | null;
  arch: string;
  memBytes: number;
  /** The model file shipped with the agent: served when no deployment is active. */
  bundledModel: string;
  /** Loads, verifies (against the pinned key) and builds a deployed model file; throws on a bad one —
   * PackageError, MemoryBudgetError and the like, which the runner reports with their reason. */
  loadModel(path: string): M;
  /** Loads the model shipped with the agent (trusted as shipped, see PackageModel). */
  loadBundled(): M;
  /** From the next frame on, the frame loop runs this model (the daemon reopens the camera when the
   * model wants other frames; the health check then waits for the first of them). */
  activate(model: M, sha256: string): void;
  /** Latencies (ms) of the frames the loop finishes within the next ms milliseconds. */
  watchFrames(ms: number, signal: AbortSignal): Promise<number[]>;
  report(report: DeployReport): void;
  log(line: string): void;
  /** Time-outs and retries of downloads (tests shorten them). */
  download?: Partial<Omit<DownloadOptions, 'url' | 'dest' | 'expectedBytes' | 'signal'>>;
}

export const MAX_ATTEMPTS = 3;

interface PersistedTarget {
  target: DeployTarget;
  attempts: number;
}

interface RunContext<M extends DeployableModel> {
  host: DeployHost<M>;
  target: DeployTarget;
  signal: AbortSignal;
  report: (phase: DeployPhase, extra?: { code?: DeployErrorCode; reason?: string }) => void;
  /** The model the verify step built, handed to the health check so it is not read twice. */
  loaded?: { sha256: string; model: M };
}

type Executors = {
  [K in StepKind]: <M extends DeployableModel>(
    step: Extract<Step, { kind: K }>,
    run: RunContext<M>,
  ) => Promise<void>;
};

/** One executor per step kind: a kind without one does not compile. */
const executors: Executors = {
  refuse(step) {
    return Promise.reject(new DeployError(step.code, step.reason));
  },

  async download(step, { host, signal, report }) {
    report('downloading');
    await downloadResumable({
      log: (l) => host.log(l),
      ...host.download,
      url: step.url,
      dest: host.store.partPath(step.sha256),
      expectedBytes: step.bytes,
      signal,
    });
  },

  async verify(step, run) {
    const { host, signal, report } = run;
    const path = step.staged ? host.store.blobPath(step.sha256) : host.store.partPath(step.sha256);
    const discard = (): void => {
      try {
        unlinkSync(path);
      } catch {
        // Already gone.
      }
    };
    try {
      await checkSignedFile(path, step, host.publicKey, signal);
    } catch (err) {
      // A staged blob whose hash matches stays: it is the manager's signature that failed.
      if (err instanceof DeployError && (!step.staged || err.code === 'hash-mismatch')) discard();
      throw err;
    }
    // The package's own checks, before anything is switched: its embedded signature by the same key, its
    // CPU family, every section, the graph this runtime must execute, and the memory it needs.
    let model: ReturnType<typeof host.loadModel>;
    try {
      model = host.loadModel(path);
    } catch (err) {
      if (!step.staged) discard();
      throw deployErrorOfLoad(err);
    }
    run.loaded = { sha256: step.sha256, model };
    report('verified');
  },

  stage(step, { host, report }) {
    renameSync(host.store.partPath(step.sha256), host.store.blobPath(step.sha256));
    fsyncDirSync(host.store.blobs);
    report('staged');
    return Promise.resolve();
  },

  switch(step, { host, target, report }) {
    const active = host.store.readActive();
    host.store.writeActive({
      version: 1,
      current: step.to,
      previous: active.current,
      trial: true,
      deploymentId: target.deploymentId,
    });
    report('switched');
    return Promise.resolve();
  },

  async 'health-check'(step, run) {
    const { host, target, signal } = run;
    // The verify step of this run built it (the plan always verifies before it switches).
    const model = run.loaded?.sha256 === step.sha256 ? run.loaded.model : undefined;
    if (model === undefined) throw new DeployError('io', `model ${step.sha256} was not verified in this run`);
    const { width, height, channels } = model.input;
    const frameBytes = width * height * channels;
    // The target's probe overrides the one the package carries; without either, a blank frame must at
    // least give finite outputs.
    const fromTarget = target.health?.probe;
    const probe = fromTarget
      ? {
          input: Buffer.from(fromTarget.input, 'base64'),
          expectedClass: fromTarget.expectedClass,
          from: 'target',
        }
      : model.probe && { ...model.probe, from: 'package' };
    if (probe) {
      if (probe.input.length !== frameBytes)
        throw new DeployError(
          probe.from === 'target' ? 'bad-target' : 'bad-model',
          `the ${probe.from}'s probe input is ${probe.input.length} bytes; the model takes ${frameBytes}`,
        );
      const got = model.infer(probe.input).classIndex;
      if (got !== probe.expectedClass)
        throw new DeployError(
          'probe-mismatch',
          `the ${probe.from}'s known input gave class ${got}, expected ${probe.expectedClass}`,
        );
    } else if (!model.infer(new Uint8Array(frameBytes)).logits.every(Number.isFinite)) {
      throw new DeployError('bad-model', 'the new model gives non-finite outputs on a blank frame');
    }
    host.activate(model, step.sha256);
    const seconds = target.health?.seconds ?? 5;
    const latencies = (await host.watchFrames(seconds * 1000, signal)).sort((a, b) => a - b);
    if (signal.aborted) throw new DeployError('aborted', 'the health check was aborted');
    if (seconds > 0 && latencies.length === 0)
      throw new DeployError(
        'no-frames',
        `the frame loop finished no frame in ${seconds} s with the new model`,
      );
    const budget = target.health?.latencyBudgetMs;
    const p95 = percentile(latencies, 95);
    if (budget !== undefined && p95 > budget)
      throw new DeployError(
        'over-latency-budget',
        `frame latency p95 ${p95.toFixed(2)} ms over ${seconds} s exceeds the budget of ${budget} ms`,
      );
  },

  commit(_step, { host, report }) {
    const active = host.store.readActive();
    host.store.writeActive({ ...active, trial: false });
    const keep = new Set([active.current?.sha256, active.previous?.sha256].filter((s): s is string => !!s));
    host.store.collectGarbage(keep);
    report('committed');
    return Promise.resolve();
  },
};

export interface Recovery {
  /** The model file to serve and its hash ("bundled" for the shipped one). */
  path: string;
  sha256: string;
  /** A trial (switched, not yet healthy) was found and undone. */
  interrupted: boolean;
}

export class DeployRunner<M extends DeployableModel> {
  private chain: Promise<void> = Promise.resolve();
  private controller: AbortController | null = null;
  private serving: string;

  constructor(
    private readonly host: DeployHost<M>,
    serving: string,
  ) {
    this.serving = serving;
    mkdirSync(host.deployDir, { recursive: true, mode: 0o700 });
  }

  /** Before the daemon loads its model: undoes an interrupted trial and picks the model to serve,
   * checking the blob's hash (falling back to previous, then to the bundled model, on damage). */
  static async recover(
    store: ModelStore,
    bundledModel: string,
    log: (line: string) => void,
  ): Promise<Recovery> {
    let active = store.readActive();
    let interrupted = false;
    if (active.trial) {
      log(
        `deploy: the health check of ${active.current?.modelId ?? '?'} ${active.current?.version ?? ''} was interrupted; back to ${active.previous ? `${active.previous.modelId} ${active.previous.version}` : 'the bundled model'}`,
      );
      active = { version: 1, current: active.previous, previous: null, trial: false };
      store.writeActive(active);
      interrupted = true;
    }
    for (const candidate of [active.current, active.previous]) {
      if (!candidate) continue;
      const path = store.blobPath(candidate.sha256);
      try {
        if ((await sha256File(path)) === candidate.sha256)
          return { path, sha256: candidate.sha256, interrupted };
        log(`deploy: ${path} does not match its hash; not serving it`);
      } catch (err) {
        log(`deploy: cannot read ${path}: ${(err as Error).message}`);
      }
    }
    return { path: bundledModel, sha256: 'bundled', interrupted };
  }

  /** Decodes a target (from MQTT or a file); throws DeployError('bad-target') naming the field. */
  static decodeTarget(json: unknown): DeployTarget {
    const parsed = DeployTargetSchema.safeParse(json);
    if (!parsed.success)
      throw new DeployError(
        'bad-target',
        `invalid deploy target: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
      );
    return parsed.data;
  }

  /** Persists the target and runs it after (aborting) the current one. */
  submit(target: DeployTarget): void {
    if (this.finished(target.deploymentId)) {
      this.host.log(`deploy: ${target.deploymentId} already finished; ignored`);
      return;
    }
    const persisted = this.readPersisted();
    if (persisted?.target.deploymentId !== target.deploymentId) this.persist({ target, attempts: 0 });
    this.controller?.abort();
    this.enqueue();
  }

  /** At start-up: continues a deployment that a restart interrupted. An interrupted health check
   * counts as an attempt, since the new model itself may be what stopped the agent. */
  resume(interrupted: boolean): void {
    const persisted = this.readPersisted();
    if (!persisted || this.finished(persisted.target.deploymentId)) return;
    if (interrupted) {
      this.persist({ ...persisted, attempts: persisted.attempts + 1 });
      this.reportFor(persisted.target, 'rolled-back', {
        code: 'interrupted',
        reason: 'the agent restarted during the health check; trying again',
      });
    }
    this.enqueue();
  }

  /** Resolves when no deployment is running or queued. */
  idle(): Promise<void> {
    return this.chain;
  }

  async close(): Promise<void> {
    this.controller?.abort();
    await this.chain;
  }

  private enqueue(): void {
    this.chain = this.chain.then(() => this.runPersisted());
  }

  private async runPersisted(): Promise<void> {
    const persisted = this.readPersisted();
    if (!persisted || this.finished(persisted.target.deploymentId)) return;
    const { target } = persisted;
    if (persisted.attempts >= MAX_ATTEMPTS) {
      this.reportFor(target, 'failed', {
        code: 'interrupted',
        reason: `interrupted ${persisted.attempts} times; giving up`,
      });
      this.finish(target, 'failed');
      return;
    }
    const controller = new AbortController();
    this.controller = controller;
    const host = this.host;
    const run: RunContext<M> = {
      host,
      target,
      signal: controller.signal,
      report: (phase, extra) => this.reportFor(target, phase, extra),
    };
    const before = host.store.readActive();
    const steps = plan(
      {
        active: before,
        hasBlob: (sha) => host.store.hasBlob(sha),
        arch: host.arch,
        memBytes: host.memBytes,
        hasKey: host.publicKey !== null,
      },
      target,
    );
    let switched = false;
    try {
      for (const step of steps) {
        if (controller.signal.aborted) throw new DeployError('aborted', 'superseded or shutting down');
        const execute = executors[step.kind] as (s: Step, r: RunContext<M>) => Promise<void>;
        await execute(step, run);
        if (step.kind === 'switch') switched = true;
        if (step.kind === 'health-check') this.serving = step.sha256;
      }
      if (steps.length === 0) run.report('committed', { reason: 'already serving this model' });
      this.finish(target, 'committed');
    } catch (err) {
      const code: DeployErrorCode = err instanceof DeployError ? err.code : 'io';
      const reason = (err as Error).message;
      if (switched) this.rollBack(before.current);
      if (code === 'aborted') {
        // Superseded by a newer target or the agent is stopping: a restart resumes it.
        if (switched) run.report('rolled-back', { code, reason });
        return;
      }
      const phase: DeployPhase = switched
        ? 'rolled-back'
        : steps[0]?.kind === 'refuse'
          ? 'refused'
          : 'failed';
      run.report(phase, { code, reason });
      host.log(`deploy ${target.deploymentId}: ${phase}: ${reason}`);
      this.finish(target, phase);
    } finally {
      if (this.controller === controller) this.controller = null;
    }
  }

  private rollBack(to: InstalledModel | null): void {
    const host = this.host;
    host.store.writeActive({ version: 1, current: to, previous: null, trial: false });
    const path = to ? host.store.blobPath(to.sha256) : host.bundledModel;
    try {
      host.activate(to ? host.loadModel(path) : host.loadBundled(), to ? to.sha256 : 'bundled');
      this.serving = to ? to.sha256 : 'bundled';
    } catch (err) {
      host.log(`deploy: cannot reload ${path} after a rollback: ${(err as Error).message}`);
    }
  }

  private reportFor(
    target: DeployTarget,
    phase: DeployPhase,
    extra: { code?: DeployErrorCode; reason?: string } = {},
  ): void {
    this.host.log(`deploy ${target.deploymentId}: ${phase}${extra.reason ? `: ${extra.reason}` : ''}`);
    this.host.report({
      v: PROTOCOL_VERSION,
      ts: Date.now(),
      deploymentId: target.deploymentId,
      modelId: target.model.id,
      version: target.model.version,
      phase,
      ...extra,
      serving: this.serving,
    });
  }

  private get targetFile(): string {
    return join(this.host.deployDir, 'target.json');
  }

  private get lastFile(): string {
    return join(this.host.deployDir, 'last.json');
  }

  private readPersisted(): PersistedTarget | null {
    try {
      const o = JSON.parse(readFileSync(this.targetFile, 'utf8')) as { target?: unknown; attempts?: unknown };
      return {
        target: DeployRunner.decodeTarget(o.target),
        attempts: Number.isInteger(o.attempts) ? (o.attempts as number) : 0,
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        this.host.log(`deploy: ignoring ${this.targetFile}: ${(err as Error).message}`);
      return null;
    }
  }

  private persist(p: PersistedTarget): void {
    writeFileAtomicSync(this.targetFile, JSON.stringify(p), 0o600);
  }

  private finished(deploymentId: string): boolean {
    try {
      return (
        (JSON.parse(readFileSync(this.lastFile, 'utf8')) as { deploymentId?: unknown }).deploymentId ===
        deploymentId
      );
    } catch {
      return false;
    }
  }

  private finish(target: DeployTarget, phase: DeployPhase): void {
    writeFileAtomicSync(
      this.lastFile,
      JSON.stringify({ deploymentId: target.deploymentId, phase, ts: Date.now() }),
      0o600,
    );
  }
}
