// The kernel library's number formats, in a module of its own that imports nothing, so that schemas the
// renderer type-checks (the API contract's latency tables) can name them.
/** Number formats of the kernel library: the per-layer `format` of a node. */
export const NUMBER_FORMATS = [
  'f32',
  'int8',
  'fixed16',
  'fixed8',
  'binary',
  'xnor',
  'ternary',
  'sparse',
  'codebook',
  'hashed',
  /** Pruned and shared (Deep Compression): weights stored as sparse-codebook, run on the sparse kernels. */
  'sparse-codebook',
] as const;
export type NumberFormat = (typeof NUMBER_FORMATS)[number];
