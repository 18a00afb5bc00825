// Integration: the camera through the real ffmpeg.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { CameraError, FfmpegCamera } from '../../../agent/camera/ffmpeg-source.js';
import { rawFramesInput } from '../../../agent/camera/preprocess.js';
import { writeTestMedia } from '../../support/test-media.js';

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'whittle-camera-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end);
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('ffmpeg camera', () => {
  test('centre crop keeps the middle of a wide picture; stretch keeps all of it', async () => {
    // 80×40: a white 40×40 square in the middle of black sides.
    const raw = Buffer.alloc(80 * 40);
    for (let y = 0; y < 40; y++) raw.fill(255, y * 80 + 20, y * 80 + 60);
    writeFileSync(join(dir, 'wide.gray'), raw);
    const png = join(dir, 'wide.png');
    execFileSync('ffmpeg', [
      ...['-v', 'error', '-y'],
      ...rawFramesInput({ width: 80, height: 40, channels: 1 }, join(dir, 'wide.gray')),
      png,
    ]);
    const mean = (b: Buffer, from: number, to: number): number => {
      let s = 0;
      for (let i = from; i < to; i++) s += b[i]!;
      return s / (to - from);
    };
    for (const resize of ['center-crop', 'stretch'] as const) {
      const cam = new FfmpegCamera({
        source: png,
        width: 20,
        height: 20,
        channels: 1,
        fps: 10,
        preprocessing: { resize },
      });
      try {
        await cam.start();
        const frame = await cam.nextFrame();
        assert.equal(frame.length, 400);
        // Left quarter of the first row: white when cropped to the centre, black when stretched.
        const left = mean(frame, 0, 4);
        if (resize === 'center-crop') assert.ok(left > 240 && mean(frame, 0, 400) > 240, `crop ${left}`);
        else assert.ok(left < 15 && mean(frame, 8, 12) > 240, `stretch ${left}`);
      } finally {
        cam.stop();
      }
    }
  });

  test('a slow consumer never sees latency grow: older frames are dropped', async () => {
    const fps = 50;
    const cam = new FfmpegCamera({ source: 'testsrc', width: 28, height: 28, channels: 1, fps });
    await cam.start();
    const first = await cam.next();
    const t0 = first.receivedAt - (first.index * 1000) / fps;
    const lags: number[] = [];
    try {
      const end = performance.now() + 4000;
      while (performance.now() < end) {
        const f = await cam.next();
        // How far behind the source's own clock the consumer is when it gets the frame.
        lags.push(performance.now() - t0 - (f.index * 1000) / fps);
        busyWait(120); // a model far slower than the camera, blocking the event loop as inference does
      }
    } finally {
      cam.stop();
    }
    assert.ok(lags.length >= 20, `${lags.length} frames`);
    const early = Math.max(...lags.slice(0, 5));
    const late = Math.max(...lags.slice(-5));
    assert.ok(late < early + 100, `lag grew from ${early.toFixed(0)} ms to ${late.toFixed(0)} ms`);
    assert.ok(late < 250, `lag ${late.toFixed(0)} ms`);
    assert.ok(
      cam.framesDropped > cam.framesReceived / 2,
      `${cam.framesDropped} of ${cam.framesReceived} dropped`,
    );
  });

  test('snapshots are whole JPEGs on the side pipe', async () => {
    const cam = new FfmpegCamera({
      source: 'testsrc',
      width: 28,
      height: 28,
      channels: 1,
      fps: 25,
      snapshot: { everySeconds: 1, width: 160 },
    });
    const jpegs: Buffer[] = [];
    cam.onSnapshot = (j) => jpegs.push(j);
    await cam.start();
    try {
      const end = Date.now() + 4000;
      while (jpegs.length < 2 && Date.now() < end) await cam.nextFrame();
    } finally {
      cam.stop();
    }
    assert.ok(jpegs.length >= 2, `${jpegs.length} snapshots`);
    for (const j of jpegs) {
      assert.deepEqual([...j.subarray(0, 3)], [0xff, 0xd8, 0xff]);
      assert.deepEqual([...j.subarray(-2)], [0xff, 0xd9]);
      assert.ok(j.length > 500 && j.length < 64 * 1024, `${j.length} bytes`);
    }
  });

  test('an HTTP stream is read', async () => {
    // A real HTTP server streaming MPEG-TS, as IP cameras and media servers do.
    const ts = join(dir, 'cam.ts');
    writeTestMedia('testsrc2=size=160x120:rate=25:duration=2', ['-c:v', 'mpeg2video', '-f', 'mpegts'], ts);
    const body = readFileSync(ts);
    const server = createHttpServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'video/mp2t' });
      let sent = 0;
      const timer = setInterval(() => {
        if (res.destroyed || sent > 20) return clearInterval(timer);
        res.write(body);
        sent++;
      }, 500);
      res.on('close', () => clearInterval(timer));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const cam = new FfmpegCamera({
      source: `http://127.0.0.1:${port}/cam.ts`,
      width: 28,
      height: 28,
      channels: 3,
      fps: 25,
    });
    try {
      await cam.start();
      const frame = await cam.nextFrame();
      assert.equal(frame.length, 28 * 28 * 3);
    } finally {
      cam.stop();
      server.closeAllConnections();
      server.close();
    }
  });

  test('an unreachable stream and an unknown scheme fail naming the source', async () => {
    const port = await freePort();
    const cam = new FfmpegCamera({
      source: `http://127.0.0.1:${port}/none`,
      width: 28,
      height: 28,
      channels: 1,
      fps: 25,
    });
    await assert.rejects(
      cam.start(),
      (e: Error) => e instanceof CameraError && e.message.includes(`127.0.0.1:${port}/none`),
    );
    cam.stop();
    const ftp = new FfmpegCamera({ source: 'ftp://x/y', width: 28, height: 28, channels: 1, fps: 25 });
    await assert.rejects(ftp.start(), /unsupported scheme ftp/);
  });
});
