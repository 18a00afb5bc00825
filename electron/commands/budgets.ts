// The budgets a command fits a model to, as `whittle optimize` and `whittle nas` take them: --latency-ms X
// (per frame), --ram-kb Y (peak RAM), --size-kb Z (package file), at least one of them.
import type { Budgets } from '../../optimize/plan/planner.js';
import { CommandUsageError } from './command-error.js';
import { numberOption } from './train.js';

/** The budget options, spread into a command's parseArgs options. */
export const BUDGET_OPTIONS = {
  'latency-ms': { type: 'string' },
  'ram-kb': { type: 'string' },
  'size-kb': { type: 'string' },
} as const;

export interface BudgetValues {
  'latency-ms'?: string | undefined;
  'ram-kb'?: string | undefined;
  'size-kb'?: string | undefined;
}

/** The budgets named in `values` (KB as bytes); a usage error naming `usage` when none is. */
export function parseBudgets(values: BudgetValues, usage: string): Budgets {
  const latencyMs = numberOption(values['latency-ms'], '--latency-ms', false, 0);
  const ramKb = numberOption(values['ram-kb'], '--ram-kb', false, 0);
  const sizeKb = numberOption(values['size-kb'], '--size-kb', false, 0);
  if (latencyMs === undefined && ramKb === undefined && sizeKb === undefined)
    throw new CommandUsageError(`give at least one budget: --latency-ms, --ram-kb, --size-kb; ${usage}`);
  return {
    ...(latencyMs === undefined ? {} : { latencyMs }),
    ...(ramKb === undefined ? {} : { ramBytes: ramKb * 1024 }),
    ...(sizeKb === undefined ? {} : { packageBytes: sizeKb * 1024 }),
  };
}
