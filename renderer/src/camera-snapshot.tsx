// The newest camera picture of one device with the prediction its model made on it, fetched every few
// seconds while shown (agents send one every few seconds; the core keeps only the newest). Stable
// data-testid attributes: camera-device (the chooser), camera-image, camera-prediction, camera-accuracy (a
// labelled camera only), camera-empty.
import { useEffect, useState } from 'preact/hooks';

import { formatAccuracy } from '../../electron/api/accuracy-figures.js';
import type { DeviceView, SnapshotResponse } from '../../electron/api/contract.js';
import { fetchSnapshot } from './core-api.js';
import { formatAgo, formatConfidence } from './format.js';
import { usePolling } from './polling.js';

const REFRESH_MS = 2000;

export function CameraSnapshot({
  token,
  devices,
  now,
}: {
  token: string;
  devices: readonly DeviceView[];
  now: number;
}) {
  const [chosen, setChosen] = useState<string | null>(null);
  const [snapshot, setSnapshot] = useState<SnapshotResponse | null>(null);
  const [error, setError] = useState<string | null>(null);
  // Until the user picks one: the first online device, else the first.
  const device = chosen ?? (devices.find((d) => d.online) ?? devices[0])?.id ?? null;

  // Another device's picture is never shown under this one's name.
  useEffect(() => {
    setSnapshot(null);
  }, [token, device]);
  usePolling(
    device === null ? null : () => fetchSnapshot(token, device),
    (s) => {
      setSnapshot(s);
      setError(null);
    },
    setError,
    REFRESH_MS,
    [token, device],
  );

  if (devices.length === 0) return null;
  const shot = snapshot?.device === device ? snapshot.snapshot : null;
  const accuracy = devices.find((d) => d.id === device)?.accuracy;
  return (
    <section class="camera" aria-labelledby="camera-title">
      <div class="section-head">
        <h2 id="camera-title">Camera</h2>
        <select
          data-testid="camera-device"
          value={device ?? ''}
          onChange={(event) => setChosen((event.target as HTMLSelectElement).value)}
        >
          {devices.map((d) => (
            <option key={d.id} value={d.id}>
              {d.info?.hostname ?? d.id} ({d.id})
            </option>
          ))}
        </select>
      </div>
      {error !== null && <p class="notice notice-error">{error}</p>}
      {shot ? (
        <figure class="snapshot">
          <img
            data-testid="camera-image"
            src={`data:image/jpeg;base64,${shot.jpeg}`}
            alt={`camera of ${device ?? ''}`}
          />
          <figcaption data-testid="camera-prediction">
            {shot.prediction ? (
              <>
                <span class="prediction-label">{shot.prediction.label}</span>{' '}
                <span class="confidence">{formatConfidence(shot.prediction.confidence)}</span>
              </>
            ) : (
              'no prediction yet'
            )}
            {shot.trueLabel !== undefined && <span class="device-meta"> · truth: {shot.trueLabel}</span>}
            <span class="device-meta"> · {formatAgo(shot.ts, now)}</span>
            {accuracy && (
              <div class="device-meta" data-testid="camera-accuracy">
                accuracy {formatAccuracy(accuracy.window)} in the last {accuracy.window.seconds} s; running{' '}
                {formatAccuracy(accuracy.running)}
              </div>
            )}
          </figcaption>
        </figure>
      ) : (
        <p class="hint" data-testid="camera-empty">
          No snapshot from this device yet (agents send one every few seconds when their camera runs).
        </p>
      )}
    </section>
  );
}
