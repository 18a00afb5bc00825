// The CLI's usage error and how every `whittle` command reports a failure.
import { WhittleError } from '../../native/whittle-error.js';

/** Bad command-line use: the message says what was expected. The one usage error of the whole CLI. */
export class CommandUsageError extends WhittleError {
  override readonly name = 'CommandUsageError';
  readonly code = 'usage';
}

/** The errors a command reports as one line (no stack): every WhittleError, whose message the user can act
 * on. Anything else is a bug of ours and keeps its stack. */
export function isReportedError(error: unknown): error is WhittleError {
  return error instanceof WhittleError;
}

/** Node's parseArgs refusing an option (unknown flag, missing value): a usage error it throws as a
 * TypeError with an ERR_PARSE_ARGS_* code. */
function isParseArgsError(error: unknown): error is TypeError {
  return (
    error instanceof TypeError && (error as NodeJS.ErrnoException).code?.startsWith('ERR_PARSE_ARGS') === true
  );
}

/** Prints a reported error as one line after `prefix` ("whittle deploy") and returns the exit code, 1;
 * rethrows anything else, which the CLI shows with its stack. */
export function reportCommandError(prefix: string, error: unknown): number {
  if (isReportedError(error)) console.error(`${prefix}: ${error.message}`);
  else if (isParseArgsError(error)) console.error(`${prefix}: ${error.message}; see whittle --help`);
  else throw error;
  return 1;
}
