// The files that run the agent on a device, as pure text generators: a sandboxed systemd unit for
// devices with systemd and root, and a small supervisor script for devices without (it restarts the
// agent with backoff and keeps a pid file so uninstall can stop it).
import { AGENT_NODE_FLAGS } from '../../../agent/config.js';

export interface SystemdUnitOptions {
  serviceUser: string;
  nodePath: string;
  appDir: string;
  configFile: string;
  dataDir: string;
  /** The V4L2 device the agent may open, or null when it reads a file, a stream or the test source. */
  cameraDevice: string | null;
}

/**
 * Unprivileged and sandboxed: its own user, no privileges to gain, the whole file system read-only but
 * its data directory, no home directories, a private /tmp, no devices but the camera. Every directive
 * here is one the agent has been checked to run under; MemoryDenyWriteExecute is absent on purpose
 * because V8's JIT needs writable-then-executable pages.
 */
export function systemdUnit(o: SystemdUnitOptions): string {
  const devices = o.cameraDevice
    ? [
        'DevicePolicy=closed',
        `DeviceAllow=${o.cameraDevice} rw`,
        // V4L2 device nodes belong to group video.
        'SupplementaryGroups=video',
      ]
    : ['PrivateDevices=yes'];
  return [
    '# Installed by the Whittle manager (whittle device add); removed by whittle device remove.',
    '[Unit]',
    'Description=Whittle agent: camera inference and telemetry for the Whittle manager',
    'After=network-online.target',
    'Wants=network-online.target',
    '',
    '[Service]',
    'Type=simple',
    `User=${o.serviceUser}`,
    `Group=${o.serviceUser}`,
    `ExecStart=${[o.nodePath, ...AGENT_NODE_FLAGS, `${o.appDir}/agent/cli.mjs`].join(' ')} run --config ${o.configFile}`,
    `WorkingDirectory=${o.dataDir}`,
    'Restart=always',
    'RestartSec=2',
    'UMask=0077',
    'NoNewPrivileges=yes',
    'CapabilityBoundingSet=',
    'AmbientCapabilities=',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    `ReadWritePaths=${o.dataDir}`,
    ...devices,
    'ProtectKernelTunables=yes',
    'ProtectKernelModules=yes',
    'ProtectKernelLogs=yes',
    'ProtectControlGroups=yes',
    'ProtectClock=yes',
    'ProtectHostname=yes',
    'PrivateMounts=yes',
    // Other processes are hidden; /proc/stat and /proc/cpuinfo (CPU load, model) stay readable.
    'ProtectProc=invisible',
    'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
    'RestrictNamespaces=yes',
    'RestrictRealtime=yes',
    'RestrictSUIDSGID=yes',
    'LockPersonality=yes',
    'RemoveIPC=yes',
    'KeyringMode=private',
    'SystemCallArchitectures=native',
    'SystemCallFilter=@system-service',
    // Node's start-up setrlimit (in @resources) then fails with EPERM, which it tolerates.
    'SystemCallFilter=~@privileged @resources',
    'SystemCallErrorNumber=EPERM',
    '',
    '[Install]',
    'WantedBy=multi-user.target',
    '',
  ].join('\n');
}

export interface SupervisorOptions {
  nodePath: string;
  /** Directory holding app/, etc/config.json; the pid file and the log go here too. */
  baseDir: string;
}

/** POSIX sh. Writes its own pid to agent.pid; SIGTERM stops the agent, removes the pid file and exits. */
export function supervisorScript(o: SupervisorOptions): string {
  return `#!/bin/sh
# Keeps the Whittle agent running on a device without systemd (installed by whittle device add).
# Stop it with: kill "$(cat ${o.baseDir}/agent.pid)"
base='${o.baseDir}'
log="$base/agent.log"
echo $$ >"$base/agent.pid"
child=
stop() {
  if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null; wait "$child"; fi
  rm -f "$base/agent.pid"
  exit 0
}
trap stop TERM INT HUP
delay=1
while :; do
  # Keep the log bounded: one previous generation of at most 5 MB.
  if [ -f "$log" ] && [ "$(wc -c <"$log")" -gt 5242880 ]; then mv -f "$log" "$log.1"; fi
  started=$(date +%s)
  '${o.nodePath}' ${AGENT_NODE_FLAGS.join(' ')} "$base/app/agent/cli.mjs" run --config "$base/etc/config.json" >>"$log" 2>&1 </dev/null &
  child=$!
  wait "$child"
  code=$?
  child=
  if [ $(($(date +%s) - started)) -gt 60 ]; then delay=1; fi
  echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) supervisor: the agent exited with status $code; restarting in $delay s" >>"$log"
  sleep "$delay" &
  child=$!
  wait "$child"
  child=
  if [ "$delay" -lt 30 ]; then delay=$((delay * 2)); fi
done
`;
}
