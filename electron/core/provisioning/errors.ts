// Every way provisioning can fail, as a typed error whose message tells the user what to do.
// The CLI prints `message`; the tests match on the class and on the facts the message must name.
import { WhittleError } from '../../../native/whittle-error.js';

export class ProvisioningError extends WhittleError {
  override name = 'ProvisioningError';
  readonly code: string = 'provisioning-failed';
}

/** A ProvisioningError subclass of its own name and code (as whittleError makes a WhittleError's). */
function provisioningError(name: string, code: string) {
  return class extends ProvisioningError {
    override name = name;
    override readonly code: string = code;
  };
}

/** A device address the CLI could not understand (ssh://… or serial://…). */
export class TargetUrlError extends provisioningError('TargetUrlError', 'bad-target-url') {}

/** First contact with a host: its key must be accepted by the user before anything is sent. */
export class HostKeyNotAcceptedError extends provisioningError(
  'HostKeyNotAcceptedError',
  'host-key-not-accepted',
) {
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
export class HostKeyChangedError extends provisioningError('HostKeyChangedError', 'host-key-changed') {
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
export class SshAuthError extends provisioningError('SshAuthError', 'ssh-auth-refused') {}

/** The device could not be reached (address, port, time-out, refused connection). */
export class SshConnectError extends provisioningError('SshConnectError', 'ssh-unreachable') {}

/** A command on the device failed; the message carries the command's stderr. */
export class RemoteCommandError extends provisioningError('RemoteCommandError', 'remote-command-failed') {}

/** The device lacks something the agent needs (Node.js, a supported CPU, ...). */
export class DeviceUnsupportedError extends provisioningError(
  'DeviceUnsupportedError',
  'device-unsupported',
) {}

/** The agent bundle or the native addon for the device's CPU cannot be produced. */
export class AgentBundleError extends provisioningError('AgentBundleError', 'no-agent-bundle') {}

/** The serial console could not be opened, gave no login prompt, or refused the login. */
export class SerialConsoleError extends provisioningError('SerialConsoleError', 'serial-console-failed') {}
