// The renderer's one link to the core: GET /api/devices, then the /api/live WebSocket, reconnecting
// with backoff when either drops.
//
// Browsers hide the HTTP status of a refused WebSocket upgrade (the socket just closes), so every
// attempt starts with an authenticated GET: a 401 there means the token is wrong, and the link stops
// instead of retrying forever. The GET's body also fills the table before the socket's first snapshot.
import type { LiveMessage } from '../../electron/api/contract.js';
import { LIVE_PATH, routePath, TOKEN_SUBPROTOCOL_PREFIX } from '../../electron/api/routes.js';
import { decodeBody, decodeLiveMessage } from './live-message.js';

const DEVICES_PATH = routePath('devices', {});

/** Backoff between attempts, ms: doubles from the first to the last value, then stays there. */
const RETRY_FIRST_MS = 500;
const RETRY_MAX_MS = 10_000;

export type ConnectionState =
  | { kind: 'connecting' }
  | { kind: 'live' }
  /** `retryAt` is a Date.now() value; `attempt` counts failures since the link was last live. */
  | { kind: 'reconnecting'; attempt: number; retryAt: number; reason: string }
  | { kind: 'unauthorized'; reason: string };

export interface LiveConnectionHandlers {
  state(state: ConnectionState): void;
  message(message: LiveMessage): void;
  /** A message that failed to decode and was dropped; `reason` says which field and why. */
  malformed(reason: string): void;
}

export interface LiveConnection {
  close(): void;
}

/** RFC 7230 token characters: what a WebSocket subprotocol name (and so our token) may contain. */
const TOKEN_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,512}$/;

/** Reads `#token=...` from the page's fragment, where the core puts it so it never reaches a server log. */
export function tokenFromHash(hash: string): string | null {
  const token = new URLSearchParams(hash.replace(/^#/, '')).get('token');
  return token === null || token === '' ? null : token;
}

export function openLiveConnection(
  page: { protocol: string; host: string },
  token: string | null,
  handlers: LiveConnectionHandlers,
): LiveConnection {
  let closed = false;
  let failures = 0;
  let socket: WebSocket | null = null;
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  let request: AbortController | null = null;

  const stopWith = (reason: string): void => {
    closed = true;
    handlers.state({ kind: 'unauthorized', reason });
  };

  const retry = (reason: string): void => {
    if (closed) return;
    failures += 1;
    const base = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** (failures - 1));
    // Jitter spreads the reconnects of many windows after a core restart.
    const delay = Math.round(base * (0.8 + 0.4 * Math.random()));
    handlers.state({ kind: 'reconnecting', attempt: failures, retryAt: Date.now() + delay, reason });
    retryTimer = setTimeout(() => void attempt(), delay);
  };

  const openSocket = (validToken: string): void => {
    const scheme = page.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${page.host}${LIVE_PATH}`, [TOKEN_SUBPROTOCOL_PREFIX + validToken]);
    socket = ws;
    ws.onopen = () => {
      failures = 0;
      handlers.state({ kind: 'live' });
    };
    ws.onmessage = (event: MessageEvent) => {
      const decoded = decodeLiveMessage(event.data);
      if (decoded.ok) handlers.message(decoded.value);
      else handlers.malformed(decoded.reason);
    };
    // An error event is always followed by close, which carries what there is to say.
    ws.onclose = (event: CloseEvent) => {
      if (socket !== ws) return;
      socket = null;
      retry(event.code === 1000 ? 'the core closed the connection' : `connection lost (code ${event.code})`);
    };
  };

  const attempt = async (): Promise<void> => {
    if (closed) return;
    if (token === null) return stopWith('The page address has no #token=…; open the link the core printed.');
    if (!TOKEN_PATTERN.test(token)) return stopWith('The token in the page address is malformed.');
    request = new AbortController();
    let response: Response;
    try {
      response = await fetch(DEVICES_PATH, {
        headers: { Authorization: `Bearer ${token}` },
        cache: 'no-store',
        signal: request.signal,
      });
    } catch {
      return retry('the core is not answering');
    } finally {
      request = null;
    }
    if (closed) return;
    if (response.status === 401 || response.status === 403) {
      return stopWith('The core refused the token; it changes at every launch, so open the link it printed.');
    }
    if (!response.ok) return retry(`GET ${DEVICES_PATH} answered HTTP ${response.status}`);
    let body: unknown;
    try {
      body = await response.json();
    } catch {
      return retry(`GET ${DEVICES_PATH} answered with a body that is not JSON`);
    }
    if (closed) return;
    const decoded = decodeBody('DevicesResponse', body);
    if (decoded.ok) handlers.message({ type: 'snapshot', devices: decoded.value.devices });
    else handlers.malformed(decoded.reason);
    openSocket(token);
  };

  handlers.state({ kind: 'connecting' });
  void attempt();

  return {
    close() {
      closed = true;
      clearTimeout(retryTimer);
      request?.abort();
      const ws = socket;
      socket = null;
      ws?.close(1000, 'page closed');
    },
  };
}
