// The budgets a command fits a model to, as `whittle optimize` and `whittle nas` take them: --latency-ms X
// (per frame), --ram-kb Y (peak RAM), --size-kb Z (package file), at least one of them; and a limit, not a
// budget: --max-accuracy-drop P, the most top-1 points the compression may lose against fp32.
import type { Budgets } from '../../optimize/plan/planner.js';
import { CommandUsageError } from './command-error.js';
import { numberOption } from './train.js';

/** The budget options, spread into a command's parseArgs options. */
export const BUDGET_OPTIONS = {
  'latency-ms': { type: 'string' },
  'ram-kb': { type: 'string' },
  'size-kb': { type: 'string' },
  'max-accuracy-drop': { type: 'string' },
} as const;

export interface BudgetValues {
  'latency-ms'?: string | undefined;
  'ram-kb'?: string | undefined;
  'size-kb'?: string | undefined;
  'max-accuracy-drop'?: string | undefined;
}

/** The budgets named in `values` (KB as bytes); a usage error naming `usage` when none is. */
export function parseBudgets(values: BudgetValues, usage: string): Budgets {
  const latencyMs = numberOption(values['latency-ms'], '--latency-ms', false, 0);
  const ramKb = numberOption(values['ram-kb'], '--ram-kb', false, 0);
  const sizeKb = numberOption(values['size-kb'], '--size-kb', false, 0);
  const dropPoints = numberOption(values['max-accuracy-drop'], '--max-accuracy-drop', false, 0);
  if (dropPoints !== undefined && dropPoints > 100)
    throw new CommandUsageError(`--max-accuracy-drop is in points of top-1 (0-100), got ${dropPoints}`);
  if (latencyMs === undefined && ramKb === undefined && sizeKb === undefined)
    throw new CommandUsageError(`give at least one budget: --latency-ms, --ram-kb, --size-kb; ${usage}`);
  return {
    ...(latencyMs === undefined ? {} : { latencyMs }),
    ...(ramKb === undefined ? {} : { ramBytes: ramKb * 1024 }),
    ...(sizeKb === undefined ? {} : { packageBytes: sizeKb * 1024 }),
    ...(dropPoints === undefined ? {} : { accuracyDrop: dropPoints / 100 }),
  };
}
