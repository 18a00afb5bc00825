// A bounded on-disk queue of telemetry records that survives disconnections and agent restarts.
//
// Layout of the directory:
//   state.json                  {"version":1,"epoch":"…","ackedThrough":N,"dropped":N}, replaced atomically
//   seg-<firstSeq, 12 digits>.ndjson   records firstSeq, firstSeq+1, … one JSON text per line
//
// Invariants:
// - Sequence numbers are contiguous within an epoch: line i of a segment holds seq firstSeq + i, and the
//   next segment starts where the previous one ended. Records are read back (and sent) in seq order.
// - The newest segment is never deleted, not even when fully acknowledged: its name and line count give
//   the next seq after a restart, so a seq is never handed out twice in one epoch even if state.json is
//   stale. An empty newest segment (a crash during its first append) still carries its firstSeq.
// - state.json is written before a segment is deleted, so a deleted record is always covered by
//   ackedThrough (acknowledged) or by dropped.
// - Bounded: when more than maxRecords records are unacknowledged, the oldest segment is dropped whole
//   and `dropped` grows by its unacknowledged records (drop-oldest: fresh telemetry matters more).
//
// fsync policy: every append is one write() of a whole line followed by fdatasync(), so a record the
// agent has seen appended survives power loss (one fsync a second at the stats rate). A crash in the
// middle of a write leaves a partial last line, which open() cuts off; that record was never sent, so
// its seq is simply reused. state.json (the acknowledgement cursor) is persisted at most every
// `stateIntervalMs` and on close: after a crash a few acknowledged records are sent again, and the
// manager stores each (device, epoch, seq) once.
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  fdatasyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

import { WhittleError } from '../../native/whittle-error.js';
import { fsyncDirSync, writeFileAtomicSync } from '../deploy/atomic-file.js';

export interface OutboxOptions {
  dir: string;
  /** Most unacknowledged records kept; beyond it the oldest segment is dropped. Default a day at 1/s. */
  maxRecords?: number;
  /** Records per segment file; the drop granularity. Default 600 (ten minutes at 1/s). */
  segmentRecords?: number;
  /** Longest interval between persisting the acknowledgement cursor, ms. Default 5000. */
  stateIntervalMs?: number;
  log?: (line: string) => void;
}

export interface OutboxRecord {
  seq: number;
  /** One JSON text, no newline. */
  payload: string;
}

export class OutboxError extends WhittleError {
  override name = 'OutboxError';
  readonly code = 'bad-outbox';
}

/** One record's line may not exceed this; a stats record is about a kilobyte. */
export const MAX_RECORD_BYTES = 64 * 1024;

const STATE_FILE = 'state.json';
const SEGMENT_RE = /^seg-(\d{12})\.ndjson$/;

interface Segment {
  firstSeq: number;
  count: number;
}

interface OutboxState {
  version: 1;
  epoch: string;
  ackedThrough: number;
  dropped: number;
}

function segmentName(firstSeq: number): string {
  return `seg-${String(firstSeq).padStart(12, '0')}.ndjson`;
}

export class Outbox {
  readonly dir: string;
  private readonly maxRecords: number;
  private readonly segmentRecords: number;
  private readonly stateIntervalMs: number;
  private readonly log: (line: string) => void;
  private state: OutboxState;
  private segments: Segment[];
  private nextSeqValue: number;
  /** Append descriptor of the newest segment, opened lazily. */
  private fd: number | null = null;
  /** Acks above ackedThrough + 1 (acknowledgements may overtake each other). */
  private readonly ackedAhead = new Set<number>();
  private stateWrittenAt = 0;
  private stateDirty = false;
  /** The lines of one segment, so reading a batch does not re-read its file per record. */
  private cache: { firstSeq: number; lines: string[] } | null = null;

  private constructor(options: OutboxOptions) {
    this.dir = options.dir;
    this.maxRecords = options.maxRecords ?? 86_400;
    this.segmentRecords = options.segmentRecords ?? 600;
    this.stateIntervalMs = options.stateIntervalMs ?? 5000;
    this.log = options.log ?? (() => undefined);
    if (!Number.isInteger(this.segmentRecords) || this.segmentRecords < 1)
      throw new OutboxError(
        `Expected a positive integer for segmentRecords but received ${this.segmentRecords}`,
      );
    if (!Number.isInteger(this.maxRecords) || this.maxRecords < 2 * this.segmentRecords)
      throw new OutboxError(
        `Expected an integer of at least 2 × segmentRecords (${2 * this.segmentRecords}) for maxRecords but received ${this.maxRecords}`,
      );
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new OutboxError(`cannot create telemetry outbox ${this.dir}: ${(err as Error).message}`);
    }
    this.state = this.readState();
    this.segments = this.scanSegments();
    const newest = this.segments.at(-1);
    this.nextSeqValue = Math.max(newest ? newest.firstSeq + newest.count : 0, this.state.ackedThrough + 1);
  }

  /** Opens (or creates) the outbox in options.dir, repairing a torn last record. */
  static open(options: OutboxOptions): Outbox {
    return new Outbox(options);
  }

  get epoch(): string {
    return this.state.epoch;
  }

  /** Records dropped unsent in this epoch because the outbox was full. */
  get dropped(): number {
    return this.state.dropped;
  }

  get nextSeq(): number {
    return this.nextSeqValue;
  }

  get ackedThrough(): number {
    return this.state.ackedThrough;
  }

  /** Records appended and not yet acknowledged. */
  get pending(): number {
    return this.nextSeqValue - 1 - this.state.ackedThrough;
  }

  /** Appends one record, durably; make() receives the record's seq and returns its JSON text. */
  append(make: (seq: number) => string): OutboxRecord {
    const seq = this.nextSeqValue;
    const payload = make(seq);
    if (payload.includes('\n')) throw new OutboxError('a telemetry record may not contain a newline');
    const line = Buffer.from(`${payload}\n`, 'utf8');
    if (line.length > MAX_RECORD_BYTES)
      throw new OutboxError(`a telemetry record of ${line.length} bytes exceeds ${MAX_RECORD_BYTES}`);
    let newest = this.segments.at(-1);
    if (!newest || newest.count >= this.segmentRecords || newest.firstSeq + newest.count !== seq) {
      this.closeFd();
      newest = { firstSeq: seq, count: 0 };
      this.segments.push(newest);
    }
    if (this.fd === null) {
      this.fd = openSync(join(this.dir, segmentName(newest.firstSeq)), 'a', 0o600);
      if (newest.count === 0) fsyncDirSync(this.dir);
    }
    let off = 0;
    while (off < line.length) off += writeSync(this.fd, line, off, line.length - off);
    fdatasyncSync(this.fd);
    newest.count++;
    this.nextSeqValue = seq + 1;
    if (this.cache?.firstSeq === newest.firstSeq) this.cache.lines.push(payload);
    this.enforceBound();
    return { seq, payload };
  }

  /** Up to max records with seq ≥ fromSeq, in order (starting later if older ones were dropped). */
  read(fromSeq: number, max: number): OutboxRecord[] {
    const out: OutboxRecord[] = [];
    for (const segment of this.segments) {
      if (out.length >= max) break;
      const end = segment.firstSeq + segment.count;
      if (end <= fromSeq || segment.count === 0) continue;
      const lines = this.linesOf(segment);
      for (let seq = Math.max(fromSeq, segment.firstSeq); seq < end && out.length < max; seq++) {
        const payload = lines[seq - segment.firstSeq];
        if (payload === undefined) break;
        out.push({ seq, payload });
      }
    }
    return out;
  }

  /** The broker acknowledged seq; the cursor moves over every contiguous acknowledgement. */
  ack(seq: number): void {
    if (seq <= this.state.ackedThrough) return;
    this.ackedAhead.add(seq);
    let moved = false;
    while (this.ackedAhead.delete(this.state.ackedThrough + 1)) {
      this.state.ackedThrough++;
      moved = true;
    }
    if (!moved) return;
    this.stateDirty = true;
    // Delete fully acknowledged segments except the newest (see the invariants above).
    const deletable = this.segments.filter(
      (s, i) => i < this.segments.length - 1 && s.firstSeq + s.count - 1 <= this.state.ackedThrough,
    );
    if (deletable.length > 0) {
      this.writeState();
      for (const s of deletable) this.unlinkSegment(s);
      this.segments = this.segments.filter((s) => !deletable.includes(s));
      fsyncDirSync(this.dir);
    } else if (Date.now() - this.stateWrittenAt >= this.stateIntervalMs) {
      this.writeState();
    }
  }

  /** Persists the cursor now if it moved. */
  flush(): void {
    if (this.stateDirty) this.writeState();
  }

  close(): void {
    this.flush();
    this.closeFd();
  }

  private enforceBound(): void {
    while (this.pending > this.maxRecords && this.segments.length > 1) {
      const oldest = this.segments[0]!;
      const last = oldest.firstSeq + oldest.count - 1;
      const lost = Math.max(0, last - Math.max(this.state.ackedThrough, oldest.firstSeq - 1));
      this.state.dropped += lost;
      this.state.ackedThrough = Math.max(this.state.ackedThrough, last);
      for (const s of this.ackedAhead) if (s <= last) this.ackedAhead.delete(s);
      this.writeState();
      this.unlinkSegment(oldest);
      this.segments.shift();
      fsyncDirSync(this.dir);
      this.log(`telemetry outbox full: dropped ${lost} oldest records (${this.state.dropped} in all)`);
    }
  }

  private linesOf(segment: Segment): string[] {
    if (this.cache?.firstSeq === segment.firstSeq) return this.cache.lines;
    const text = readFileSync(join(this.dir, segmentName(segment.firstSeq)), 'utf8');
    const lines = text.split('\n').slice(0, segment.count);
    this.cache = { firstSeq: segment.firstSeq, lines };
    return lines;
  }

  private unlinkSegment(segment: Segment): void {
    if (this.cache?.firstSeq === segment.firstSeq) this.cache = null;
    try {
      unlinkSync(join(this.dir, segmentName(segment.firstSeq)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
  }

  private closeFd(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  private readState(): OutboxState {
    const path = join(this.dir, STATE_FILE);
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new OutboxError(`cannot read ${path}: ${(err as Error).message}`);
      return this.freshState();
    }
    try {
      const parsed = JSON.parse(text) as Partial<OutboxState>;
      if (
        parsed.version === 1 &&
        typeof parsed.epoch === 'string' &&
        /^[A-Za-z0-9_-]{1,32}$/.test(parsed.epoch) &&
        Number.isInteger(parsed.ackedThrough) &&
        (parsed.ackedThrough ?? -2) >= -1 &&
        Number.isInteger(parsed.dropped) &&
        (parsed.dropped ?? -1) >= 0
      )
        return parsed as OutboxState;
    } catch {
      // fall through
    }
    // state.json is only ever replaced atomically, so this is disk damage: the old epoch's sequence
    // cannot be trusted, start a new one (the manager keys records by epoch, so nothing collides).
    this.log(`telemetry outbox: ${path} is damaged; starting a new epoch and discarding queued records`);
    for (const name of readdirSync(this.dir)) if (SEGMENT_RE.test(name)) unlinkSync(join(this.dir, name));
    return this.freshState();
  }

  private freshState(): OutboxState {
    const state: OutboxState = {
      version: 1,
      epoch: randomBytes(9).toString('base64url'),
      ackedThrough: -1,
      dropped: 0,
    };
    this.state = state;
    this.writeState();
    return state;
  }

  private writeState(): void {
    writeFileAtomicSync(join(this.dir, STATE_FILE), JSON.stringify(this.state), 0o600);
    this.stateWrittenAt = Date.now();
    this.stateDirty = false;
  }

  /** Lists segments in seq order, cutting a torn last line; segments below the cursor are deleted. */
  private scanSegments(): Segment[] {
    const firsts = readdirSync(this.dir)
      .map((name) => SEGMENT_RE.exec(name)?.[1])
      .filter((m): m is string => m !== undefined)
      .map(Number)
      .sort((a, b) => a - b);
    const segments: Segment[] = [];
    for (const [i, firstSeq] of firsts.entries()) {
      const path = join(this.dir, segmentName(firstSeq));
      const bytes = readFileSync(path);
      const end = bytes.lastIndexOf(0x0a) + 1;
      if (end < bytes.length) {
        const fd = openSync(path, 'r+');
        try {
          ftruncateSync(fd, end);
          fdatasyncSync(fd);
        } finally {
          closeSync(fd);
        }
        this.log(`telemetry outbox: cut a torn record at the end of ${path}`);
      }
      let count = 0;
      for (let k = 0; k < end; k++) if (bytes[k] === 0x0a) count++;
      const prev = segments.at(-1);
      if (prev && prev.firstSeq + prev.count !== firstSeq) {
        // A gap can only come from a torn append followed by more appends under a reused seq, which the
        // contiguity rule forbids; refuse rather than send records under the wrong numbers.
        throw new OutboxError(
          `telemetry outbox ${this.dir}: ${segmentName(firstSeq)} does not follow ${segmentName(prev.firstSeq)} (${prev.count} records); remove the directory to start a new epoch`,
        );
      }
      const isNewest = i === firsts.length - 1;
      if (!isNewest && firstSeq + count - 1 <= this.state.ackedThrough) {
        unlinkSync(path);
        continue;
      }
      segments.push({ firstSeq, count });
    }
    return segments;
  }
}
