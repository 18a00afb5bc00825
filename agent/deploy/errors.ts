// The deployment's one error type: a code the manager can act on and a sentence for the user.
import type { DeployErrorCode } from '../protocol/messages.js';

export class DeployError extends Error {
  override name = 'DeployError';
  constructor(
    readonly code: DeployErrorCode,
    message: string,
  ) {
    super(message);
  }
}
