// A device's serial console (serialport, prebuilt bindings): list ports, log in at a chosen baud rate,
// and read the device's identity and network addresses, so provisioning can continue over SSH.
//
// The console is driven like a person would: wake it with Enter, answer "login:" and "Password:", then
// run one command whose output sits between two markers. The markers are typed with an empty quote pair
// inside them ("@@WHITTLE-BEGIN""") so the terminal's echo of the command line never matches.
import { SerialPort } from 'serialport';

import { SerialConsoleError } from './errors.js';

export interface SerialPortInfo {
  path: string;
  manufacturer?: string;
  serialNumber?: string;
  vendorId?: string;
  productId?: string;
}

/** The ports udev knows; needs `udevadm` (Debian package udev). */
export async function listSerialPorts(): Promise<SerialPortInfo[]> {
  try {
    const ports = await SerialPort.list();
    return ports.map((p) => ({
      path: p.path,
      ...(p.manufacturer ? { manufacturer: p.manufacturer } : {}),
      ...(p.serialNumber ? { serialNumber: p.serialNumber } : {}),
      ...(p.vendorId ? { vendorId: p.vendorId } : {}),
      ...(p.productId ? { productId: p.productId } : {}),
    }));
  } catch (err) {
    const message = (err as Error).message;
    if (/ENOENT|udevadm/.test(message))
      throw new SerialConsoleError(
        `cannot list serial ports: ${message}. Listing needs udevadm (apt-get install udev)`,
      );
    throw new SerialConsoleError(`cannot list serial ports: ${message}`);
  }
}

export interface NetworkAddress {
  iface: string;
  address: string;
  prefixLength: number;
}

export interface SerialIdentity {
  hostname: string;
  /** IPv4 addresses other than loopback, in the order `ip` printed them. */
  addresses: NetworkAddress[];
}

export interface SerialLoginOptions {
  path: string;
  baudRate: number;
  /** Needed when the console asks for a login; a console already at a shell prompt needs none. */
  username?: string;
  password?: string;
  /** How long each step (prompt, password, command) may take. */
  stepTimeoutMs?: number;
  progress?: (line: string) => void;
  signal?: AbortSignal;
}

const BEGIN = '@@WHITTLE-BEGIN';
const END = '@@WHITTLE-END';
const IDENTITY_COMMAND = `echo ${BEGIN}""; hostname; ip -4 -o addr show 2>/dev/null; echo ${END}""`;

/** Parses `ip -4 -o addr show` lines: "2: eth0    inet 10.0.0.7/24 brd ... scope global eth0". */
export function parseIpAddr(text: string): NetworkAddress[] {
  const out: NetworkAddress[] = [];
  for (const line of text.split('\n')) {
    const m = /^\d+:\s+(\S+)\s+inet\s+(\d{1,3}(?:\.\d{1,3}){3})\/(\d{1,2})/.exec(line.trim());
    if (m && !m[2]!.startsWith('127.'))
      out.push({ iface: m[1]!, address: m[2]!, prefixLength: Number(m[3]) });
  }
  return out;
}

/** The share of bytes that are neither printable ASCII nor whitespace: high when the baud rate is wrong. */
function garbageShare(text: string): number {
  if (!text.length) return 0;
  let bad = 0;
  for (const ch of text) {
    const c = ch.charCodeAt(0);
    if (!(c === 9 || c === 10 || c === 13 || (c >= 32 && c < 127))) bad++;
  }
  return bad / text.length;
}

class ConsoleReader {
  private buffer = '';
  private waiters: (() => void)[] = [];
  constructor(private readonly port: SerialPort) {
    port.on('data', (chunk: Buffer) => {
      this.buffer += chunk.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
  }

  get received(): string {
    return this.buffer;
  }

  write(text: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.port.write(text, 'latin1', (err) =>
        err
          ? reject(
              new SerialConsoleError(
                `cannot write to ${this.port.path}: ${err.message} (the device end closed?)`,
              ),
            )
          : this.port.drain(() => resolve()),
      );
    });
  }

  /** Resolves once no data arrived for `quietMs`, or after `maxMs`. */
  async settle(quietMs: number, maxMs: number): Promise<void> {
    const deadline = Date.now() + maxMs;
    let seen = this.buffer.length;
    for (;;) {
      await new Promise((r) => setTimeout(r, quietMs));
      if (this.buffer.length === seen || Date.now() >= deadline) return;
      seen = this.buffer.length;
    }
  }

  /** Waits until `pattern` matches the text received after `from`; resolves with the match and its end. */
  async expect(
    pattern: RegExp,
    from: number,
    timeoutMs: number,
    signal?: AbortSignal,
    nudge?: { everyMs: number; send: string },
  ): Promise<{ match: RegExpExecArray; end: number } | null> {
    const deadline = Date.now() + timeoutMs;
    let nextNudge = nudge ? Date.now() + nudge.everyMs : Infinity;
    for (;;) {
      const tail = this.buffer.slice(from);
      const match = pattern.exec(tail);
      if (match) return { match, end: from + match.index + match[0].length };
      const now = Date.now();
      if (now >= deadline || signal?.aborted) return null;
      if (nudge && now >= nextNudge) {
        nextNudge = now + nudge.everyMs;
        await this.write(nudge.send);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(deadline, nextNudge) - now);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

function openPort(path: string, baudRate: number): Promise<SerialPort> {
  return new Promise((resolve, reject) => {
    const port = new SerialPort({ path, baudRate, autoOpen: false });
    port.open((err) => {
      if (!err) return resolve(port);
      const m = err.message;
      if (/ENOENT|No such file/i.test(m))
        reject(
          new SerialConsoleError(
            `cannot open ${path}: no such port; \`whittle serial list\` shows the ports`,
          ),
        );
      else if (/EACCES|Permission denied/i.test(m))
        reject(
          new SerialConsoleError(
            `cannot open ${path}: permission denied; add your user to the group that owns it (usually dialout) and log in again`,
          ),
        );
      else if (/EBUSY|Resource busy|lock/i.test(m))
        reject(
          new SerialConsoleError(`cannot open ${path}: it is in use by another program (screen, minicom?)`),
        );
      else reject(new SerialConsoleError(`cannot open ${path} at ${baudRate} baud: ${m}`));
    });
  });
}

/** Logs in on the console and reads the device's hostname and IPv4 addresses; logs out again. */
export async function readIdentityOverSerial(o: SerialLoginOptions): Promise<SerialIdentity> {
  const step = o.stepTimeoutMs ?? 8000;
  const where = `${o.path} at ${o.baudRate} baud`;
  const port = await openPort(o.path, o.baudRate);
  const reader = new ConsoleReader(port);
  try {
    o.progress?.(`opened ${where}; waiting for a login prompt`);
    await reader.write('\r');
    const prompt = await reader.expect(/(login:\s*$)|([$#>]\s*$)/im, 0, step, o.signal, {
      everyMs: 1500,
      send: '\r',
    });
    if (!prompt) {
      // A silent console still echoes the Enter keys sent to wake it: whitespace counts as nothing.
      const got = reader.received.trim() ? reader.received : '';
      const hint =
        got.length && garbageShare(got) > 0.2
          ? `received ${got.length} bytes of unreadable data, so the baud rate is probably wrong (try 115200, 57600, 9600)`
          : got.length
            ? `received only: ${JSON.stringify(got.slice(-120))}`
            : 'received nothing: check the baud rate, the wiring (TX to RX, GND) and that a getty runs on this console';
      throw new SerialConsoleError(`no login prompt on ${where} within ${step / 1000} s; ${hint}`);
    }
    // The wake-up Enters may still be answered with more prompts: answer only the last one.
    await reader.settle(300, 2000);
    const last = /(login:\s*$)|([$#>]\s*$)/i.exec(reader.received.slice(-200)) ?? prompt.match;
    let from = reader.received.length;
    if (last[1]) {
      if (!o.username)
        throw new SerialConsoleError(
          `${where} asks for a login: name the user in the address (serial://${o.path}?baud=${o.baudRate}&user=NAME)`,
        );
      o.progress?.(`logging in as ${o.username}`);
      await reader.write(`${o.username}\r`);
      const pw = await reader.expect(/password:\s*$/im, from, step, o.signal);
      if (!pw)
        throw new SerialConsoleError(
          `no password prompt on ${where} within ${step / 1000} s after the user name`,
        );
      await reader.write(`${o.password ?? ''}\r`);
      const after = await reader.expect(
        /(Login incorrect|incorrect password|Authentication failure|Permission denied)|(login:\s*$)|([$#>]\s*$)/im,
        pw.end,
        step * 2,
        o.signal,
      );
      if (!after)
        throw new SerialConsoleError(
          `no shell prompt on ${where} within ${(step * 2) / 1000} s after logging in`,
        );
      if (after.match[1] || after.match[2])
        throw new SerialConsoleError(
          `${where} refused the login of user ${o.username}: wrong user name or password`,
        );
      from = after.end;
    }
    o.progress?.('reading the hostname and network addresses');
    await reader.write(`${IDENTITY_COMMAND}\r`);
    const block = await reader.expect(
      new RegExp(`${BEGIN}\\r?\\n([\\s\\S]*?)${END}\\r?\\n`),
      from,
      step,
      o.signal,
    );
    if (!block)
      throw new SerialConsoleError(
        `the shell on ${where} did not answer within ${step / 1000} s; received: ${JSON.stringify(reader.received.slice(from).slice(-200))}`,
      );
    const lines = block.match[1]!.replace(/\r/g, '').split('\n').filter(Boolean);
    const hostname = lines[0]?.trim() ?? '';
    if (!/^[A-Za-z0-9._-]{1,253}$/.test(hostname))
      throw new SerialConsoleError(
        `the device on ${where} printed an unusable hostname: ${JSON.stringify(hostname)}`,
      );
    await reader.write('exit\r').catch(() => undefined);
    return { hostname, addresses: parseIpAddr(lines.slice(1).join('\n')) };
  } finally {
    await new Promise<void>((resolve) => (port.isOpen ? port.close(() => resolve()) : resolve()));
  }
}
