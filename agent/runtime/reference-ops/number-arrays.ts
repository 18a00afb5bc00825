// The element views the reference ops read and write: any typed array or number[], fp32 or integer values,
// so that one loop serves every tensor type.

/** Numbers read by index. */
export type Numbers = { readonly [index: number]: number; readonly length: number };
/** Numbers written by index. */
export type Writable = { [index: number]: number; readonly length: number };
