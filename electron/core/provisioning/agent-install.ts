// Installs, starts and removes the agent on a device over an SSH session.
//
// Two layouts, chosen from the probe:
//   systemd     root (or passwordless sudo) and systemd as PID 1: code in /opt/whittle-agent (root-owned,
//               read-only), config in /etc/whittle-agent (0600, owned by the service user), data in
//               /var/lib/whittle-agent, a dedicated system user, and a sandboxed unit (service-files.ts).
//   supervised  anything else (no systemd, as in containers and the test namespaces; or no root): all of it
//               under ~/.whittle-agent of the login user, run by a supervisor script with a pid file. It
//               does not start at boot; the CLI says so.
// Invariant: every path the agent's files live under is recorded in InstallRecord, so uninstall removes
// exactly what install created.
import { z } from 'zod';

import { addonSourceTarball, type AgentBundle } from './agent-bundle.js';
import type { DeviceProbe } from './device-probe.js';
import { RemoteCommandError } from './errors.js';
import { supervisorScript, systemdUnit } from './service-files.js';
import { shq, type SshSession } from './ssh-session.js';

export const SERVICE_USER = 'whittle-agent';
export const SERVICE_NAME = 'whittle-agent.service';

export const InstallRecordSchema = z.object({
  version: z.literal(1),
  deviceId: z.string(),
  host: z.string(),
  port: z.number().int(),
  username: z.string(),
  kind: z.enum(['systemd', 'supervised']),
  arch: z.enum(['x64', 'arm64', 'armv7']),
  addon: z.enum(['shipped', 'built-on-device']),
  /** Roots removed on uninstall (rm -rf). */
  dirs: z.array(z.string()),
  /** systemd only. */
  unitPath: z.string().optional(),
  serviceUser: z.string().optional(),
  /** supervised only. */
  pidFile: z.string().optional(),
  logFile: z.string(),
  configFile: z.string(),
  camera: z.string(),
  broker: z.string(),
});
export type InstallRecord = z.infer<typeof InstallRecordSchema>;

export interface InstallOptions {
  deviceId: string;
  brokerUrl: string;
  brokerPassword: string;
  signingPublicKeyPem: string;
  camera: string;
  bundle: AgentBundle;
  progress: (line: string) => void;
  /** Build the addon on the device even when a prebuilt one is shipped (tests, unusual CPUs). */
  buildAddonOnDevice?: boolean;
}

interface Layout {
  kind: 'systemd' | 'supervised';
  appDir: string;
  configDir: string;
  dataDir: string;
  logFile: string;
  dirs: string[];
  /** Prefix for commands that need root. */
  root: string;
}

function layoutFor(probe: DeviceProbe): Layout {
  if (probe.systemd && probe.sudo) {
    return {
      kind: 'systemd',
      appDir: '/opt/whittle-agent',
      configDir: '/etc/whittle-agent',
      dataDir: '/var/lib/whittle-agent',
      logFile: 'journalctl -u whittle-agent',
      dirs: ['/opt/whittle-agent', '/etc/whittle-agent', '/var/lib/whittle-agent'],
      root: probe.uid === 0 ? '' : 'sudo -n ',
    };
  }
  if (!probe.home.startsWith('/') || /['\n]/.test(probe.home))
    throw new RemoteCommandError(`the login user's home directory "${probe.home}" is unusable for the agent`);
  const base = `${probe.home.replace(/\/+$/, '')}/.whittle-agent`;
  return {
    kind: 'supervised',
    appDir: `${base}/app`,
    configDir: `${base}/etc`,
    dataDir: `${base}/data`,
    logFile: `${base}/agent.log`,
    dirs: [base],
    root: '',
  };
}

/** Describes where and how the agent will run, before anything is changed (for the CLI's summary). */
export function describeLayout(probe: DeviceProbe): string {
  const l = layoutFor(probe);
  return l.kind === 'systemd'
    ? `a sandboxed systemd service (${SERVICE_NAME}) running as user ${SERVICE_USER}, code in ${l.appDir}, config in ${l.configDir}, data in ${l.dataDir}`
    : `a supervised background process of user ${probe.uid === 0 ? 'root' : 'the login user'} under ${l.dirs[0]} ` +
        `(${!probe.systemd ? 'the device has no systemd' : 'no root or passwordless sudo for a systemd service'}; it will not start at boot)`;
}

export async function installAgent(
  session: SshSession,
  probe: DeviceProbe,
  o: InstallOptions,
): Promise<InstallRecord> {
  const layout = layoutFor(probe);
  const { root } = layout;
  const nodePath = (await session.check('finding node', 'command -v node')).trim();
  if (!nodePath.startsWith('/'))
    throw new RemoteCommandError(`node resolves to "${nodePath}", not an absolute path`);
  const remoteTmp = (
    await session.check('creating a temporary directory', 'mktemp -d /tmp/whittle-install.XXXXXX')
  ).trim();
  try {
    o.progress(
      `uploading the agent (${(o.bundle.bundleBytes / 2 ** 20).toFixed(2)} MB bundle, ${probe.arch})`,
    );
    await session.upload(o.bundle.tarball, `${remoteTmp}/agent.tar.gz`);
    if (layout.kind === 'supervised') await stopSupervised(session, `${layout.dirs[0]}/agent.pid`);
    else await session.run(`${root}systemctl stop ${SERVICE_NAME} 2>/dev/null`);

    const staged = `${layout.appDir}.new`;
    await session.check(
      'unpacking the agent',
      `${root}sh -c ${shq(`set -e; umask 022; rm -rf ${shq(staged)}; mkdir -p ${shq(staged)}; tar -xzf ${shq(`${remoteTmp}/agent.tar.gz`)} -C ${shq(staged)}`)}`,
    );
    let addon: InstallRecord['addon'] = 'shipped';
    if (!o.bundle.hasAddon || o.buildAddonOnDevice) {
      o.progress(`building the native addon on the device (${probe.machine})`);
      await session.upload(addonSourceTarball(o.bundle.dir), `${remoteTmp}/addon-src.tar.gz`);
      await session.check(
        'building the native addon on the device',
        `set -e; mkdir -p ${remoteTmp}/src; tar -xzf ${remoteTmp}/addon-src.tar.gz -C ${remoteTmp}/src; ` +
          `cd ${remoteTmp}/src && OUT_DIR=${remoteTmp}/out bash scripts/cross-build-addon.sh native >/dev/null 2>${remoteTmp}/build.log || { tail -5 ${remoteTmp}/build.log >&2; exit 1; }`,
      );
      await session.check(
        'installing the addon built on the device',
        `${root}sh -c ${shq(`set -e; mkdir -p ${staged}/native/build/Release; cp ${remoteTmp}/out/${probe.arch}/whittle_native.node ${staged}/native/build/Release/`)}`,
      );
      addon = 'built-on-device';
    }
    await session.check(
      'checking that the agent runs on the device',
      `${shq(nodePath)} ${shq(`${staged}/agent/cli.mjs`)} --version && ${shq(nodePath)} -e ${shq(`require(${JSON.stringify(`${staged}/native/build/Release/whittle_native.node`)})`)}`,
    );
    await session.check(
      'installing the agent',
      `${root}sh -c ${shq(`set -e; rm -rf ${shq(layout.appDir)}; mv ${shq(staged)} ${shq(layout.appDir)}`)}`,
    );

    const configFile = `${layout.configDir}/config.json`;
    const keyFile = `${layout.configDir}/package-signing.pub.pem`;
    const config = {
      broker: o.brokerUrl,
      deviceId: o.deviceId,
      password: o.brokerPassword,
      camera: o.camera,
      stateDir: layout.dataDir,
      packageKeyFile: keyFile,
    };
    const owner = layout.kind === 'systemd' ? SERVICE_USER : null;
    if (owner) {
      await session.check(
        `creating the service user ${owner}`,
        `${root}sh -c ${shq(`id -u ${owner} >/dev/null 2>&1 || useradd --system --no-create-home --home-dir ${layout.dataDir} --shell /usr/sbin/nologin --user-group ${owner}`)}`,
      );
    }
    await session.check(
      'creating the config and data directories',
      `${root}sh -c ${shq(
        `set -e; install -d -m 0750 ${layout.configDir}; install -d -m 0700 ${layout.dataDir}` +
          (owner
            ? `; chown root:${owner} ${layout.configDir}; chown ${owner}:${owner} ${layout.dataDir}`
            : ''),
      )}`,
    );
    // The password travels on stdin, never on a command line (ps would show it).
    await session.check(
      'writing the agent config',
      `${root}sh -c ${shq(`set -e; umask 077; cat > ${configFile}.new; chmod 600 ${configFile}.new${owner ? `; chown ${owner}:${owner} ${configFile}.new` : ''}; mv ${configFile}.new ${configFile}`)}`,
      `${JSON.stringify(config, null, 2)}\n`,
    );
    await session.check(
      'writing the package-signing public key',
      `${root}sh -c ${shq(`set -e; umask 022; cat > ${keyFile}`)}`,
      o.signingPublicKeyPem,
    );

    const common = {
      version: 1 as const,
      deviceId: o.deviceId,
      host: session.target.host,
      port: session.target.port,
      username: session.target.username,
      arch: probe.arch,
      addon,
      dirs: layout.dirs,
      logFile: layout.logFile,
      configFile,
      camera: o.camera,
      broker: o.brokerUrl,
    };
    if (layout.kind === 'systemd') {
      const unitPath = `/etc/systemd/system/${SERVICE_NAME}`;
      const unit = systemdUnit({
        serviceUser: SERVICE_USER,
        nodePath,
        appDir: layout.appDir,
        configFile,
        dataDir: layout.dataDir,
        cameraDevice: o.camera.startsWith('/dev/') ? o.camera : null,
      });
      await session.check('writing the systemd unit', `${root}sh -c ${shq(`cat > ${unitPath}`)}`, unit);
      o.progress(`starting ${SERVICE_NAME}`);
      await session.check(
        `starting ${SERVICE_NAME}`,
        `${root}systemctl daemon-reload && ${root}systemctl enable --now ${SERVICE_NAME}`,
      );
      return { ...common, kind: 'systemd', unitPath, serviceUser: SERVICE_USER };
    }
    const base = layout.dirs[0]!;
    const pidFile = `${base}/agent.pid`;
    await session.check(
      'writing the supervisor',
      `set -e; umask 077; cat > ${shq(`${base}/supervise.sh`)}; chmod 700 ${shq(`${base}/supervise.sh`)}`,
      supervisorScript({ nodePath, baseDir: base }),
    );
    o.progress('starting the agent under its supervisor (no systemd)');
    // Every descriptor redirected: otherwise the SSH channel stays open until the agent exits.
    await session.check(
      'starting the agent',
      `cd ${shq(base)} && (setsid sh ${shq(`${base}/supervise.sh`)} </dev/null >/dev/null 2>&1 &) && ` +
        `for i in 1 2 3 4 5 6 7 8 9 10; do [ -s ${shq(pidFile)} ] && exit 0; sleep 0.3; done; echo 'the supervisor wrote no pid file' >&2; exit 1`,
    );
    return { ...common, kind: 'supervised', pidFile };
  } catch (err) {
    // A failed install leaves no half-unpacked copy behind; a previous working install stays as it was
    // only if the failure came before the switch (the agent check guards it).
    await session.run(`${root}rm -rf ${shq(`${layout.appDir}.new`)}`);
    throw err;
  } finally {
    await session.run(`rm -rf ${shq(remoteTmp)}`);
  }
}

/** Stops a supervisor (and with it the agent) by its pid file; quiet when none runs. */
async function stopSupervised(session: SshSession, pidFile: string): Promise<void> {
  await session.run(
    `if [ -s ${shq(pidFile)} ]; then p=$(cat ${shq(pidFile)}); kill -TERM "$p" 2>/dev/null; ` +
      `for i in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done; kill -KILL "$p" 2>/dev/null; rm -f ${shq(pidFile)}; fi; true`,
  );
}

/** Whether the installed agent is running (the service is active, or the supervised process lives). */
export async function agentRunning(session: SshSession, record: InstallRecord): Promise<boolean> {
  if (record.kind === 'systemd') {
    const r = await session.run(`systemctl is-active ${SERVICE_NAME}`);
    return r.stdout.trim() === 'active';
  }
  const r = await session.run(`p=$(cat ${shq(record.pidFile ?? '')} 2>/dev/null) && kill -0 "$p"`);
  return r.code === 0;
}

/** Removes everything installAgent created: service or supervisor, files, the service user. */
export async function uninstallAgent(session: SshSession, record: InstallRecord): Promise<void> {
  const uid = (await session.check('asking for the user id', 'id -u')).trim();
  const root = record.kind === 'systemd' && uid !== '0' ? 'sudo -n ' : '';
  if (record.kind === 'systemd') {
    await session.run(`${root}systemctl disable --now ${SERVICE_NAME} 2>/dev/null`);
    await session.check(
      'removing the systemd unit',
      `${root}sh -c ${shq(`rm -f ${record.unitPath ?? `/etc/systemd/system/${SERVICE_NAME}`}`)} && ${root}systemctl daemon-reload`,
    );
  } else if (record.pidFile) {
    await stopSupervised(session, record.pidFile);
  }
  for (const dir of record.dirs) {
    if (!dir.startsWith('/') || dir.split('/').filter(Boolean).length < 2 || !dir.includes('whittle-agent'))
      throw new RemoteCommandError(`refusing to remove "${dir}": not a directory Whittle installs into`);
    await session.check(`removing ${dir}`, `${root}rm -rf ${shq(dir)}`);
  }
  if (record.serviceUser)
    await session.check(
      `removing the user ${record.serviceUser}`,
      `${root}sh -c ${shq(`! id -u ${record.serviceUser} >/dev/null 2>&1 || userdel ${record.serviceUser}`)}`,
    );
}
