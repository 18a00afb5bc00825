// Every way provisioning can fail, as a typed error whose message tells the user what to do.
// The CLI prints `message`; the tests match on the class and on the facts the message must name.
import { WhittleError } from '../../../native/whittle-error.js';

export class ProvisioningError extends WhittleError {
  override name = 'ProvisioningError';
  readonly code: string = 'provisioning-failed';
}

/** A device address the CLI could not understand (ssh://… or serial://…). */
export class TargetUrlError extends ProvisioningError {
  override name = 'TargetUrlError';
  override readonly code: string = 'bad-target-url';
}

/** First contact with a host: its key must be accepted by the user before anything is sent. */
export class HostKeyNotAcceptedError extends ProvisioningError {
  override name = 'HostKeyNotAcceptedError';
  override readonly code: string = 'host-key-not-accepted';
  constructor(
    readonly host: string,
    readonly port: number,
    readonly keyType: string,
    readonly fingerprint: string,
    readonly offered?: string,
  ) {
    super(
      offered
        ? `the host key of ${host}:${port} is ${keyType} ${fingerprint}, not the ${offered} given with --accept-host-key; nothing was sent to the device`
        : `the host key of ${host}:${port} is not known yet: ${keyType} ${fingerprint}. Check it on the device ` +
            `(on its console: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub) and accept it with --accept-host-key ${fingerprint}`,
    );
  }
}

/** The host presented a key other than the one pinned on first contact: maybe another machine. */
export class HostKeyChangedError extends ProvisioningError {
  override name = 'HostKeyChangedError';
  override readonly code: string = 'host-key-changed';
  constructor(
    readonly host: string,
    readonly port: number,
    readonly pinned: string,
    readonly presented: string,
  ) {
    super(
      `REFUSED: the host key of ${host}:${port} has changed. Pinned: ${pinned}; presented now: ${presented}. ` +
        `Someone may be impersonating the device, or it was reinstalled. If you know why it changed, ` +
        `run \`whittle device forget-host ${host}:${port}\` and add the device again.`,
    );
  }
}

/** The device refused the user name, password or key. */
export class SshAuthError extends ProvisioningError {
  override name = 'SshAuthError';
  override readonly code: string = 'ssh-auth-refused';
}

/** The device could not be reached (address, port, time-out, refused connection). */
export class SshConnectError extends ProvisioningError {
  override name = 'SshConnectError';
  override readonly code: string = 'ssh-unreachable';
}

/** A command on the device failed; the message carries the command's stderr. */
export class RemoteCommandError extends ProvisioningError {
  override name = 'RemoteCommandError';
  override readonly code: string = 'remote-command-failed';
}

/** The device lacks something the agent needs (Node.js, a supported CPU, ...). */
export class DeviceUnsupportedError extends ProvisioningError {
  override name = 'DeviceUnsupportedError';
  override readonly code: string = 'device-unsupported';
}

/** The agent bundle or the native addon for the device's CPU cannot be produced. */
export class AgentBundleError extends ProvisioningError {
  override name = 'AgentBundleError';
  override readonly code: string = 'no-agent-bundle';
}

/** The serial console could not be opened, gave no login prompt, or refused the login. */
export class SerialConsoleError extends ProvisioningError {
  override name = 'SerialConsoleError';
  override readonly code: string = 'serial-console-failed';
}
