// A real test device: a Linux network namespace joined to this machine by a veth pair, with its own
// address in a private /30, its own sshd (host keys and config in a temporary directory) and its own
// login user. The manager provisions into it over real SSH; the agent inside reaches the manager's broker
// across the veth link. Needs root (ip netns, useradd, sshd); netnsSkipReason() says why not otherwise.
//
// Names all start with a fixed prefix so that the leftovers of a crashed run (namespace, veth, user,
// processes inside the namespace) are found and removed before a new run and at teardown. Only the
// addresses of these namespaces (10.200.<index>.0/30) are ever targeted.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const PREFIX = 'whtprov';
const SSHD = '/usr/sbin/sshd';

export interface NetnsDevice {
  /** Namespace name, e.g. whtprov61. */
  netns: string;
  /** The manager's side of the veth pair: brokers listen here. */
  hostAddress: string;
  /** The device's address: its sshd listens on port 22 there. */
  deviceAddress: string;
  username: string;
  password: string;
  home: string;
  /** The host key's fingerprint as `ssh-keygen -lf` prints it (SHA256:...). */
  hostKeyFingerprint(): string;
  /** An ed25519 key pair whose public half is in the user's authorized_keys. */
  identityFile: string;
  /** Replaces the host key (a reinstalled device, or an impostor) and restarts sshd. */
  replaceHostKey(): Promise<void>;
  /** PIDs of the processes running inside the namespace (sshd included). */
  pids(): number[];
  /** Command lines of the processes the device user runs. */
  userProcesses(): string[];
  stop(): Promise<void>;
}

function run(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function tryRun(cmd: string, args: string[]): void {
  spawnSync(cmd, args, { stdio: 'ignore' });
}

/** Why these tests cannot run here, or undefined when they can. */
export function netnsSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux';
  if (process.getuid?.() !== 0) return 'network namespaces, useradd and sshd need root (CI runs as root)';
  if (!existsSync(SSHD)) return `${SSHD} is missing (Debian package openssh-server)`;
  for (const tool of ['ip', 'useradd', 'ssh-keygen', 'chpasswd']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is missing`;
  }
  const probe = spawnSync('ip', ['netns', 'add', `${PREFIX}probe`], { encoding: 'utf8' });
  if (probe.status !== 0) return `cannot create a network namespace: ${probe.stderr.trim()}`;
  tryRun('ip', ['netns', 'delete', `${PREFIX}probe`]);
  return undefined;
}

function userExists(name: string): boolean {
  return spawnSync('id', ['-u', name], { stdio: 'ignore' }).status === 0;
}

function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
}

function netnsPids(netns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', netns], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}

function userPids(user: string): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '-u', user], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split(/\s+/).filter(Boolean).map(Number) : [];
}

/** Removes one device's namespace, veth, user and processes, whether or not they exist. */
function removeDevice(index: number): void {
  const netns = `${PREFIX}${index}`;
  const user = `${PREFIX}u${index}`;
  killPids(netnsPids(netns));
  if (userExists(user)) {
    killPids(userPids(user));
    tryRun('userdel', ['-r', '-f', user]);
  }
  tryRun('ip', ['link', 'delete', `${PREFIX}${index}h`]);
  tryRun('ip', ['netns', 'delete', netns]);
}

/** Removes every namespace, veth and user a previous (crashed) run left behind. */
export function removeLeftovers(): void {
  const indexes = new Set<number>();
  const netns = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const m of netns.matchAll(new RegExp(`^${PREFIX}(\\d+)`, 'gm'))) indexes.add(Number(m[1]));
  const links = spawnSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' }).stdout ?? '';
  for (const m of links.matchAll(new RegExp(`: ${PREFIX}(\\d+)h[@:]`, 'g'))) indexes.add(Number(m[1]));
  const passwd = readFileSync('/etc/passwd', 'utf8');
  for (const m of passwd.matchAll(new RegExp(`^${PREFIX}u(\\d+):`, 'gm'))) indexes.add(Number(m[1]));
  for (const index of indexes) removeDevice(index);
}

function fingerprintOf(pubKeyFile: string): string {
  const out = run('ssh-keygen', ['-lf', pubKeyFile]);
  const m = /(SHA256:[A-Za-z0-9+/]{43})/.exec(out);
  if (!m) throw new Error(`ssh-keygen -lf ${pubKeyFile} printed no SHA256 fingerprint: ${out}`);
  return m[1]!;
}

async function waitForPort(netns: string, address: string, port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = spawnSync('ip', ['netns', 'exec', netns, 'ss', '-Hltn'], {
      encoding: 'utf8',
    });
    if (r.stdout?.includes(`${address}:${port}`)) return;
    if (Date.now() > deadline) throw new Error(`sshd in ${netns} did not listen on ${address}:${port}`);
    await new Promise((r2) => setTimeout(r2, 100));
  }
}

/**
 * Starts device number `index` (1-250): namespace whtprov<index>, addresses 10.200.<index>.1 (manager)
 * and 10.200.<index>.2 (device), user whtprovu<index> with a random password. `sshdConfig` adds lines to
 * the device's sshd_config (e.g. `SetEnv PATH=...` to put an emulated `node` first on the login's PATH).
 */
export async function startNetnsDevice(
  index: number,
  sshdConfig: readonly string[] = [],
): Promise<NetnsDevice> {
  if (!Number.isInteger(index) || index < 1 || index > 250)
    throw new RangeError(`index ${index} not in 1-250`);
  removeDevice(index);
  const netns = `${PREFIX}${index}`;
  const hostIf = `${PREFIX}${index}h`;
  const devIf = `${PREFIX}${index}d`;
  const hostAddress = `10.200.${index}.1`;
  const deviceAddress = `10.200.${index}.2`;
  const username = `${PREFIX}u${index}`;
  const password = `pw-${Math.random().toString(36).slice(2)}-${Date.now()}`;
  const dir = mkdtempSync(join(tmpdir(), `${PREFIX}${index}-`));
  // The user must reach its home inside it; the private files in it stay mode 0600.
  chmodSync(dir, 0o755);
  const home = join(dir, 'home');
  let sshd: ChildProcess | null = null;
  const sshdLog: string[] = [];

  const teardown = async (): Promise<void> => {
    if (sshd && sshd.exitCode === null && sshd.signalCode === null) {
      const exited = new Promise((r) => sshd!.once('exit', r));
      sshd.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    }
    removeDevice(index);
    rmSync(dir, { recursive: true, force: true });
  };

  try {
    run('ip', ['netns', 'add', netns]);
    run('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', devIf]);
    run('ip', ['link', 'set', devIf, 'netns', netns]);
    run('ip', ['addr', 'add', `${hostAddress}/30`, 'dev', hostIf]);
    run('ip', ['link', 'set', hostIf, 'up']);
    run('ip', ['netns', 'exec', netns, 'ip', 'addr', 'add', `${deviceAddress}/30`, 'dev', devIf]);
    run('ip', ['netns', 'exec', netns, 'ip', 'link', 'set', devIf, 'up']);
    run('ip', ['netns', 'exec', netns, 'ip', 'link', 'set', 'lo', 'up']);

    run('useradd', ['--create-home', '--home-dir', home, '--shell', '/bin/sh', username]);
    execFileSync('chpasswd', { input: `${username}:${password}\n` });

    const identityFile = join(dir, 'id_ed25519');
    run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'whittle-test', '-f', identityFile]);
    mkdirSync(join(home, '.ssh'), { mode: 0o700 });
    writeFileSync(join(home, '.ssh', 'authorized_keys'), readFileSync(`${identityFile}.pub`), {
      mode: 0o600,
    });
    run('chown', ['-R', `${username}:`, join(home, '.ssh')]);

    const hostKey = join(dir, 'ssh_host_ed25519_key');
    const makeHostKey = (): void => {
      rmSync(hostKey, { force: true });
      rmSync(`${hostKey}.pub`, { force: true });
      run('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    };
    makeHostKey();
    const config = join(dir, 'sshd_config');
    writeFileSync(
      config,
      [
        'Port 22',
        `ListenAddress ${deviceAddress}`,
        `HostKey ${hostKey}`,
        `PidFile ${join(dir, 'sshd.pid')}`,
        'PasswordAuthentication yes',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'UsePAM no',
        'PermitRootLogin no',
        `AllowUsers ${username}`,
        // The key and home live in a temporary directory whose parents sshd would otherwise reject.
        'StrictModes no',
        'Subsystem sftp internal-sftp',
        'LogLevel VERBOSE',
        ...sshdConfig,
        '',
      ].join('\n'),
    );
    mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });

    const startSshd = async (): Promise<void> => {
      sshd = spawn('ip', ['netns', 'exec', netns, SSHD, '-D', '-e', '-f', config], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      sshd.stderr?.on('data', (chunk: Buffer) => sshdLog.push(chunk.toString()));
      await waitForPort(netns, deviceAddress, 22, 5000);
    };
    await startSshd();

    return {
      netns,
      hostAddress,
      deviceAddress,
      username,
      password,
      home,
      identityFile,
      hostKeyFingerprint: () => fingerprintOf(`${hostKey}.pub`),
      async replaceHostKey() {
        const old = sshd;
        if (old && old.exitCode === null) {
          const exited = new Promise((r) => old.once('exit', r));
          old.kill('SIGTERM');
          await exited;
        }
        makeHostKey();
        await startSshd();
      },
      pids: () => netnsPids(netns),
      userProcesses: () => {
        const r = spawnSync('ps', ['-o', 'args=', '-u', username], { encoding: 'utf8' });
        return (r.stdout ?? '').split('\n').filter(Boolean);
      },
      stop: teardown,
    };
  } catch (err) {
    await teardown();
    throw new Error(`cannot start test device ${netns}: ${(err as Error).message}\n${sshdLog.join('')}`);
  }
}
