// Decoding of what the core sends, with checkers generated from the contract's own schemas
// (electron/api/json-schemas.ts): no limit is restated here. A message that breaks them is rejected whole,
// never half-applied.
import type { ContractBody, ContractBodyName, LiveMessage } from '../../electron/api/contract.js';
import { type Checked, checkJson } from '../../electron/api/json-schema-check.js';
import { CONTRACT_JSON_SCHEMAS } from '../../electron/api/json-schemas.js';

export type Decoded<T> = Checked<T>;

/** Characters of one WebSocket message; a snapshot of the most devices the contract allows fits inside. */
export const MAX_MESSAGE_CHARS = 16 * 1024 * 1024;

/** Decodes a parsed body of the contract by its name (electron/api/contract.ts). */
export function decodeBody<N extends ContractBodyName>(name: N, json: unknown): Decoded<ContractBody<N>> {
  return checkJson<ContractBody<N>>(CONTRACT_JSON_SCHEMAS, name, json);
}

/** Decodes one WebSocket text frame. Binary frames and non-JSON text are rejected, not thrown. */
export function decodeLiveMessage(data: unknown): Decoded<LiveMessage> {
  if (typeof data !== 'string') return { ok: false, reason: 'expected a text frame, got a binary one' };
  if (data.length > MAX_MESSAGE_CHARS)
    return { ok: false, reason: `message of ${data.length} characters is too long` };
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return { ok: false, reason: 'message is not JSON' };
  }
  return decodeBody('LiveMessage', json);
}
