import { WhittleError } from '../../native/whittle-error.js';

/** A model.json (or its weight files) that cannot be imported; the message names the layer or file. */
export class TfjsImportError extends WhittleError {
  override readonly name = 'TfjsImportError';
  readonly code = 'bad-tfjs-model';
}
