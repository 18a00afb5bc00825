// Picks the fastest TensorFlow.js backend present: tfjs-node ('tensorflow') when it is installed (it is
// never a dependency: its install downloads libtensorflow), else 'whittle-native' (the cpu backend with
// native kernels), else the pure-JS 'cpu' backend, which is two orders of magnitude slower.
import * as tf from '@tensorflow/tfjs';

import { NATIVE_BACKEND, registerNativeBackend } from './native-backend.js';

export type TrainingBackend = 'tensorflow' | typeof NATIVE_BACKEND | 'cpu';

/** Why the preferred backend could not be used; the caller shows it. */
export interface BackendChoice {
  backend: TrainingBackend;
  notes: string[];
}

async function tryTfjsNode(): Promise<boolean> {
  // A variable specifier: the package is optional and absent from package.json on purpose.
  const name = '@tensorflow/tfjs-node';
  try {
    await import(name);
    return tf.findBackend('tensorflow') !== undefined || (await tf.setBackend('tensorflow'));
  } catch {
    return false;
  }
}

/** Selects a backend; `prefer` forces one (and fails over with a note when it cannot load). */
export async function selectTrainingBackend(
  prefer: TrainingBackend | 'auto' = 'auto',
): Promise<BackendChoice> {
  const notes: string[] = [];
  // Production mode: no per-op debug checks, and no console banner recommending tfjs-node.
  tf.enableProdMode();
  if (prefer === 'auto' || prefer === 'tensorflow') {
    if (await tryTfjsNode()) {
      await tf.setBackend('tensorflow');
      return { backend: 'tensorflow', notes };
    }
    if (prefer === 'tensorflow') notes.push('@tensorflow/tfjs-node is not installed');
  }
  if (prefer !== 'cpu') {
    try {
      registerNativeBackend();
      await tf.setBackend(NATIVE_BACKEND);
      return { backend: NATIVE_BACKEND, notes };
    } catch (error) {
      notes.push(`native training kernels unavailable: ${(error as Error).message}`);
    }
  }
  await tf.setBackend('cpu');
  if (prefer !== 'cpu') notes.push('training on the pure-JS cpu backend: expect about 10 images/s');
  return { backend: 'cpu', notes };
}
