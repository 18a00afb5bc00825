// The renderer's requests to the core besides the live link: packages, deployments and camera snapshots,
// built from the route table (electron/api/routes.ts). Every answer is decoded (live-message.ts) before the
// page uses it; a failure is an ApiFailure with the core's own sentence when it gave one.
import type { DeployRequest } from '../../electron/api/contract.js';
import {
  routeCall,
  type RouteName,
  type RouteParams,
  type RouteResponse,
} from '../../electron/api/routes.js';
import { WhittleError } from '../../native/whittle-error.js';
import { decodeBody } from './live-message.js';

/** A request the core refused (`code` is its error code), or an answer the page cannot read. */
export class ApiFailure extends WhittleError {
  override readonly name = 'ApiFailure';
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

async function call<N extends RouteName>(
  token: string,
  name: N,
  params: RouteParams<N>,
  body?: string | ArrayBuffer,
): Promise<RouteResponse<N>> {
  const init = routeCall(name, params, body);
  const { path } = init;
  const response = await fetch(path, {
    method: init.method,
    headers: {
      Authorization: `Bearer ${token}`,
      ...(init.contentType !== undefined ? { 'Content-Type': init.contentType } : {}),
    },
    cache: 'no-store',
    // The page sends JSON text or a file's ArrayBuffer, never a Node Uint8Array.
    ...(init.body !== undefined ? { body: init.body as string | ArrayBuffer } : {}),
  });
  let json: unknown;
  try {
    json = await response.json();
  } catch {
    throw new ApiFailure(
      `${path} answered HTTP ${response.status} with a body that is not JSON`,
      response.status,
      'bad-answer',
    );
  }
  if (!response.ok) {
    const refusal = decodeBody('ApiError', json);
    throw new ApiFailure(
      refusal.ok ? refusal.value.error : `${path}: HTTP ${response.status}`,
      response.status,
      (refusal.ok ? refusal.value.code : undefined) ?? `http-${response.status}`,
    );
  }
  const decoded = decodeBody(init.response, json);
  if (!decoded.ok)
    throw new ApiFailure(`${path}: unexpected answer: ${decoded.reason}`, response.status, 'bad-answer');
  return decoded.value as RouteResponse<N>;
}

export const fetchPackages = (token: string) => call(token, 'packages', {});

/** Adds a package file to the core; the core checks its signature (the manager's key) and reads it strictly
 * before it keeps it, and answers with its reason otherwise. */
export const uploadPackage = (token: string, bytes: ArrayBuffer) => call(token, 'addPackage', {}, bytes);

export const fetchDeployments = (token: string) => call(token, 'deployments', {});

export const startDeployment = (token: string, request: DeployRequest) =>
  call(token, 'startDeployment', {}, JSON.stringify(request));

/** The device's newest camera snapshot (its `snapshot` is null when it has sent none yet). */
export const fetchSnapshot = (token: string, device: string) => call(token, 'snapshot', { id: device });
