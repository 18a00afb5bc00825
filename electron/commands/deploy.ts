// `whittle deploy PKG (--device ID ... | --all | --online) [--rollback] [--wait]`: uploads a package to the
// running manager (`whittle serve`), starts a deployment and, with --wait, follows it to the end over the
// manager's live feed: one line per device phase; exit 0 only when every device committed.
import { readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';

import type { DeploymentDeviceView, DeploymentView, DeployRequest, PackageView } from '../api/contract.js';
import { MAX_PACKAGE_BYTES } from '../api/routes.js';
import { defaultDataDir } from '../core/core.js';
import { CommandUsageError } from './command-error.js';
import { ManagerApiError, ManagerClient } from './manager-client.js';

export const DEPLOY_HELP = `  deploy PKG (--device ID ... | --all | --online)
                        send a package to devices through the running manager (whittle serve);
                        --rollback installs an older version, --wait follows every device to the end
                        (exit 0 only when all committed), --health-seconds N, --latency-budget MS,
                        --timeout S (default 600), --data-dir DIR
`;

/** How often --wait asks for the deployment when the live feed is quiet. */
const POLL_MS = 2000;

function positiveNumber(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new CommandUsageError(`${flag}: expected a number >= 0, got "${value}"`);
  return n;
}

/** One line per device phase: "cam-1  committed" or "cam-2  refused (bad-signature): why". */
export function formatDevicePhase(d: DeploymentDeviceView): string {
  const why = d.reason ? `${d.code ? ` (${d.code})` : ''}: ${d.reason}` : d.code ? ` (${d.code})` : '';
  return `${d.device}  ${d.phase}${why}`;
}

export async function deployCommand(
  args: string[],
  out: (line: string) => void = console.log,
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      device: { type: 'string', multiple: true },
      all: { type: 'boolean' },
      online: { type: 'boolean' },
      rollback: { type: 'boolean' },
      wait: { type: 'boolean' },
      'health-seconds': { type: 'string' },
      'latency-budget': { type: 'string' },
      timeout: { type: 'string' },
      'data-dir': { type: 'string' },
    },
  });
  const file = positionals[0];
  if (file === undefined || positionals.length > 1)
    throw new CommandUsageError('deploy: expected one package file');
  const chosen = [values.device !== undefined, values.all === true, values.online === true].filter(Boolean);
  if (chosen.length !== 1)
    throw new CommandUsageError(
      'deploy: name the devices with --device ID (repeatable), or --all, or --online',
    );
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    throw new CommandUsageError(`deploy: cannot read ${file}: ${(err as Error).message}`);
  }
  if (size > MAX_PACKAGE_BYTES)
    throw new CommandUsageError(
      `deploy: ${file} is ${size} bytes; the manager accepts at most ${MAX_PACKAGE_BYTES}`,
    );
  const healthSeconds = positiveNumber(values['health-seconds'], '--health-seconds');
  const latencyBudgetMs = positiveNumber(values['latency-budget'], '--latency-budget');
  const timeoutS = positiveNumber(values.timeout, '--timeout') ?? 600;

  const client = ManagerClient.forDataDir(values['data-dir'] ?? defaultDataDir());
  // The manager validates the package with the agent's reader; a refusal names the reader's error code.
  let pkg: PackageView;
  try {
    pkg = await client.uploadPackage(readFileSync(file));
  } catch (err) {
    if (err instanceof ManagerApiError && err.status === 422)
      throw new ManagerApiError(
        `${file} refused${err.code ? ` (${err.code})` : ''}: ${err.message}`,
        422,
        err.code,
      );
    throw err;
  }
  const request: DeployRequest = {
    package: pkg.sha256,
    devices: values.all ? 'all' : values.online ? 'online' : values.device!,
    ...(values.rollback ? { rollback: true } : {}),
    ...(healthSeconds !== undefined ? { healthSeconds } : {}),
    ...(latencyBudgetMs !== undefined ? { latencyBudgetMs } : {}),
  };
  // Follow the live feed from before the deployment starts, so no early phase is missed; poll as well, as a
  // safety net for a dropped feed (the store holds every device's newest phase).
  const changes: DeploymentView[] = [];
  let wake: (() => void) | null = null;
  const feed = values.wait
    ? await client.watchDeployments((view) => {
        changes.push(view);
        wake?.();
      })
    : null;
  try {
    let deployment = await client.startDeployment(request);
    out(
      `deployment ${deployment.id}: ${pkg.modelId} ${pkg.modelVersion} (${pkg.sha256.slice(0, 12)}) to ` +
        `${deployment.devices.map((d) => d.device).join(', ')}`,
    );
    if (!values.wait) return 0;
    const printed = new Map<string, string>();
    const print = (view: DeploymentView): void => {
      for (const d of view.devices) {
        const line = formatDevicePhase(d);
        if (printed.get(d.device) !== line) {
          printed.set(d.device, line);
          out(line);
        }
      }
    };
    const deadline = Date.now() + timeoutS * 1000;
    print(deployment);
    while (!deployment.finished) {
      if (Date.now() > deadline) {
        const waiting = deployment.devices.filter((d) => !d.finished).map((d) => `${d.device} (${d.phase})`);
        out(`timed out after ${timeoutS} s; still waiting for ${waiting.join(', ')}`);
        return 1;
      }
      if (changes.length === 0)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, POLL_MS);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      wake = null;
      const mine = changes.splice(0).filter((v) => v.id === deployment.id);
      if (mine.length === 0) deployment = await client.deployment(deployment.id);
      for (const view of mine) {
        print(view);
        deployment = view;
      }
      print(deployment);
    }
    const committed = deployment.devices.filter((d) => d.phase === 'committed').length;
    out(`${committed} of ${deployment.devices.length} devices committed`);
    return deployment.succeeded ? 0 : 1;
  } finally {
    feed?.close();
  }
}
