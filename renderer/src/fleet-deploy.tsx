// The fleet deploy view: pick a package the core knows, pick devices (or all), deploy, and watch each
// device's phase (with the device's reason on a refusal, failure or rollback) as its reports arrive over the
// live link. A package file can be added here too (the core checks it as for `whittle deploy`). Stable
// data-testid attributes: package-<sha256 prefix>, package-upload, upload-error, deploy-device-<id>,
// deploy-all, deploy-button, deploy-error, deployment-phase-<device>, deployment-reason-<device>.
import { useState } from 'preact/hooks';

import type { DeploymentView, DeviceView, PackageView } from '../../electron/api/contract.js';
import { fetchPackages, startDeployment, uploadPackage } from './core-api.js';
import { formatAgo, formatMegabytes, NO_VALUE } from './format.js';
import { usePolling } from './polling.js';

/** How often the package list is fetched again (packages are added by `whittle deploy` too). */
const PACKAGES_REFRESH_MS = 5000;

const PHASE_CLASS: Record<string, string> = {
  committed: 'badge badge-online',
  refused: 'badge badge-error',
  failed: 'badge badge-error',
  'rolled-back': 'badge badge-error',
  superseded: 'badge badge-offline',
};

export function FleetDeploy({
  token,
  devices,
  deployments,
  now,
  onDeployment,
}: {
  token: string;
  devices: readonly DeviceView[];
  /** Newest first. */
  deployments: readonly DeploymentView[];
  now: number;
  onDeployment: (deployment: DeploymentView) => void;
}) {
  const [packages, setPackages] = useState<PackageView[]>([]);
  const [packagesError, setPackagesError] = useState<string | null>(null);
  const [chosenPackage, setChosenPackage] = useState<string | null>(null);
  const [chosenDevices, setChosenDevices] = useState<ReadonlySet<string>>(new Set());
  const [all, setAll] = useState(false);
  const [rollback, setRollback] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [shown, setShown] = useState<string | null>(null);
  const [uploading, setUploading] = useState(false);
  const [uploadError, setUploadError] = useState<string | null>(null);

  usePolling(
    () => fetchPackages(token),
    (body) => {
      setPackages(body.packages);
      setPackagesError(null);
    },
    setPackagesError,
    PACKAGES_REFRESH_MS,
    [token],
  );

  const toggleDevice = (id: string): void => {
    const next = new Set(chosenDevices);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setChosenDevices(next);
  };

  const ready = chosenPackage !== null && (all || chosenDevices.size > 0) && !busy;
  const deploy = async (): Promise<void> => {
    if (chosenPackage === null) return;
    setBusy(true);
    setError(null);
    try {
      const view = await startDeployment(token, {
        package: chosenPackage,
        devices: all ? 'all' : [...chosenDevices].sort(),
        ...(rollback ? { rollback: true } : {}),
      });
      onDeployment(view);
      setShown(view.id);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  };

  const upload = async (input: HTMLInputElement): Promise<void> => {
    const file = input.files?.[0];
    if (!file) return;
    setUploading(true);
    setUploadError(null);
    try {
      const pkg = await uploadPackage(token, await file.arrayBuffer());
      setPackages((list) => [pkg, ...list.filter((p) => p.sha256 !== pkg.sha256)]);
      setChosenPackage(pkg.sha256);
    } catch (err) {
      setUploadError(`${file.name}: ${(err as Error).message}`);
    } finally {
      setUploading(false);
      input.value = '';
    }
  };

  const current = deployments.find((d) => d.id === shown) ?? deployments[0];

  return (
    <section class="deploy" aria-labelledby="deploy-title">
      <div class="section-head">
        <h2 id="deploy-title">Deploy a model</h2>
      </div>
      <div class="deploy-form">
        <fieldset>
          <legend>Package</legend>
          {packagesError !== null && <p class="notice notice-error">{packagesError}</p>}
          <label class="choice">
            <span class="choice-name">{uploading ? 'Adding…' : 'Add a package file'}</span>
            <input
              type="file"
              accept=".whittle,.wpkg,application/octet-stream"
              data-testid="package-upload"
              disabled={uploading}
              onChange={(e) => void upload(e.currentTarget)}
            />
          </label>
          {uploadError !== null && (
            <p class="notice notice-error" data-testid="upload-error">
              {uploadError}
            </p>
          )}
          {packages.length === 0 ? (
            <p class="hint" data-testid="no-packages">
              No packages yet. Add a file above or use <code>whittle deploy PKG --device ID</code>.
            </p>
          ) : (
            packages.map((p) => (
              <label key={p.sha256} class="choice" data-testid={`package-${p.sha256.slice(0, 12)}`}>
                <input
                  type="radio"
                  name="package"
                  checked={chosenPackage === p.sha256}
                  onChange={() => setChosenPackage(p.sha256)}
                />
                <span class="choice-name">
                  {p.name ?? p.modelId} {p.modelVersion}
                </span>
                <span class="device-meta">
                  {p.modelId} · {formatMegabytes(p.bytes)} MB · {p.cpuFamily} · {p.sha256.slice(0, 12)}
                </span>
              </label>
            ))
          )}
        </fieldset>
        <fieldset>
          <legend>Devices</legend>
          <label class="choice">
            <input type="checkbox" data-testid="deploy-all" checked={all} onChange={() => setAll(!all)} />
            <span class="choice-name">All devices</span>
            <span class="device-meta">offline ones get it when they reconnect</span>
          </label>
          {devices.map((d) => (
            <label key={d.id} class="choice">
              <input
                type="checkbox"
                data-testid={`deploy-device-${d.id}`}
                disabled={all}
                checked={all || chosenDevices.has(d.id)}
                onChange={() => toggleDevice(d.id)}
              />
              <span class="choice-name">{d.info?.hostname ?? d.id}</span>
              <span class="device-meta">
                {d.id} · {d.online ? 'online' : 'offline'} · {d.info?.model.name ?? NO_VALUE}
              </span>
            </label>
          ))}
        </fieldset>
        <div class="deploy-actions">
          <label class="choice">
            <input type="checkbox" checked={rollback} onChange={() => setRollback(!rollback)} />
            <span>Allow an older version (rollback)</span>
          </label>
          <button type="button" data-testid="deploy-button" disabled={!ready} onClick={() => void deploy()}>
            {busy ? 'Deploying…' : 'Deploy'}
          </button>
          {error !== null && (
            <p class="notice notice-error" data-testid="deploy-error">
              {error}
            </p>
          )}
        </div>
      </div>
      {current && <DeploymentTable deployment={current} now={now} />}
      {deployments.length > 1 && (
        <p class="history">
          Earlier:{' '}
          {deployments.slice(0, 10).map((d) => (
            <button
              type="button"
              key={d.id}
              class={d.id === current?.id ? 'link link-current' : 'link'}
              onClick={() => setShown(d.id)}
            >
              {d.package.modelId} {d.package.modelVersion} ({formatAgo(d.createdAt, now)})
            </button>
          ))}
        </p>
      )}
    </section>
  );
}

function DeploymentTable({ deployment, now }: { deployment: DeploymentView; now: number }) {
  const committed = deployment.devices.filter((d) => d.phase === 'committed').length;
  return (
    <div class="deployment" data-testid="deployment" data-deployment-id={deployment.id}>
      <h3>
        {deployment.package.modelId} {deployment.package.modelVersion} ·{' '}
        <span class="device-meta">
          {deployment.id} · {formatAgo(deployment.createdAt, now)} · {committed} of{' '}
          {deployment.devices.length} committed{deployment.finished ? '' : ', in progress'}
        </span>
      </h3>
      <table class="devices">
        <thead>
          <tr>
            <th scope="col">Device</th>
            <th scope="col">Phase</th>
            <th scope="col">Reason</th>
            <th scope="col">Serving</th>
            <th scope="col">Updated</th>
          </tr>
        </thead>
        <tbody>
          {deployment.devices.map((d) => (
            <tr key={d.device}>
              <td>{d.device}</td>
              <td>
                <span
                  class={PHASE_CLASS[d.phase] ?? 'badge badge-pending'}
                  data-testid={`deployment-phase-${d.device}`}
                >
                  {d.phase}
                </span>
              </td>
              <td data-testid={`deployment-reason-${d.device}`}>
                {d.reason ? `${d.code ? `${d.code}: ` : ''}${d.reason}` : NO_VALUE}
              </td>
              <td class="figure" title={d.serving ?? undefined}>
                {d.serving === null ? NO_VALUE : d.serving === 'bundled' ? 'bundled' : d.serving.slice(0, 12)}
              </td>
              <td>{formatAgo(d.updatedAt, now)}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
