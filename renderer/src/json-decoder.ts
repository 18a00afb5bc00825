// Runtime decoders for JSON that reaches the renderer from the core. The renderer imports only types from
// the contract (no zod in the bundle), so these small combinators restate its schemas; each composed
// decoder is annotated with the contract type, so the compiler reports any drift between the two.

/** Where a value failed to decode and why, e.g. `devices[0].stats.fps: expected a number >= 0, got "x"`. */
export class DecodeError extends Error {
  override readonly name = 'DecodeError';
  constructor(
    readonly path: string,
    readonly expected: string,
    received: unknown,
  ) {
    super(`${path || '(root)'}: expected ${expected}, got ${describe(received)}`);
  }
}

/** Returns the decoded value or throws a DecodeError; `path` names the value in error messages. */
export type Decoder<T> = (value: unknown, path: string) => T;

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

export function string(maxLength: number): Decoder<string> {
  return (value, path) => {
    if (typeof value !== 'string' || value.length > maxLength) {
      throw new DecodeError(path, `a string of at most ${maxLength} characters`, value);
    }
    return value;
  };
}

export const boolean: Decoder<boolean> = (value, path) => {
  if (typeof value !== 'boolean') throw new DecodeError(path, 'a boolean', value);
  return value;
};

export const finiteNumber: Decoder<number> = (value, path) => {
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new DecodeError(path, 'a number', value);
  return value;
};

export const nonNegativeNumber: Decoder<number> = (value, path) => {
  if (finiteNumber(value, path) < 0) throw new DecodeError(path, 'a number >= 0', value);
  return value as number;
};

export const nonNegativeInteger: Decoder<number> = (value, path) => {
  if (!Number.isInteger(nonNegativeNumber(value, path)))
    throw new DecodeError(path, 'an integer >= 0', value);
  return value as number;
};

export function literal<const T extends string | number | boolean>(expected: T): Decoder<T> {
  return (value, path) => {
    if (value !== expected) throw new DecodeError(path, JSON.stringify(expected), value);
    return expected;
  };
}

export function nullable<T>(decoder: Decoder<T>): Decoder<T | null> {
  return (value, path) => (value === null ? null : decoder(value, path));
}

/** For optional object members: absent (or undefined) decodes to undefined and the key is left out. */
export function optional<T>(decoder: Decoder<T>): Decoder<T | undefined> {
  return (value, path) => (value === undefined ? undefined : decoder(value, path));
}

export function array<T>(item: Decoder<T>, maxLength: number): Decoder<T[]> {
  return (value, path) => {
    if (!Array.isArray(value) || value.length > maxLength) {
      throw new DecodeError(path, `an array of at most ${maxLength} items`, value);
    }
    return value.map((element, index) => item(element, `${path}[${index}]`));
  };
}

type Shape = Record<string, Decoder<unknown>>;
type Decoded<S extends Shape> = { [K in keyof S]: ReturnType<S[K]> };

/** Decodes the listed members and drops any others, so unknown fields from a newer core are ignored. */
export function object<S extends Shape>(shape: S): Decoder<Decoded<S>> {
  return (value, path) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new DecodeError(path, 'an object', value);
    }
    const source = value as Record<string, unknown>;
    const result: Record<string, unknown> = {};
    for (const [key, decoder] of Object.entries(shape)) {
      const member = decoder(source[key], path ? `${path}.${key}` : key);
      if (member !== undefined) result[key] = member;
    }
    return result as Decoded<S>;
  };
}

export function oneOf<T>(tagKey: string, variants: Record<string, Decoder<T>>): Decoder<T> {
  return (value, path) => {
    const tag =
      typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[tagKey] : undefined;
    const variant = typeof tag === 'string' && Object.hasOwn(variants, tag) ? variants[tag] : undefined;
    if (variant === undefined) {
      throw new DecodeError(
        path ? `${path}.${tagKey}` : tagKey,
        `one of ${Object.keys(variants).join(', ')}`,
        tag,
      );
    }
    return variant(value, path);
  };
}

/** One of a fixed set of strings. Taking a Record keyed by the union makes the compiler insist that every
 * member of the contract's union is listed, and no other. */
export function stringUnion<T extends string>(members: Record<T, true>): Decoder<T> {
  const allowed = new Set<string>(Object.keys(members));
  return (value, path) => {
    if (typeof value !== 'string' || !allowed.has(value))
      throw new DecodeError(path, `one of ${[...allowed].join(', ')}`, value);
    return value as T;
  };
}
