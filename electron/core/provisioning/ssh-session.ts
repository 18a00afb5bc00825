// One SSH connection to a device (node-ssh over ssh2, pure JavaScript crypto): host-key pinning, key or
// password authentication, commands that fail loudly, file uploads.
import { readFileSync } from 'node:fs';

import { NodeSSH } from 'node-ssh';

import { ProvisioningError, RemoteCommandError, SshAuthError, SshConnectError } from './errors.js';
import { type AcceptHostKey, type HostKey, type HostKeyPins, verifyHostKey } from './host-key.js';
import type { SshTarget } from './target-url.js';

export type SshAuth =
  { kind: 'key'; privateKeyPath: string; passphrase?: string } | { kind: 'password'; password: string };

export interface SshConnectOptions {
  target: SshTarget;
  auth: SshAuth;
  pins: HostKeyPins;
  acceptHostKey: AcceptHostKey;
  /** Connection and handshake time-out. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface ExecResult {
  stdout: string;
  stderr: string;
  code: number | null;
}

/** POSIX shell single-quoting: the result is one word whatever the input holds. */
export function shq(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

export class SshSession {
  private constructor(
    private readonly ssh: NodeSSH,
    readonly target: SshTarget,
    readonly hostKey: HostKey,
  ) {}

  static async connect(options: SshConnectOptions): Promise<SshSession> {
    const { target, auth } = options;
    const where = `${target.username}@${target.host}:${target.port}`;
    let privateKey: string | undefined;
    if (auth.kind === 'key') {
      try {
        privateKey = readFileSync(auth.privateKeyPath, 'utf8');
      } catch (err) {
        throw new SshAuthError(
          `cannot read the identity file ${auth.privateKeyPath}: ${(err as Error).message}`,
        );
      }
    }
    // ssh2 reports a refused host key only as "Host denied (verification failed)": keep our own reason.
    let hostKeyFailure: Error | undefined;
    let hostKey: HostKey | undefined;
    const ssh = new NodeSSH();
    const onAbort = (): void => {
      ssh.connection?.end();
    };
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await ssh.connect({
        host: target.host,
        port: target.port,
        username: target.username,
        ...(auth.kind === 'password'
          ? { password: auth.password, tryKeyboard: true }
          : { privateKey, ...(auth.passphrase ? { passphrase: auth.passphrase } : {}) }),
        readyTimeout: options.timeoutMs ?? 20_000,
        hostVerifier: (key: Buffer, verify: (valid: boolean) => void) => {
          verifyHostKey(options.pins, target.host, target.port, key, options.acceptHostKey).then(
            (accepted) => {
              hostKey = accepted;
              verify(true);
            },
            (err: unknown) => {
              hostKeyFailure = err instanceof Error ? err : new ProvisioningError(String(err));
              verify(false);
            },
          );
        },
      });
    } catch (err) {
      ssh.dispose();
      if (hostKeyFailure) throw hostKeyFailure;
      if (options.signal?.aborted) throw new SshConnectError(`connecting to ${where} was cancelled`);
      const message = (err as Error).message;
      if (/All configured authentication methods failed|authentication/i.test(message))
        throw new SshAuthError(
          `${where} refused the ${auth.kind === 'password' ? 'password' : `key ${auth.privateKeyPath}`} of user ` +
            `${target.username}; check the user name and ${auth.kind === 'password' ? 'password' : 'key'}`,
        );
      if (/Cannot parse privateKey|Encrypted private key detected/i.test(message))
        throw new SshAuthError(`cannot use the identity file: ${message}`);
      if (/Timed out/i.test(message))
        throw new SshConnectError(
          `${where} did not answer the SSH handshake within ${options.timeoutMs ?? 20_000} ms`,
        );
      throw new SshConnectError(`cannot connect to ${where}: ${message}`);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
    }
    if (!hostKey) {
      ssh.dispose();
      throw new SshConnectError(`${where} completed the handshake without presenting a host key`);
    }
    return new SshSession(ssh, target, hostKey);
  }

  /** Runs a shell command; resolves whatever its exit code. */
  async run(command: string, stdin?: string): Promise<ExecResult> {
    const r = await this.ssh.execCommand(command, stdin === undefined ? {} : { stdin });
    return { stdout: r.stdout, stderr: r.stderr, code: r.code };
  }

  /** Runs a shell command and returns its stdout; a non-zero exit is a RemoteCommandError naming `what`. */
  async check(what: string, command: string, stdin?: string): Promise<string> {
    const r = await this.run(command, stdin);
    if (r.code !== 0) {
      const detail = (r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n  ');
      throw new RemoteCommandError(
        `${what} failed on ${this.target.host} (exit ${r.code ?? 'signal'})${detail ? `:\n  ${detail}` : ''}`,
      );
    }
    return r.stdout;
  }

  async upload(localPath: string, remotePath: string): Promise<void> {
    try {
      await this.ssh.putFile(localPath, remotePath);
    } catch (err) {
      throw new RemoteCommandError(
        `cannot upload ${localPath} to ${this.target.host}:${remotePath}: ${(err as Error).message}`,
      );
    }
  }

  close(): void {
    this.ssh.dispose();
  }
}
