// The fleet table: one row per device with its live figures. Rows carry stable data-testid attributes
// (device-row-<id>, device-status-<id>, device-fps-<id>, device-accuracy-<id> with its -window- and -running-
// figures, device-last-seen-<id>) for the end-to-end tests.
import { formatAccuracyPercent, formatCount } from '../../electron/api/accuracy-figures.js';
import type { DeviceAccuracy, DeviceView } from '../../electron/api/contract.js';
import {
  formatAgo,
  formatConfidence,
  formatFps,
  formatMegabytes,
  formatMs,
  formatPercent,
  NO_VALUE,
} from './format.js';

export function DeviceTable({ devices, now }: { devices: readonly DeviceView[]; now: number }) {
  return (
    <table class="devices">
      <thead>
        <tr>
          <th scope="col">Device</th>
          <th scope="col">Status</th>
          <th scope="col" class="num">
            FPS
          </th>
          <th scope="col" class="num" title="Inference latency per frame, 50th / 95th percentile">
            Latency p50 / p95 ms
          </th>
          <th scope="col" class="num" title="Agent process, percent of one core">
            CPU %
          </th>
          <th scope="col" class="num" title="Agent process resident memory">
            RSS MB
          </th>
          <th scope="col">Model</th>
          <th scope="col">Last prediction</th>
          <th
            scope="col"
            class="num"
            title="Frames of a labelled camera the model classified right: over the last seconds, and running since its model and camera started. A camera without labels has none."
          >
            Accuracy
          </th>
          <th scope="col">Last seen</th>
        </tr>
      </thead>
      <tbody>
        {devices.map((device) => (
          <DeviceRow key={device.id} device={device} now={now} />
        ))}
      </tbody>
    </table>
  );
}

function DeviceRow({ device, now }: { device: DeviceView; now: number }) {
  const { id, info, stats, online, lastSeen, accuracy } = device;
  const details = info
    ? `${info.cpuModel} · ${info.cpus} CPUs · ${formatMegabytes(info.memTotalBytes)} MB RAM · ` +
      `${info.platform} · Node ${info.nodeVersion} · agent ${info.agentVersion} · camera ${info.camera}`
    : 'The device has not described itself yet.';
  return (
    <tr data-testid={`device-row-${id}`} data-seq={stats?.seq} class={online ? 'online' : 'offline'}>
      <td title={details}>
        <div class="device-name">{info?.hostname ?? id}</div>
        <div class="device-meta">
          {id}
          {info ? ` · ${info.arch}${info.isa ? ` · ${info.isa}` : ''}` : ''}
        </div>
      </td>
      <td>
        <span
          class={`badge ${online ? 'badge-online' : 'badge-offline'}`}
          data-testid={`device-status-${id}`}
        >
          {online ? 'online' : 'offline'}
        </span>
      </td>
      <td class="num figure" data-testid={`device-fps-${id}`}>
        {stats ? formatFps(stats.fps) : NO_VALUE}
      </td>
      <td class="num figure">
        {stats ? `${formatMs(stats.latencyMs.p50)} / ${formatMs(stats.latencyMs.p95)}` : NO_VALUE}
      </td>
      <td class="num figure">{stats ? formatPercent(stats.cpuPercent) : NO_VALUE}</td>
      <td
        class="num figure"
        title={stats && stats.rssBytes === undefined ? 'memory unknown (emulated device)' : undefined}
      >
        {stats?.rssBytes !== undefined ? formatMegabytes(stats.rssBytes) : NO_VALUE}
      </td>
      <td title={info ? `model id ${info.model.id}` : undefined}>{info?.model.name ?? NO_VALUE}</td>
      <td class="figure">
        {stats?.prediction ? (
          <>
            <span class="prediction-label">{stats.prediction.label}</span>{' '}
            <span class="confidence">{formatConfidence(stats.prediction.confidence)}</span>
          </>
        ) : (
          NO_VALUE
        )}
      </td>
      <td class="num figure" data-testid={`device-accuracy-${id}`}>
        {accuracy ? <AccuracyFigures id={id} accuracy={accuracy} /> : NO_VALUE}
      </td>
      <td data-testid={`device-last-seen-${id}`}>
        {lastSeen === null ? (
          'never'
        ) : (
          <time dateTime={new Date(lastSeen).toISOString()} title={new Date(lastSeen).toLocaleString()}>
            {formatAgo(lastSeen, now)}
          </time>
        )}
      </td>
    </tr>
  );
}

/** The windowed figure first (what the model does now), the running one under it; each says what it is. */
function AccuracyFigures({ id, accuracy }: { id: string; accuracy: DeviceAccuracy }) {
  const { window, running } = accuracy;
  return (
    <>
      <div title={`${formatCount(window.correct)} of ${formatCount(window.frames)} labelled frames right`}>
        <span class="device-meta">last {window.seconds} s </span>
        <span data-testid={`device-accuracy-window-${id}`}>{formatAccuracyPercent(window)}</span>
      </div>
      <div
        class="device-meta"
        title={`${formatCount(running.correct)} of ${formatCount(running.frames)} labelled frames right since ${new Date(running.since).toLocaleString()}`}
      >
        running <span data-testid={`device-accuracy-running-${id}`}>{formatAccuracyPercent(running)}</span> of{' '}
        {formatCount(running.frames)}
      </div>
    </>
  );
}
