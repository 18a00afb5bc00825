import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { TargetUrlError } from '../../../electron/core/provisioning/errors.js';
import { parseTarget } from '../../../electron/core/provisioning/target-url.js';

describe('device addresses', () => {
  test('ssh:// with and without a port, IPv6 in brackets', () => {
    assert.deepEqual(parseTarget('ssh://pi@10.0.0.7'), {
      kind: 'ssh',
      username: 'pi',
      host: '10.0.0.7',
      port: 22,
    });
    assert.deepEqual(parseTarget('ssh://root@board.local:2222'), {
      kind: 'ssh',
      username: 'root',
      host: 'board.local',
      port: 2222,
    });
    assert.deepEqual(parseTarget('ssh://u@[fe80::1]:22'), {
      kind: 'ssh',
      username: 'u',
      host: 'fe80::1',
      port: 22,
    });
  });

  test('serial:// with baud and user, 115200 by default', () => {
    assert.deepEqual(parseTarget('serial:///dev/ttyUSB0'), {
      kind: 'serial',
      path: '/dev/ttyUSB0',
      baudRate: 115200,
    });
    assert.deepEqual(parseTarget('serial:///dev/ttyAMA0?baud=9600&user=pi'), {
      kind: 'serial',
      path: '/dev/ttyAMA0',
      baudRate: 9600,
      username: 'pi',
    });
  });

  for (const [input, message] of [
    ['10.0.0.7', /expected ssh:\/\/user@host\[:port\] or serial:/],
    ['ssh://10.0.0.7', /names no user/],
    ['ssh://pi:secret@10.0.0.7', /no password in the address.*--password-stdin/],
    ['ssh://pi@10.0.0.7:0', /port must be 1-65535/],
    ['ssh://pi@10.0.0.7:70000', /not a valid ssh:\/\/ address/],
    ['ssh://pi@10.0.0.7/home', /no path or query/],
    ['ssh://p;rm@host', /not a valid user name/],
    ['serial://dev/ttyUSB0', /three slashes/],
    ['serial:///dev/ttyUSB0?baud=12345', /baud must be one of .*115200/],
    ['serial:///dev/ttyUSB0?baud=fast', /baud must be one of/],
    ['serial:///dev/ttyUSB0?parity=even', /unknown option "parity"/],
    ['serial:///dev/ttyUSB0?user=a%20b', /not a valid user name/],
  ] as const) {
    test(`"${input}" is refused`, () => {
      assert.throws(
        () => parseTarget(input),
        (err: unknown) => err instanceof TargetUrlError && message.test(err.message),
      );
    });
  }
});
