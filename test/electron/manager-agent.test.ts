// Integration: a real manager core, a real agent process, real MQTT, ffmpeg's test camera.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { after, before, describe, test } from 'node:test';

import { WebSocket } from 'ws';

import type { DevicesResponse, LiveMessage } from '../../electron/api/contract.js';
import { type Stack, startStack, waitFor } from '../support/stack.js';

async function devices(stack: Stack, token = stack.token): Promise<DevicesResponse> {
  const res = await fetch(`${stack.apiUrl}/api/devices`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(res.status, 200);
  return (await res.json()) as DevicesResponse;
}

describe('manager and agent over MQTT', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await stack.stop();
  });

  test('stats with FPS above 0 arrive within 10 s of starting', async () => {
    const started = Date.now();
    const device = await waitFor('stats from the agent', 10_000, async () => {
      const d = (await devices(stack)).devices.find((x) => x.id === stack.agentId);
      return d?.online && d.stats && d.stats.fps > 0 ? d : undefined;
    }).catch((err: Error) => assert.fail(`${err.message}\n${stack.logs.join('\n')}`));
    assert.ok(Date.now() - started < 10_000);
    assert.equal(device.info?.arch, process.arch);
    assert.equal(device.info?.camera, 'testsrc');
    const s = device.stats!;
    assert.ok(s.latencyMs.p50 > 0 && s.latencyMs.p95 >= s.latencyMs.p50, JSON.stringify(s.latencyMs));
    assert.ok(s.rssBytes !== undefined && s.rssBytes > 10 * 2 ** 20, `rss ${s.rssBytes}`);
    assert.ok(s.cpuPercent > 0, `cpu ${s.cpuPercent}`);
    assert.ok(s.prediction && s.prediction.label.length > 0);
  });

  test('the WebSocket sends a snapshot, then live updates with increasing sequence numbers', async () => {
    const ws = new WebSocket(
      `${stack.apiUrl.replace('http', 'ws')}/api/live`,
      [`whittle-token.${stack.token}`],
      {
        headers: { host: new URL(stack.apiUrl).host },
      },
    );
    const seqs: number[] = [];
    let snapshot = false;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no live updates within 5 s')), 5000);
      ws.on('message', (data: Buffer) => {
        const msg = JSON.parse(data.toString()) as LiveMessage;
        if (msg.type === 'snapshot') snapshot = true;
        else if (msg.type === 'device' && msg.device.id === stack.agentId && msg.device.stats)
          seqs.push(msg.device.stats.seq);
        if (seqs.length >= 2) {
          clearTimeout(timer);
          resolve();
        }
      });
      ws.on('error', reject);
    });
    ws.close();
    assert.ok(snapshot, 'first message is a snapshot');
    assert.ok(seqs[1]! > seqs[0]!, `sequence ${seqs.join(',')}`);
  });

  test('SIGKILL of the agent marks the device offline', async () => {
    stack.killAgent();
    await waitFor('the device to go offline', 10_000, async () => {
      const d = (await devices(stack)).devices.find((x) => x.id === stack.agentId);
      return d && !d.online ? d : undefined;
    });
  });
});

describe('API authentication', () => {
  let stack: Stack;
  before(async () => {
    stack = await startStack({ withAgent: false });
  });
  after(async () => {
    await stack.stop();
  });

  for (const [what, headers] of [
    ['a missing token', {}],
    ['a wrong token', { authorization: 'Bearer not-the-token' }],
    ['a token of another scheme', { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` }],
  ] as const) {
    test(`${what} gets 401`, async () => {
      for (const route of ['/api/devices', '/api/health', '/api/nothing']) {
        const res = await fetch(`${stack.apiUrl}${route}`, { headers });
        assert.equal(res.status, 401, route);
        assert.match(((await res.json()) as { error: string }).error, /token/);
      }
    });
  }

  test('a WebSocket without the token is refused with 401', async () => {
    const status = await new Promise<number>((resolve) => {
      const ws = new WebSocket(`${stack.apiUrl.replace('http', 'ws')}/api/live`, ['whittle-token.wrong']);
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('error', () => resolve(-1));
    });
    assert.equal(status, 401);
  });

  test('the right token is accepted, and the UI is served with a strict CSP', async () => {
    const res = await fetch(`${stack.apiUrl}/api/health`, {
      headers: { authorization: `Bearer ${stack.token}` },
    });
    assert.equal(res.status, 200);
    const page = await fetch(`${stack.apiUrl}/`);
    assert.equal(page.status, 200);
    const csp = page.headers.get('content-security-policy') ?? '';
    assert.match(csp, /script-src 'self'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  });

  test('a foreign Host header is refused (DNS rebinding)', async () => {
    const { request } = await import('node:http');
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(`${stack.apiUrl}/api/health`, {
        headers: { host: 'evil.example:80', authorization: `Bearer ${stack.token}` },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(status, 421);
  });

  test('a path outside the UI folder is not served', async () => {
    const res = await fetch(`${stack.apiUrl}/..%2f..%2fpackage.json`);
    assert.equal(res.status, 404);
  });
});

/** Runs a bin/ command to completion (or until `until` matches its output), returning what it printed. */
function run(
  bin: 'whittle' | 'whittle-agent',
  args: string[],
  opts: { until?: RegExp; timeoutMs?: number } = {},
): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [`bin/${bin}.js`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${bin} ${args.join(' ')} did not finish in time; output:\n${output}`));
    }, opts.timeoutMs ?? 15_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      if (opts.until?.test(output)) child.kill('SIGTERM');
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
  });
}

describe('bad input', () => {
  test('the manager refuses a port already in use, naming it', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as { port: number }).port;
    try {
      const { code, output } = await run('whittle', [
        'serve',
        '--port',
        String(taken),
        '--mqtt-port',
        '0',
        '--data-dir',
        '/tmp/whittle-test-port',
      ]);
      assert.equal(code, 1);
      assert.match(output, new RegExp(`port ${taken} \\(HTTP API and UI\\).*already in use.*--port`));
    } finally {
      blocker.close();
    }
  });

  test('an agent that cannot reach the broker retries with growing delays and says so', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const closedPort = (probe.address() as { port: number }).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const { output } = await run(
      'whittle-agent',
      ['run', '--broker', `mqtt://127.0.0.1:${closedPort}`, '--device-id', 'lonely', '--password', 'x'],
      { until: /(retrying in [\d.]+ s[\s\S]*){3}/, timeoutMs: 20_000 },
    );
    const delays = [
      ...output.matchAll(/cannot reach broker mqtt:\/\/127\.0\.0\.1:\d+; retrying in ([\d.]+) s/g),
    ].map((m) => Number(m[1]));
    assert.ok(delays.length >= 3, output);
    assert.ok(delays[2]! > delays[0]!, `delays ${delays.join(', ')} should grow`);
  });

  test('an agent with a camera source that does not exist fails naming it', async () => {
    const { code, output } = await run('whittle-agent', [
      'run',
      '--camera',
      '/dev/video77',
      '--password',
      'x',
    ]);
    assert.equal(code, 1);
    assert.match(output, /camera source \/dev\/video77 does not exist/);
  });

  test('an agent with wrong credentials is refused by the broker and says why', async () => {
    const stack = await startStack({ withAgent: false });
    try {
      const { output } = await run(
        'whittle-agent',
        [
          'run',
          '--broker',
          `mqtt://127.0.0.1:${stack.core.broker.port}`,
          '--device-id',
          'intruder',
          '--password',
          'guess',
        ],
        { until: /refused the credentials/, timeoutMs: 15_000 },
      );
      assert.match(output, /broker refused the credentials of device intruder/);
      assert.equal((await devices(stack)).devices.length, 0);
    } finally {
      await stack.stop();
    }
  });

  test('an invalid agent config file is refused naming the field', async () => {
    const { writeFileSync } = await import('node:fs');
    writeFileSync('/tmp/whittle-bad-agent.json', JSON.stringify({ broker: 'http://nope', fps: -1 }));
    const { code, output } = await run('whittle-agent', ['run', '--config', '/tmp/whittle-bad-agent.json']);
    assert.equal(code, 1);
    assert.match(output, /broker: expected mqtt:\/\/host:port/);
    assert.match(output, /fps/);
  });

  test('--help lists the commands of both programs', async () => {
    const manager = await run('whittle', ['--help']);
    assert.equal(manager.code, 0);
    for (const c of ['demo', 'serve', 'credentials'])
      assert.match(manager.output, new RegExp(`^  ${c}`, 'm'));
    const agent = await run('whittle-agent', ['--help']);
    assert.equal(agent.code, 0);
    assert.match(agent.output, /^ {2}run/m);
  });

  test('a subcommand with --help or -h prints its own options and runs nothing', async () => {
    for (const [command, flag, line] of [
      ['train', '--help', /--lr-schedule cosine\|step\|constant/],
      ['quantize', '-h', /--calibration DATA/],
      ['deploy', '--help', /--device ID/],
      ['import', '--help', /import MODEL --out PKG/],
      ['device', '--help', /device add ADDRESS/],
    ] as const) {
      const shown = await run('whittle', [command, flag]);
      assert.equal(shown.code, 0, shown.output);
      assert.match(shown.output, new RegExp(`^Usage: whittle ${command} `));
      assert.match(shown.output, line);
    }
  });
});
