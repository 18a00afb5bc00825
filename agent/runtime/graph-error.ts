// Errors of the runtime: a graph that cannot run (bad attributes, shapes that do not fit, an op or number
// format the runtime lacks), a memory plan over budget, and bad inputs at run time.
import { whittleError } from '../../native/whittle-error.js';

export class GraphError extends whittleError('GraphError', 'bad-graph') {
  readonly layer: string | undefined;
  constructor(message: string, layer?: string) {
    super(layer === undefined ? message : `layer "${layer}": ${message}`);
    this.layer = layer;
  }
}

export class MemoryBudgetError extends whittleError('MemoryBudgetError', 'over-memory-budget') {
  constructor(
    readonly neededBytes: number,
    readonly budgetBytes: number,
    detail: string,
  ) {
    super(
      `the model needs ${neededBytes} bytes (${detail}) but the memory budget is ${budgetBytes} bytes; ` +
        `choose a smaller model or batch, or raise the budget`,
    );
  }
}

export class InputError extends whittleError('InputError', 'bad-input') {}
