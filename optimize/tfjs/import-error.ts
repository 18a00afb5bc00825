/** A model.json (or its weight files) that cannot be imported; the message names the layer or file. */
export class TfjsImportError extends Error {
  override readonly name = 'TfjsImportError';
}
