// The renderer's requests to the core besides the live link: packages, deployments and camera snapshots.
// Every answer is decoded (live-message.ts) before the page uses it; a failure is an ApiFailure with the
// core's own sentence when it gave one.
import type {
  DeploymentsResponse,
  DeploymentView,
  DeployRequest,
  PackagesResponse,
  PackageView,
  SnapshotResponse,
} from '../../electron/api/contract.js';
import {
  type Decoded,
  decodeDeploymentsResponse,
  decodeDeploymentView,
  decodePackagesResponse,
  decodePackageView,
  decodeSnapshotResponse,
} from './live-message.js';

export class ApiFailure extends Error {
  override readonly name = 'ApiFailure';
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

async function call<T>(
  token: string,
  path: string,
  decode: (json: unknown) => Decoded<T>,
  init: { method?: string; body?: string | ArrayBuffer } = {},
): Promise<T> {
  const response = await fetch(path, {
    method: init.method ?? 'GET',
    headers: {
      Authorization: `Bearer ${token}`,
      ...(init.body !== undefined
        ? { 'Content-Type': typeof init.body === 'string' ? 'application/json' : 'application/octet-stream' }
        : {}),
    },
    cache: 'no-store',
    ...(init.body !== undefined ? { body: init.body } : {}),
  });
  let json: unknown;
  try {
    json = await response.json();
  } catch {
    throw new ApiFailure(
      `${path} answered HTTP ${response.status} with a body that is not JSON`,
      response.status,
    );
  }
  if (!response.ok) {
    const error = (json as { error?: unknown } | null)?.error;
    throw new ApiFailure(
      typeof error === 'string' ? error : `${path}: HTTP ${response.status}`,
      response.status,
    );
  }
  const decoded = decode(json);
  if (!decoded.ok) throw new ApiFailure(`${path}: unexpected answer: ${decoded.reason}`, response.status);
  return decoded.value;
}

export const fetchPackages = (token: string): Promise<PackagesResponse> =>
  call(token, '/api/packages', decodePackagesResponse);

/** Adds a package file to the core; the core checks its signature (the manager's key) and reads it strictly
 * before it keeps it, and answers with its reason otherwise. */
export const uploadPackage = (token: string, bytes: ArrayBuffer): Promise<PackageView> =>
  call(token, '/api/packages', decodePackageView, { method: 'POST', body: bytes });

export const fetchDeployments = (token: string): Promise<DeploymentsResponse> =>
  call(token, '/api/deployments', decodeDeploymentsResponse);

export const startDeployment = (token: string, request: DeployRequest): Promise<DeploymentView> =>
  call(token, '/api/deployments', decodeDeploymentView, { method: 'POST', body: JSON.stringify(request) });

/** The device's newest camera snapshot (its `snapshot` is null when it has sent none yet). */
export const fetchSnapshot = (token: string, device: string): Promise<SnapshotResponse> =>
  call(token, `/api/devices/${encodeURIComponent(device)}/snapshot`, decodeSnapshotResponse);
