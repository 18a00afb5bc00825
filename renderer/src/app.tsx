// The page: header with the link's state, the device table (or why there is none), the camera of one
// device, the fleet deploy view, and a footer.
import { useEffect, useState } from 'preact/hooks';

import type { DeploymentView } from '../../electron/api/contract.js';
import { CameraSnapshot } from './camera-snapshot.js';
import { ConnectionIndicator } from './connection-indicator.js';
import { fetchDeployments } from './core-api.js';
import { applyLiveMessage, type DeviceList, emptyDeviceList, sortedDevices } from './device-list.js';
import { DeviceTable } from './device-table.js';
import { FleetDeploy } from './fleet-deploy.js';
import { type ConnectionState, openLiveConnection, tokenFromHash } from './live-connection.js';

/** Date.now(), refreshed every `periodMs`, so "N s ago" and retry countdowns move between messages. */
function useNow(periodMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), periodMs);
    return () => clearInterval(timer);
  }, [periodMs]);
  return now;
}

export function App() {
  const [connection, setConnection] = useState<ConnectionState>({ kind: 'connecting' });
  const [devices, setDevices] = useState<DeviceList>(emptyDeviceList);
  const [malformed, setMalformed] = useState(0);
  /** Deployments by id; the live link updates them as device reports arrive. */
  const [deployments, setDeployments] = useState<ReadonlyMap<string, DeploymentView>>(new Map());
  const now = useNow(1000);
  const token = tokenFromHash(location.hash);
  const upsertDeployment = (deployment: DeploymentView): void =>
    setDeployments((map) => new Map(map).set(deployment.id, deployment));

  useEffect(() => {
    const link = openLiveConnection(location, tokenFromHash(location.hash), {
      state: (state) => {
        setConnection(state);
        // Without a valid token the page must not keep showing what an earlier token revealed.
        if (state.kind === 'unauthorized') setDevices(emptyDeviceList);
      },
      message: (message) => {
        if (message.type === 'deployment') upsertDeployment(message.deployment);
        else setDevices((list) => applyLiveMessage(list, message));
      },
      malformed: (reason) => {
        console.warn(`whittle: dropped a malformed message from the core: ${reason}`);
        setMalformed((count) => count + 1);
      },
    });
    return () => link.close();
  }, []);

  // Each time the link becomes live, the history is fetched again: updates missed while it was down.
  const live = connection.kind === 'live';
  useEffect(() => {
    if (!live || token === null) return;
    fetchDeployments(token).then(
      (body) => setDeployments(new Map(body.deployments.map((d) => [d.id, d]))),
      (err: Error) => console.warn(`whittle: cannot load deployments: ${err.message}`),
    );
  }, [live, token]);

  const rows = sortedDevices(devices);
  const deploymentList = [...deployments.values()].sort((a, b) => b.createdAt - a.createdAt);
  const onlineCount = rows.filter((device) => device.online).length;

  return (
    <>
      <header class="top">
        <h1>Whittle</h1>
        <ConnectionIndicator state={connection} now={now} />
      </header>
      <main>
        <section
          class={connection.kind === 'live' ? 'fleet' : 'fleet fleet-stale'}
          aria-labelledby="fleet-title"
        >
          <div class="section-head">
            <h2 id="fleet-title">Devices</h2>
            {rows.length > 0 && (
              <span class="summary">
                {rows.length} {rows.length === 1 ? 'device' : 'devices'}, {onlineCount} online
                {connection.kind === 'live' ? '' : ' (last known state, not live)'}
              </span>
            )}
          </div>
          {connection.kind === 'unauthorized' ? (
            <p class="notice notice-error" data-testid="unauthorized-notice">
              {connection.reason}
            </p>
          ) : rows.length === 0 ? (
            <p class="notice" data-testid="empty-state">
              {connection.kind === 'live'
                ? 'No devices yet. Connect one, or start an agent on this machine, and it appears here.'
                : 'Waiting for the core…'}
            </p>
          ) : (
            <DeviceTable devices={rows} now={now} />
          )}
        </section>
        {token !== null && connection.kind !== 'unauthorized' && (
          <>
            <CameraSnapshot token={token} devices={rows} now={now} />
            <FleetDeploy
              token={token}
              devices={rows}
              deployments={deploymentList}
              now={now}
              onDeployment={upsertDeployment}
            />
          </>
        )}
      </main>
      {malformed > 0 && (
        <footer class="bottom" data-testid="malformed-count">
          Dropped {malformed} malformed {malformed === 1 ? 'message' : 'messages'} from the core (details in
          the console).
        </footer>
      )}
    </>
  );
}
