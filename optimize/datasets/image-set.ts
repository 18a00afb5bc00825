// An in-memory labelled image set, stored once as bytes: [count][height][width][channels], 0 = black.
// Batches convert slices of it to float32 on the fly (see batches.ts), so the data is never held twice.
import { WhittleError } from '../../native/whittle-error.js';

export interface ImageSet {
  count: number;
  height: number;
  width: number;
  /** 1 for grey, 3 for RGB. */
  channels: number;
  /** [count][height][width][channels] pixel bytes. */
  pixels: Uint8Array;
  /** [count] class indices, each < classes.length. */
  labels: Uint8Array;
  /** Class names, index = label. */
  classes: string[];
  /** Where the set came from (file or folder names), for messages. */
  source: string;
}

/** A dataset specification or its files are unusable; the message names the file or folder. */
export class DatasetError extends WhittleError {
  override readonly name = 'DatasetError';
  readonly code = 'bad-dataset';
}

export function imageBytes(set: Pick<ImageSet, 'height' | 'width' | 'channels'>): number {
  return set.height * set.width * set.channels;
}
