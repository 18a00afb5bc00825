// The device addresses `whittle device add` accepts:
//   ssh://user@host[:port]                     a device reachable over SSH (port 22 by default)
//   serial:///dev/ttyUSB0?baud=115200[&user=pi] a device's serial console (115200 baud by default)
import { TargetUrlError } from './errors.js';

export interface SshTarget {
  kind: 'ssh';
  username: string;
  host: string;
  port: number;
}

export interface SerialTarget {
  kind: 'serial';
  path: string;
  baudRate: number;
  /** Login user, when given in the address (?user=...). */
  username?: string;
}

export type DeviceTarget = SshTarget | SerialTarget;

/** Baud rates a Linux serial driver accepts (termios Bxxx constants). */
export const BAUD_RATES = [
  1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000,
  1500000, 2000000, 3000000,
] as const;

const USER_PATTERN = /^[a-z_][a-z0-9_.-]{0,31}$/i;

export function parseTarget(text: string): DeviceTarget {
  if (text.startsWith('ssh://')) return parseSsh(text);
  if (text.startsWith('serial://')) return parseSerial(text);
  throw new TargetUrlError(
    `expected ssh://user@host[:port] or serial:///dev/ttyX?baud=115200, got "${text}"`,
  );
}

function parseSsh(text: string): SshTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TargetUrlError(`"${text}" is not a valid ssh:// address; expected ssh://user@host[:port]`);
  }
  const username = decodeURIComponent(url.username);
  if (!username)
    throw new TargetUrlError(
      `"${text}" names no user; expected ssh://user@host[:port], e.g. ssh://pi@10.0.0.7`,
    );
  if (!USER_PATTERN.test(username))
    throw new TargetUrlError(`"${username}" in ${text} is not a valid user name`);
  if (url.password)
    throw new TargetUrlError(
      `put no password in the address (it would show in ps and the shell history); use --password-stdin`,
    );
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new TargetUrlError(`"${text}" names no host; expected ssh://user@host[:port]`);
  if ((url.pathname && url.pathname !== '/') || url.search || url.hash)
    throw new TargetUrlError(
      `"${text}": an ssh:// address has no path or query; expected ssh://user@host[:port]`,
    );
  const port = url.port ? Number(url.port) : 22;
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new TargetUrlError(`"${text}": port must be 1-65535`);
  return { kind: 'ssh', username, host, port };
}

function parseSerial(text: string): SerialTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TargetUrlError(
      `"${text}" is not a valid serial:// address; expected serial:///dev/ttyX?baud=115200`,
    );
  }
  const path = decodeURIComponent(url.pathname);
  // Usually under /dev; a pseudo-terminal's link (socat, tests) may live anywhere.
  if (url.host || !path.startsWith('/') || path.endsWith('/'))
    throw new TargetUrlError(
      `"${text}": expected an absolute device path with three slashes, e.g. serial:///dev/ttyUSB0?baud=115200`,
    );
  for (const key of url.searchParams.keys())
    if (key !== 'baud' && key !== 'user')
      throw new TargetUrlError(`"${text}": unknown option "${key}"; serial:// addresses take baud and user`);
  const baudText = url.searchParams.get('baud');
  const baudRate = baudText === null ? 115200 : Number(baudText);
  if (!(BAUD_RATES as readonly number[]).includes(baudRate))
    throw new TargetUrlError(
      `"${text}": baud must be one of ${BAUD_RATES.join(', ')}; got "${baudText ?? ''}"`,
    );
  const username = url.searchParams.get('user') ?? undefined;
  if (username !== undefined && !USER_PATTERN.test(username))
    throw new TargetUrlError(`"${username}" in ${text} is not a valid user name`);
  return { kind: 'serial', path, baudRate, ...(username ? { username } : {}) };
}
