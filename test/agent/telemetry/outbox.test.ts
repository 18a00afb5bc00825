import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';

import { Outbox, OutboxError } from '../../../agent/telemetry/outbox.js';
import { OutboxPump } from '../../../agent/telemetry/outbox-pump.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'whittle-outbox-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const record = (seq: number): string => JSON.stringify({ seq });
const seqs = (box: Outbox, from = 0, max = 1e6): number[] => box.read(from, max).map((r) => r.seq);

describe('telemetry outbox', () => {
  test('records come back in order, and the cursor and the seq survive a reopen', () => {
    const box = Outbox.open({ dir, segmentRecords: 4, maxRecords: 100 });
    for (let i = 0; i < 10; i++) box.append(record);
    assert.deepEqual(seqs(box), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(seqs(box, 6, 3), [6, 7, 8]);
    for (let s = 0; s <= 4; s++) box.ack(s);
    box.close();
    const again = Outbox.open({ dir, segmentRecords: 4, maxRecords: 100 });
    assert.equal(again.epoch, box.epoch);
    assert.equal(again.ackedThrough, 4);
    assert.equal(again.nextSeq, 10);
    assert.equal(again.pending, 5);
    assert.equal(again.append(record).seq, 10);
    again.close();
  });

  test('fully acknowledged segments are deleted, except the newest, which keeps the next seq', () => {
    const box = Outbox.open({ dir, segmentRecords: 4, maxRecords: 100, stateIntervalMs: 1e9 });
    for (let i = 0; i < 9; i++) box.append(record);
    for (let s = 0; s < 9; s++) box.ack(s);
    const segments = readdirSync(dir).filter((n) => n.startsWith('seg-'));
    assert.deepEqual(segments, ['seg-000000000008.ndjson']);
    // No close: state.json may be stale after a crash, the newest segment still says where seq is.
    const again = Outbox.open({ dir, segmentRecords: 4, maxRecords: 100 });
    assert.equal(again.nextSeq, 9);
    again.close();
  });

  test('acknowledgements that overtake each other move the cursor only over contiguous ones', () => {
    const box = Outbox.open({ dir, segmentRecords: 4, maxRecords: 100 });
    for (let i = 0; i < 5; i++) box.append(record);
    box.ack(1);
    box.ack(2);
    assert.equal(box.ackedThrough, -1);
    box.ack(0);
    assert.equal(box.ackedThrough, 2);
    box.close();
  });

  test('when full, the oldest segment is dropped and counted, and the count survives a reopen', () => {
    const lines: string[] = [];
    const box = Outbox.open({ dir, segmentRecords: 5, maxRecords: 10, log: (l) => lines.push(l) });
    for (let i = 0; i < 23; i++) box.append(record);
    assert.ok(box.pending <= 10, `pending ${box.pending}`);
    assert.equal(box.dropped, 15);
    assert.equal(seqs(box)[0], 15);
    assert.deepEqual(seqs(box), [15, 16, 17, 18, 19, 20, 21, 22]);
    assert.match(lines.join('\n'), /dropped 5 oldest records/);
    box.close();
    assert.equal(Outbox.open({ dir, segmentRecords: 5, maxRecords: 10 }).dropped, 15);
  });

  test('a torn last record (crash mid-write) is cut off and its seq reused', () => {
    const box = Outbox.open({ dir, segmentRecords: 100, maxRecords: 1000 });
    for (let i = 0; i < 3; i++) box.append(record);
    box.close();
    const seg = join(dir, 'seg-000000000000.ndjson');
    appendFileSync(seg, '{"seq":3,"half');
    const lines: string[] = [];
    const again = Outbox.open({ dir, segmentRecords: 100, maxRecords: 1000, log: (l) => lines.push(l) });
    assert.equal(again.nextSeq, 3);
    assert.match(lines.join('\n'), /torn record/);
    again.append(record);
    assert.deepEqual(
      readFileSync(seg, 'utf8')
        .trim()
        .split('\n')
        .map((l) => (JSON.parse(l) as { seq: number }).seq),
      [0, 1, 2, 3],
    );
    again.close();
  });

  test('a damaged state file starts a new epoch instead of reusing numbers', () => {
    const box = Outbox.open({ dir });
    box.append(record);
    box.close();
    writeFileSync(join(dir, 'state.json'), '{"version":1,"epo');
    const lines: string[] = [];
    const again = Outbox.open({ dir, log: (l) => lines.push(l) });
    assert.notEqual(again.epoch, box.epoch);
    assert.equal(again.nextSeq, 0);
    assert.match(lines.join('\n'), /damaged/);
    again.close();
  });

  test('bad options and oversized records are refused with typed errors', () => {
    assert.throws(() => Outbox.open({ dir, segmentRecords: 0 }), OutboxError);
    assert.throws(
      () => Outbox.open({ dir, segmentRecords: 10, maxRecords: 15 }),
      (e: Error) => e instanceof OutboxError && /maxRecords/.test(e.message),
    );
    const box = Outbox.open({ dir });
    assert.throws(() => box.append(() => 'x'.repeat(70_000)), /exceeds/);
    assert.throws(() => box.append(() => 'a\nb'), /newline/);
    assert.equal(box.nextSeq, 0, 'a refused record uses no seq');
    box.close();
  });

  test('an outbox directory that cannot be created is refused naming it', () => {
    const file = join(dir, 'file');
    writeFileSync(file, '');
    assert.throws(
      () => Outbox.open({ dir: join(file, 'sub') }),
      (e: Error) => e instanceof OutboxError && e.message.includes(join(file, 'sub')),
    );
  });
});

describe('outbox pump', () => {
  test('sends in order with a bounded window, only while connected, and acknowledges on success', async () => {
    const box = Outbox.open({ dir, segmentRecords: 4, maxRecords: 100 });
    const wire: number[] = [];
    const pending: (() => void)[] = [];
    let maxInFlight = 0;
    const pump = new OutboxPump({
      outbox: box,
      window: 3,
      publish: (payload) =>
        new Promise<void>((resolve) => {
          wire.push((JSON.parse(payload) as { seq: number }).seq);
          pending.push(resolve);
          maxInFlight = Math.max(maxInFlight, pending.length);
        }),
    });
    for (let i = 0; i < 7; i++) box.append(record);
    pump.pump();
    assert.deepEqual(wire, [], 'nothing leaves while disconnected');
    pump.setConnected(true);
    while (pending.length > 0) {
      pending.shift()!();
      await new Promise((r) => setImmediate(r));
    }
    assert.deepEqual(wire, [0, 1, 2, 3, 4, 5, 6]);
    assert.equal(maxInFlight, 3);
    assert.equal(box.ackedThrough, 6);
    box.close();
  });

  test('a publish that fails is sent again', async () => {
    const box = Outbox.open({ dir });
    let fail = true;
    const wire: number[] = [];
    const pump = new OutboxPump({
      outbox: box,
      window: 1,
      log: () => undefined,
      publish: (payload) => {
        wire.push((JSON.parse(payload) as { seq: number }).seq);
        if (fail) {
          fail = false;
          return Promise.reject(new Error('client closed'));
        }
        return Promise.resolve();
      },
    });
    pump.setConnected(true);
    box.append(record);
    pump.pump();
    await new Promise((r) => setImmediate(r));
    box.append(record);
    pump.pump();
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(wire, [0, 0, 1]);
    assert.equal(box.ackedThrough, 1);
    box.close();
  });
});
