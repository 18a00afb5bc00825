// The route table of the manager's HTTP API: for each route its method, path, request body and answer, the
// bodies named by their schema in contract.ts. The core serves it (electron/core/http-api.ts: one handler
// per route, the compiler checks none is missing), the CLI (electron/commands/manager-client.ts) and the
// renderer (renderer/src/core-api.ts) call it; no route string is written anywhere else.
//
// This file holds no zod at run time (only type imports of contract.ts), so the renderer bundles it as is.
import type { ContractBody, ContractBodyName } from './contract.js';

/** At most this many bytes in a POST /api/packages body. */
export const MAX_PACKAGE_BYTES = 64 * 1024 * 1024;
/** At most this many bytes in any JSON request body. */
export const MAX_JSON_BODY_BYTES = 64 * 1024;

/** What a request carries: nothing, a JSON body decoded with a contract schema (`what` names it in the
 * refusal), or raw bytes of one content type. */
export type RequestSpec =
  | { kind: 'none' }
  | { kind: 'json'; body: ContractBodyName; what: string; maxBytes: number }
  | { kind: 'bytes'; contentType: 'application/octet-stream'; maxBytes: number };

export interface RouteSpec {
  method: 'GET' | 'POST';
  /** Absolute path; a `:name` segment is an id matching ROUTE_PARAM_PATTERN. */
  path: string;
  request: RequestSpec;
  /** The body of a success answer (any 2xx); a refusal's body is an ApiError. */
  response: ContractBodyName;
}

/** Every route's path starts so, and every path that does needs the token; other paths are the UI's files. */
export const API_PREFIX = '/api/';

const NONE = { kind: 'none' } as const;

export const ROUTES = {
  health: { method: 'GET', path: '/api/health', request: NONE, response: 'HealthResponse' },
  devices: { method: 'GET', path: '/api/devices', request: NONE, response: 'DevicesResponse' },
  /** 404 for an unknown device; `snapshot: null` before its first picture. */
  snapshot: {
    method: 'GET',
    path: '/api/devices/:id/snapshot',
    request: NONE,
    response: 'SnapshotResponse',
  },
  /** 404 (no-profile) until the device has sent one. */
  deviceProfile: {
    method: 'GET',
    path: '/api/devices/:id/profile',
    request: NONE,
    response: 'DeviceProfileResponse',
  },
  /** Asks the device for its profile now and stores it: 409 when it is offline, 504 when it does not
   * answer (an agent older than profile requests), 502 when its profile is refused. */
  refreshProfile: {
    method: 'POST',
    path: '/api/devices/:id/profile',
    request: NONE,
    response: 'DeviceProfileResponse',
  },
  latencyTable: {
    method: 'GET',
    path: '/api/devices/:id/latency-table',
    request: NONE,
    response: 'LatencyTablesResponse',
  },
  /** 202: the device measures (resuming the stored partial table of its build); follow with GET. */
  measureLatencyTable: {
    method: 'POST',
    path: '/api/devices/:id/latency-table',
    request: {
      kind: 'json',
      body: 'MeasureRequest',
      what: 'measurement request',
      maxBytes: MAX_JSON_BODY_BYTES,
    },
    response: 'LatencyTablesResponse',
  },
  /** The device times packages the manager holds, downloaded and verified as a deployment's, with its camera
   * loop paused; answers when it has (200). 404 for an unknown device or package, 409 offline or busy, 422
   * when the device refuses a package (its code: too-large, hash-mismatch, bad-signature, bad-model, ...),
   * 504 when it does not answer (an agent older than package measurements). */
  measurePackages: {
    method: 'POST',
    path: '/api/devices/:id/measure-packages',
    request: {
      kind: 'json',
      body: 'MeasurePackagesRequest',
      what: 'package measurement request',
      maxBytes: MAX_JSON_BODY_BYTES,
    },
    response: 'MeasurePackagesResponse',
  },
  packages: { method: 'GET', path: '/api/packages', request: NONE, response: 'PackagesResponse' },
  /** 201 with the package (200 when it was already known), or 422 with the package reader's code. */
  addPackage: {
    method: 'POST',
    path: '/api/packages',
    request: { kind: 'bytes', contentType: 'application/octet-stream', maxBytes: MAX_PACKAGE_BYTES },
    response: 'PackageView',
  },
  deployments: { method: 'GET', path: '/api/deployments', request: NONE, response: 'DeploymentsResponse' },
  /** 201 with the new deployment. */
  startDeployment: {
    method: 'POST',
    path: '/api/deployments',
    request: {
      kind: 'json',
      body: 'DeployRequest',
      what: 'deployment request',
      maxBytes: MAX_JSON_BODY_BYTES,
    },
    response: 'DeploymentView',
  },
  deployment: { method: 'GET', path: '/api/deployments/:id', request: NONE, response: 'DeploymentView' },
  deploymentEvents: {
    method: 'GET',
    path: '/api/deployments/:id/events',
    request: NONE,
    response: 'DeploymentEventsResponse',
  },
} as const satisfies Record<string, RouteSpec>;

export type RouteName = keyof typeof ROUTES;

/** The WebSocket of live changes: every message is a LiveMessage (contract.ts). */
export const LIVE_PATH = '/api/live';
/** The token travels as the WebSocket subprotocol `whittle-token.<token>`. */
export const TOKEN_SUBPROTOCOL_PREFIX = 'whittle-token.';

/** What a `:name` path segment may hold: the ids of devices and deployments. */
export const ROUTE_PARAM_PATTERN = '[A-Za-z0-9._-]{1,64}';

type ParamNames<P extends string> = P extends `${string}:${infer Name}/${infer Rest}`
  ? Name | ParamNames<`/${Rest}`>
  : P extends `${string}:${infer Name}`
    ? Name
    : never;

/** The path parameters of a route, by name: `{ id: string }` for /api/deployments/:id. */
export type RouteParams<N extends RouteName> = Record<ParamNames<(typeof ROUTES)[N]['path']>, string>;

type RequestOf<R extends RequestSpec> = R extends { kind: 'json'; body: infer B extends ContractBodyName }
  ? ContractBody<B>
  : R extends { kind: 'bytes' }
    ? Uint8Array
    : undefined;

/** The decoded request body of a route (undefined for none). */
export type RouteRequest<N extends RouteName> = RequestOf<(typeof ROUTES)[N]['request']>;
/** The decoded body of a route's success answer. */
export type RouteResponse<N extends RouteName> = ContractBody<(typeof ROUTES)[N]['response']>;

/** The path of a route with its parameters filled in (percent-encoded). */
export function routePath<N extends RouteName>(name: N, params: RouteParams<N>): string {
  const values = params as Record<string, string>;
  return ROUTES[name].path.replace(/:([A-Za-z]+)/g, (_, key: string) =>
    encodeURIComponent(values[key] ?? ''),
  );
}

/** What a client sends for a route, and the schema its answer decodes with. */
export interface RouteCall {
  /** The path with its parameters filled in (percent-encoded). */
  path: string;
  method: RouteSpec['method'];
  contentType: string | undefined;
  /** The body in its wire form; undefined for a route that takes none. */
  body: string | Uint8Array | ArrayBuffer | undefined;
  response: ContractBodyName;
}

/** The request a client makes for a route; `body` is already in its wire form (JSON text or bytes). */
export function routeCall<N extends RouteName>(
  name: N,
  params: RouteParams<N>,
  body?: string | Uint8Array | ArrayBuffer,
): RouteCall {
  const { method, request, response } = ROUTES[name] as RouteSpec;
  const contentType =
    request.kind === 'json' ? 'application/json' : request.kind === 'bytes' ? request.contentType : undefined;
  return {
    path: routePath(name, params),
    method,
    contentType,
    body: request.kind === 'none' ? undefined : body,
    response,
  };
}

const MATCHERS = (Object.keys(ROUTES) as RouteName[]).map((name) => {
  const { path, method } = ROUTES[name] as RouteSpec;
  const keys: string[] = [];
  const source = path.replace(/:([A-Za-z]+)/g, (_, key: string) => {
    keys.push(key);
    return `(${ROUTE_PARAM_PATTERN})`;
  });
  return { name, method, keys, pattern: new RegExp(`^${source}$`) };
});

export type RouteMatch =
  | { kind: 'route'; name: RouteName; params: Record<string, string> }
  /** The path is a route's, the method is not. */
  | { kind: 'wrong-method' }
  | { kind: 'no-route' };

/** The route a request is for. Path parameters are matched raw (ids need no decoding). */
export function matchRoute(method: string, pathname: string): RouteMatch {
  let pathKnown = false;
  for (const matcher of MATCHERS) {
    const found = matcher.pattern.exec(pathname);
    if (found === null) continue;
    pathKnown = true;
    if (matcher.method !== method) continue;
    const params: Record<string, string> = {};
    matcher.keys.forEach((key, i) => (params[key] = found[i + 1]!));
    return { kind: 'route', name: matcher.name, params };
  }
  return pathKnown ? { kind: 'wrong-method' } : { kind: 'no-route' };
}
