// A latency-table request measured on this device (measureLatencyTable, agent/profile/latency-table.ts):
// the table's identity first, then each entry as it finishes, then the whole table. A resume table the
// manager holds for another grid (an older grid definition, another limit) is set aside, not refused:
// the request is what the user asked for now.
import { activeIsa, addonBuildHash, getThreads } from '../../native/index.js';
import {
  conditionsNow,
  defaultGrid,
  gridId,
  LATENCY_TABLE_VERSION,
  type LatencyGrid,
  type LatencyTable,
  measureLatencyTable,
  parseLatencyTable,
} from '../profile/latency-table.js';
import type { RequestMessage } from '../protocol/messages.js';
import type { ResponseBody } from './requests.js';

type LatencyRequest = Extract<RequestMessage, { kind: 'latency-table' }>;

/** The grid a request names, cut to its first `limit` points. */
export function requestedGrid(request: Pick<LatencyRequest, 'grid' | 'limit'>): LatencyGrid {
  const grid = defaultGrid(request.grid === 'quick');
  if (request.limit === undefined || request.limit >= grid.points.length) return grid;
  return { name: `${grid.name}:${request.limit}`, points: grid.points.slice(0, request.limit) };
}

export async function measureOnRequest(
  request: LatencyRequest,
  io: { signal: AbortSignal; send: (body: ResponseBody) => void },
): Promise<void> {
  const grid = requestedGrid(request);
  const threads = request.threads ?? getThreads();
  const id = gridId(grid);
  const buildHash = addonBuildHash();
  let resume: LatencyTable | undefined;
  if (request.resume !== undefined) {
    const table = parseLatencyTable(request.resume, { buildHash });
    if (table.grid_id === id && table.threads === threads) resume = table;
  }
  const before = conditionsNow();
  const start: LatencyTable = {
    table_version: LATENCY_TABLE_VERSION,
    build_hash: buildHash,
    isa: activeIsa(),
    threads,
    grid_id: id,
    complete: false,
    measured_at: Date.now(),
    conditions: { before, after: before },
    entries: resume?.entries ?? [],
  };
  io.send({ kind: 'latency-start', table: start, total: grid.points.length });
  const table = await measureLatencyTable({
    grid,
    threads,
    ...(resume ? { resume } : {}),
    signal: io.signal,
    onEntry: (entry, done, total) => io.send({ kind: 'latency-entry', entry, done, total }),
  });
  io.send({ kind: 'latency-table', table });
}
