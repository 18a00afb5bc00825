// Errors of the model commands (inspect, import, run) and how the CLI prints them.
import { PackageError } from '../../agent/package/errors.js';
import { GraphError, InputError, MemoryBudgetError } from '../../agent/runtime/graph-error.js';

/** Bad command-line use: the message says what was expected. */
export class CommandUsageError extends Error {
  override readonly name = 'CommandUsageError';
}

/** The typed errors a model command reports as one line (no stack): the user can act on the message. */
export function isReportedError(error: unknown): error is Error {
  return (
    error instanceof CommandUsageError ||
    error instanceof PackageError ||
    error instanceof GraphError ||
    error instanceof MemoryBudgetError ||
    error instanceof InputError ||
    (error instanceof Error &&
      [
        'OnnxImportError',
        'UnsupportedOpsError',
        'TfjsImportError',
        'ManagerApiError',
        'NoManagerError',
      ].includes(error.name))
  );
}
