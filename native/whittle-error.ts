// The one base of every error Whittle throws on purpose. It lives in the lowest layer (native/, which
// imports nothing of ours) so that every layer above may import it: renderer -> electron -> optimize ->
// agent -> native. It depends on nothing, not even Node, so the renderer bundles it too.
//
// What a WhittleError promises, and what its catchers rely on:
// - `message` is a sentence the user can act on: the CLI prints it alone (no stack), the HTTP API and the
//   agent's deployment reports send it as it is.
// - `code` is a stable string (kebab-case) a program may branch on: the HTTP API maps codes to statuses,
//   deployment reports carry them, tests match them. Codes never change meaning between versions.
// - `name` is the class's name, spelt out (minifiers rename classes), so logs and tests can tell errors
//   apart.
// An error that is not a WhittleError is a bug of ours, and is shown with its stack.
export abstract class WhittleError extends Error {
  abstract override readonly name: string;
  abstract readonly code: string;
}

/** The base of a WhittleError class whose name and code are fixed, so a class states them once:
 * `export class TfliteImportError extends whittleError('TfliteImportError', 'tflite-import') {}`. */
export function whittleError<N extends string, C extends string>(name: N, code: C) {
  return class extends WhittleError {
    override readonly name: N = name;
    readonly code: C = code;
  };
}
