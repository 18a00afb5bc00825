// The refusal of a model that uses ops an importer lacks, shared by the importers (ONNX, TFLite): one line
// per op type with its count and its first node names, then the ops the importer does support. A model
// with hundreds of unsupported nodes reads as a few lines, never a wall of names.
import { WhittleError } from '../../native/whittle-error.js';

/** How many node names each op type's line shows. */
const NAMES_SHOWN = 3;

export interface UnsupportedNode {
  name: string;
  opType: string;
}

/** "HardSigmoid ×9 (p2o.HardSigmoid.0, p2o.HardSigmoid.1, p2o.HardSigmoid.2, …)", one line per op type in
 * order of first use. */
export function unsupportedOpLines(nodes: readonly UnsupportedNode[]): string[] {
  const byType = new Map<string, string[]>();
  for (const { name, opType } of nodes) {
    const names = byType.get(opType) ?? [];
    names.push(name);
    byType.set(opType, names);
  }
  return [...byType].map(([opType, names]) => {
    const shown = names.slice(0, NAMES_SHOWN).join(', ');
    return `${opType} ×${names.length} (${shown}${names.length > NAMES_SHOWN ? ', …' : ''})`;
  });
}

/** All the op types a model uses that the importer lacks: one line per op type with its count and first
 * node names, then the supported ops. */
export class UnsupportedOpsError extends WhittleError {
  override readonly name = 'UnsupportedOpsError';
  readonly code = 'unsupported-ops';
  constructor(
    readonly nodes: UnsupportedNode[],
    supported: readonly string[],
    /** Lines the importer adds after the supported ops (the ONNX importer: the ops it folds at import). */
    notes: readonly string[] = [],
  ) {
    const lines = unsupportedOpLines(nodes);
    super(
      `the model uses ${lines.length} op type(s) the importer lacks (${nodes.length} node(s)):\n` +
        `${lines.map((line) => `  ${line}`).join('\n')}\nsupported ops: ${supported.join(', ')}` +
        notes.map((note) => `\n${note}`).join(''),
    );
  }
}
