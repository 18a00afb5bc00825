// Static memory plan: every activation tensor gets a fixed offset in one arena, and tensors whose lifetimes
// do not overlap share bytes. Lifetimes run from the node that writes a tensor (graph inputs: before the
// first node) to the last node that reads it (graph outputs: past the last node). Placement is greedy by
// size, largest first, at the lowest 64-byte aligned offset free for the whole lifetime (TFLite's arena
// planner does the same); an input and an output of one node never share, so kernels need not be in-place.

export const ARENA_ALIGNMENT = 64;

export interface PlannedTensor {
  tensor: number;
  bytes: number;
  /** Index of the writing node, -1 for graph inputs. */
  first: number;
  /** Index of the last reading node; nodes.length for graph outputs. */
  last: number;
  offset: number;
}

export interface MemoryPlan {
  tensors: PlannedTensor[];
  /** Arena size: the peak activation bytes of this plan. */
  arenaBytes: number;
  /** What the activations would take without reuse. */
  unsharedBytes: number;
}

export interface Lifetime {
  tensor: number;
  bytes: number;
  first: number;
  last: number;
}

const align = (n: number): number => Math.ceil(n / ARENA_ALIGNMENT) * ARENA_ALIGNMENT;

export function planMemory(lifetimes: readonly Lifetime[]): MemoryPlan {
  const order = [...lifetimes].sort((a, b) => b.bytes - a.bytes || a.first - b.first || a.tensor - b.tensor);
  const placed: PlannedTensor[] = [];
  for (const item of order) {
    const conflicts = placed
      .filter((p) => p.first <= item.last && item.first <= p.last)
      .sort((a, b) => a.offset - b.offset);
    let offset = 0;
    const size = align(Math.max(item.bytes, 1));
    for (const p of conflicts) {
      if (offset + size <= p.offset) break;
      offset = Math.max(offset, align(p.offset + Math.max(p.bytes, 1)));
    }
    placed.push({ ...item, offset });
  }
  placed.sort((a, b) => a.tensor - b.tensor);
  const arenaBytes = placed.reduce((max, p) => Math.max(max, align(p.offset + p.bytes)), 0);
  const unsharedBytes = placed.reduce((sum, p) => sum + align(p.bytes), 0);
  return { tensors: placed, arenaBytes, unsharedBytes };
}
