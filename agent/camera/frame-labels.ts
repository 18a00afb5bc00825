// The sidecar of a labelled video: the true class of every frame, so the agent can report live accuracy.
// Written by optimize/make-labelled-video.ts next to the video (<video>.labels.json); read by the agent
// (`--labels FILE`). Frame k of the decoded stream has labels[k % frames] (files are played looped).
import { readFileSync } from 'node:fs';

import { WhittleError } from '../../native/whittle-error.js';

export const FRAME_LABELS_FORMAT = 'whittle-frame-labels';
export const FRAME_LABELS_VERSION = 1;

export interface FrameLabels {
  format: typeof FRAME_LABELS_FORMAT;
  version: typeof FRAME_LABELS_VERSION;
  /** The video's file name (informative; the agent plays whatever --camera names). */
  video: string;
  fps: number;
  /** Frames in the video; labels.length. */
  frames: number;
  /** Class names, index = class; the model's labels should match them. */
  classes: string[];
  /** [frames] class index of each frame. */
  labels: number[];
  /** Where the frames came from, e.g. "fashion-mnist t10k images 0..999". */
  source: string;
}

export class FrameLabelsError extends WhittleError {
  override name = 'FrameLabelsError';
  readonly code = 'bad-frame-labels';
}

const MAX_FRAMES = 10_000_000;

/** Checks a parsed sidecar; the message names the file and the field. */
export function decodeFrameLabels(json: unknown, file: string): FrameLabels {
  const fail = (what: string): never => {
    throw new FrameLabelsError(`labels file ${file}: ${what}`);
  };
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('not a JSON object');
  const o = json as Record<string, unknown>;
  if (o.format !== FRAME_LABELS_FORMAT)
    fail(`format is ${JSON.stringify(o.format)}, expected "${FRAME_LABELS_FORMAT}"`);
  if (o.version !== FRAME_LABELS_VERSION)
    fail(`version ${JSON.stringify(o.version)} is not supported (expected 1)`);
  if (typeof o.video !== 'string') fail('video: expected a file name');
  if (typeof o.source !== 'string') fail('source: expected a string');
  if (typeof o.fps !== 'number' || !(o.fps > 0 && o.fps <= 1000)) fail('fps: expected a number in (0, 1000]');
  if (!Array.isArray(o.classes) || o.classes.length === 0 || o.classes.some((c) => typeof c !== 'string'))
    fail('classes: expected a non-empty array of names');
  const classes = o.classes as string[];
  if (!Array.isArray(o.labels) || o.labels.length === 0 || o.labels.length > MAX_FRAMES)
    fail(`labels: expected an array of 1..${MAX_FRAMES} class indices`);
  const labels = o.labels as unknown[];
  const bad = labels.findIndex(
    (l) => !Number.isInteger(l) || (l as number) < 0 || (l as number) >= classes.length,
  );
  if (bad >= 0)
    fail(`labels[${bad}] = ${JSON.stringify(labels[bad])} is not a class index below ${classes.length}`);
  if (o.frames !== labels.length)
    fail(`frames is ${JSON.stringify(o.frames)} but there are ${labels.length} labels`);
  return o as unknown as FrameLabels;
}

export function readFrameLabels(file: string): FrameLabels {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new FrameLabelsError(`cannot read labels file ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FrameLabelsError(`labels file ${file} is not JSON: ${(err as Error).message}`);
  }
  return decodeFrameLabels(json, file);
}

/** The true class of the frame with this index in the looped stream. */
export function labelOfFrame(labels: FrameLabels, index: number): number {
  return labels.labels[index % labels.frames]!;
}
