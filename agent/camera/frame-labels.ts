// The sidecar of a labelled video: the true class of every frame, so the agent can report live accuracy.
// Written by optimize/make-labelled-video.ts next to the video (<video>.labels.json); read by the agent
// (`--labels FILE`). Frame k of the decoded stream has labels[k % frames] (files are played looped).
// Before it counts anything, the agent checks the sidecar against the video it plays (its name and frame
// count) and maps its classes onto the served model's by name: a sidecar that does not fit its video is
// refused (the agent then reports no accuracy rather than a wrong one), and a class the model does not have
// makes its frames count as wrong.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

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
  /** The file could not be read at all (missing, unreadable), as opposed to read and found wrong. */
  readonly unreadable: boolean;
  constructor(message: string, options: { unreadable?: boolean } = {}) {
    super(message);
    this.unreadable = options.unreadable ?? false;
  }
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
    throw new FrameLabelsError(`cannot read labels file ${file}: ${(err as Error).message}`, {
      unreadable: true,
    });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new FrameLabelsError(`labels file ${file} is not JSON: ${(err as Error).message}`);
  }
  return decodeFrameLabels(json, file);
}

/** The true class of the frame with this index in the looped stream (an index into labels.classes). */
export function labelOfFrame(labels: FrameLabels, index: number): number {
  return labels.labels[index % labels.frames]!;
}

/** Frames in a video file: its video packets, counted by ffprobe without decoding (one packet per frame for
 * the codecs make-labelled-video writes, and what the camera's ffmpeg delivers with -fps_mode passthrough). */
export function countVideoFrames(video: string, ffprobePath = 'ffprobe'): Promise<number> {
  const args = ['-v', 'error', '-select_streams', 'v:0', '-count_packets', '-show_entries'];
  args.push('stream=nb_read_packets', '-of', 'csv=p=0', video);
  return new Promise((resolve, reject) => {
    execFile(ffprobePath, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const frames = Number(stdout.trim());
      if (err === null && Number.isInteger(frames) && frames > 0) return resolve(frames);
      const why =
        (err as NodeJS.ErrnoException | null)?.code === 'ENOENT'
          ? `ffprobe not found (${ffprobePath}); install ffmpeg`
          : stderr.trim() || `ffprobe printed "${stdout.trim()}"`;
      reject(new FrameLabelsError(`cannot count the frames of ${video}: ${why}`));
    });
  });
}

/** Refuses a sidecar that does not label this video: one naming another file, or with another frame count
 * (frame k would get another frame's label). `countFrames` is countVideoFrames unless a test swaps it. */
export async function checkLabelsFitVideo(
  labels: FrameLabels,
  file: string,
  video: string,
  countFrames: (video: string) => Promise<number> = countVideoFrames,
): Promise<void> {
  if (labels.video !== basename(video))
    throw new FrameLabelsError(
      `labels file ${file} labels the video ${labels.video}, not the camera's ${basename(video)}`,
    );
  const frames = await countFrames(video);
  if (frames !== labels.frames)
    throw new FrameLabelsError(
      `labels file ${file} labels ${labels.frames} frames but the video ${video} has ${frames}`,
    );
}

/** The ground truth of each frame in the served model's terms. */
export interface FrameTruth {
  /** The model's class index of the frame's true class, or -1 when the model has no such class: a
   * prediction never equals -1, so such a frame counts as wrong. */
  modelClassOf: (index: number) => number;
  /** The name of the frame's true class, as the sidecar gives it. */
  nameOf: (index: number) => string;
  /** Sidecar classes that label some frames but are not classes of the model, with how many frames. */
  foreign: { name: string; frames: number }[];
}

/** Maps the sidecar's classes onto the model's by name (a model whose manifest names no classes, whose labels
 * are "0", "1", ..., is matched by index). Refuses a sidecar none of whose labelled classes the model knows:
 * it labels something else, and every frame would count as wrong. */
export function truthForModel(
  labels: FrameLabels,
  file: string,
  modelClasses: readonly string[],
): FrameTruth {
  const unnamed = modelClasses.every((name, i) => name === String(i));
  const toModel = labels.classes.map((name, i) =>
    unnamed ? (i < modelClasses.length ? i : -1) : modelClasses.indexOf(name),
  );
  const framesOf = new Array<number>(labels.classes.length).fill(0);
  for (const label of labels.labels) framesOf[label]!++;
  const foreign = labels.classes
    .map((name, i) => ({ name, frames: framesOf[i]!, known: toModel[i]! >= 0 }))
    .filter((c) => c.frames > 0 && !c.known)
    .map(({ name, frames }) => ({ name, frames }));
  if (foreign.reduce((n, c) => n + c.frames, 0) === labels.frames)
    throw new FrameLabelsError(
      `labels file ${file}: none of its classes (${labels.classes.slice(0, 5).join(', ')}${labels.classes.length > 5 ? ', ...' : ''}) is a class of the model (${modelClasses.slice(0, 5).join(', ')}${modelClasses.length > 5 ? ', ...' : ''})`,
    );
  return {
    modelClassOf: (index) => toModel[labelOfFrame(labels, index)]!,
    nameOf: (index) => labels.classes[labelOfFrame(labels, index)]!,
    foreign,
  };
}
