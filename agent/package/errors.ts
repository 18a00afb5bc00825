// The one error type of the package reader: every refusal says what is wrong and where (section, layer,
// byte offset), so a user can tell a damaged download from a package built for another device.
import { WhittleError } from '../../native/whittle-error.js';

/** Where in the package a problem was found; every field is optional because some problems (a file too
 * short to hold a header) have no section or layer yet. */
export interface PackageErrorLocation {
  /** Index into the section table. */
  section?: number;
  /** Node (layer) name of the manifest's graph. */
  layer?: string;
  /** Byte offset from the start of the file. */
  offset?: number;
}

/** Why the package was refused; lets callers (the agent's deploy step, the CLI) react without parsing text. */
export type PackageErrorCode =
  | 'truncated'
  | 'bad-magic'
  | 'unsupported-version'
  | 'bad-header'
  | 'bad-section-table'
  | 'bad-section'
  | 'bad-manifest'
  | 'bad-weights'
  | 'hash-mismatch'
  | 'bad-signature'
  | 'wrong-key'
  | 'wrong-cpu-family'
  | 'io';

export class PackageError extends WhittleError {
  override readonly name = 'PackageError';
  readonly code: PackageErrorCode;
  readonly location: PackageErrorLocation;

  constructor(code: PackageErrorCode, message: string, location: PackageErrorLocation = {}) {
    const where: string[] = [];
    if (location.section !== undefined) where.push(`section ${location.section}`);
    if (location.layer !== undefined) where.push(`layer "${location.layer}"`);
    if (location.offset !== undefined) where.push(`offset ${location.offset}`);
    super(where.length === 0 ? message : `${message} (at ${where.join(', ')})`);
    this.code = code;
    this.location = location;
  }
}
