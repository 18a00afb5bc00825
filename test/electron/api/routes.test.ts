// The route table: every route is found by its own method and path, a wrong method or a malformed id is
// told apart from an unknown path, and paths built for a client match back to the same route.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { CONTRACT_SCHEMAS } from '../../../electron/api/contract.js';
import { matchRoute, routeCall, type RouteName, routePath, ROUTES } from '../../../electron/api/routes.js';

const NAMES = Object.keys(ROUTES) as RouteName[];

test('every route matches its own method and path, with its parameters', () => {
  for (const name of NAMES) {
    const path = routePath(name, { id: 'cam-1.a_b' });
    const match = matchRoute(ROUTES[name].method, path);
    assert.equal(match.kind, 'route', `${name}: ${path}`);
    if (match.kind !== 'route') continue;
    assert.equal(match.name, name);
    assert.deepEqual(match.params, ROUTES[name].path.includes(':id') ? { id: 'cam-1.a_b' } : {});
  }
});

test('each method and path pair names one route only', () => {
  const keys = NAMES.map((name) => `${ROUTES[name].method} ${ROUTES[name].path}`);
  assert.equal(new Set(keys).size, keys.length);
});

test('a known path with another method is a wrong method; an unknown one, or a bad id, is no route', () => {
  assert.deepEqual(matchRoute('DELETE', '/api/packages'), { kind: 'wrong-method' });
  assert.deepEqual(matchRoute('POST', '/api/deployments/d1/events'), { kind: 'wrong-method' });
  assert.deepEqual(matchRoute('HEAD', '/api/health'), { kind: 'wrong-method' });
  assert.deepEqual(matchRoute('GET', '/api/nothing'), { kind: 'no-route' });
  assert.deepEqual(matchRoute('GET', '/api/deployments/bad id'), { kind: 'no-route' });
  assert.deepEqual(matchRoute('GET', `/api/devices/${'x'.repeat(65)}/snapshot`), { kind: 'no-route' });
  assert.deepEqual(matchRoute('GET', '/api/health/'), { kind: 'no-route' });
});

test('paths percent-encode their parameters', () => {
  assert.equal(routePath('snapshot', { id: 'a/b c' }), '/api/devices/a%2Fb%20c/snapshot');
});

test('a call carries the path, the content type its route declares, and no body where it takes none', () => {
  assert.deepEqual(routeCall('startDeployment', {}, '{}'), {
    path: '/api/deployments',
    method: 'POST',
    contentType: 'application/json',
    body: '{}',
    response: 'DeploymentView',
  });
  const bytes = new Uint8Array([1, 2]);
  assert.deepEqual(routeCall('addPackage', {}, bytes), {
    path: '/api/packages',
    method: 'POST',
    contentType: 'application/octet-stream',
    body: bytes,
    response: 'PackageView',
  });
  assert.deepEqual(routeCall('deploymentEvents', { id: 'd 1' }, 'ignored'), {
    path: '/api/deployments/d%201/events',
    method: 'GET',
    contentType: undefined,
    body: undefined,
    response: 'DeploymentEventsResponse',
  });
});

test('every body the table names has a schema in the contract', () => {
  for (const name of NAMES) {
    const { request, response } = ROUTES[name];
    assert.ok(Object.hasOwn(CONTRACT_SCHEMAS, response), `${name}: ${response}`);
    if (request.kind === 'json')
      assert.ok(Object.hasOwn(CONTRACT_SCHEMAS, request.body), `${name}: ${request.body}`);
  }
});
