// The deployment's one error type: a code the manager can act on and a sentence for the user.
import { WhittleError } from '../../native/whittle-error.js';
import { PackageError, type PackageErrorCode } from '../package/errors.js';
import type { DeployErrorCode } from '../protocol/messages.js';
import { MemoryBudgetError } from '../runtime/graph-error.js';

export class DeployError extends WhittleError {
  override name = 'DeployError';
  constructor(
    readonly code: DeployErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Codes of the package reader's refusals as the manager sees them. The file already matched the
 * target's SHA-256, so a package that is short or whose own hash fails was built wrong: bad-model. */
const PACKAGE_CODES: Partial<Record<PackageErrorCode, DeployErrorCode>> = {
  'wrong-cpu-family': 'wrong-cpu',
  'bad-signature': 'bad-signature',
  'wrong-key': 'bad-signature',
};

/** A model that does not load, as a deployment error: a package for another CPU family, one over the
 * memory budget or one whose embedded signature fails keep their own codes; anything else is bad-model. */
export function deployErrorOfLoad(err: unknown): DeployError {
  if (err instanceof DeployError) return err;
  if (err instanceof PackageError)
    return new DeployError(PACKAGE_CODES[err.code] ?? 'bad-model', `the package is refused: ${err.message}`);
  if (err instanceof MemoryBudgetError)
    return new DeployError('not-enough-memory', `the package does not fit: ${err.message}`);
  return new DeployError('bad-model', `the new model does not load: ${(err as Error).message}`);
}
