// The UI end to end: the real core, a real agent and a real browser (the system's Chromium, headless).
// What a user would notice: their device shows up online with live figures, the figures move without a
// reload, the device's camera picture shows with its prediction, a model deployed from the fleet deploy view
// reaches the device, a wrong link shows "unauthorized" and no data, a dead agent turns offline and back online
// when its supervisor restarts it, a labelled camera shows its live accuracy (an unlabelled one none), and the
// page logs no errors (a Content-Security-Policy violation is one).
import assert from 'node:assert/strict';
import { after, before, describe, test, type TestContext } from 'node:test';

import { type Browser, chromium, type ConsoleMessage, type Page } from 'playwright-core';

import type { PackageView } from '../../electron/api/contract.js';
import { managerSigningKeys } from '../../electron/core/provisioning/signing-key.js';
import { demoPackage } from '../support/packages.js';
import { type Stack, startStack, waitFor } from '../support/stack.js';

const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--headless',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

/** What a page reported that a user (or the CSP) would count as a fault. */
interface PageFaults {
  errors: string[];
}

/** Records console errors, uncaught exceptions and CSP violations; the init script sees violations that
 * Chromium reports only as DOM events (e.g. from a report-only policy). */
async function watchFaults(page: Page): Promise<PageFaults> {
  const faults: PageFaults = { errors: [] };
  page.on('console', (message: ConsoleMessage) => {
    if (message.type() === 'error') faults.errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error: Error) => faults.errors.push(`uncaught: ${error.message}`));
  await page.exposeFunction('__whittleReportCsp', (text: string) => faults.errors.push(`csp: ${text}`));
  // A string, not a function: this file is compiled without the DOM library.
  await page.addInitScript(`document.addEventListener('securitypolicyviolation', (event) => {
    window.__whittleReportCsp(event.violatedDirective + ' blocked ' + (event.blockedURI || 'inline') +
      ' at ' + event.sourceFile + ':' + event.lineNumber);
  });`);
  return faults;
}

/** Polls `check` until it returns true; fails with `what` after `timeoutMs`. */
async function waitUntil(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Waits until the element with this test id has exactly this text. */
async function waitForText(page: Page, testId: string, text: string, timeoutMs: number): Promise<void> {
  await page
    .getByTestId(testId)
    .filter({ hasText: new RegExp(`^${text}$`) })
    .waitFor({ timeout: timeoutMs });
}

/** Sets a marker on window that only survives if the page is never reloaded; returns its check. */
async function markNoReload(page: Page): Promise<() => Promise<boolean>> {
  await page.evaluate('window.whittleNoReload = true');
  return async () => (await page.evaluate('window.whittleNoReload === true')) === true;
}

async function textOf(page: Page, testId: string): Promise<string> {
  return ((await page.getByTestId(testId).textContent()) ?? '').trim();
}

describe('UI', () => {
  let stack: Stack;
  let browser: Browser;

  /** Opens a page for `body` and always closes it; on failure, adds the stack's last log lines to the
   * report, since the cause (an agent that could not start, say) is usually there, not in the page. */
  async function withPage(t: TestContext, body: (page: Page) => Promise<void>): Promise<void> {
    const page = await browser.newPage();
    try {
      await body(page);
    } catch (error) {
      t.diagnostic(`last lines logged by the stack:\n${stack.logs.slice(-40).join('\n')}`);
      throw error;
    } finally {
      await page.close();
    }
  }

  before(async () => {
    stack = await startStack({ withAgent: true });
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  });

  after(async () => {
    // Browser first: its reconnect attempts would otherwise race the stack's shutdown.
    await browser?.close();
    await stack?.stop();
  });

  test('shows the local device online with live figures that update without a reload', async (t) => {
    await withPage(t, async (page) => {
      const faults = await watchFaults(page);
      await page.goto(stack.uiUrl);
      assert.equal(await page.title(), 'Whittle');

      const id = stack.agentId;
      await waitForText(page, `device-status-${id}`, 'online', 15_000);
      await page.locator('[data-testid="connection-state"][data-state="live"]').waitFor({ timeout: 15_000 });
      await waitUntil(
        'FPS above 0',
        15_000,
        async () => Number.parseFloat(await textOf(page, `device-fps-${id}`)) > 0,
      );

      const notReloaded = await markNoReload(page);
      // The agent publishes a record a second, and the row carries the record number it shows (data-seq):
      // it must move on at least twice in ~6 s. FPS text alone is no proof, as a steady "30.0" is a
      // legitimate reading; nor is "last seen", which the page's own clock refreshes.
      const seqs = new Set<string>();
      await waitUntil('3 different records in the row', 6_500, async () => {
        seqs.add((await page.getByTestId(`device-row-${id}`).getAttribute('data-seq')) ?? '');
        const fps = await textOf(page, `device-fps-${id}`);
        assert.ok(Number.parseFloat(fps) > 0, `FPS should stay above 0, read "${fps}"`);
        return seqs.size >= 3;
      });
      assert.ok(await notReloaded(), 'the page reloaded');
      // ffmpeg's test pattern has no labels: no accuracy, rather than a made-up one.
      assert.equal(await textOf(page, `device-accuracy-${id}`), '—');

      assert.deepEqual(faults.errors, [], 'the page reported errors');
    });
  });

  test("shows the device's latest camera snapshot with its prediction", async (t) => {
    await withPage(t, async (page) => {
      const faults = await watchFaults(page);
      await page.goto(stack.uiUrl);
      await waitForText(page, `device-status-${stack.agentId}`, 'online', 15_000);
      // The agent sends a snapshot every 5 s by default; the panel fetches the newest every 2 s.
      const image = page.getByTestId('camera-image');
      await image.waitFor({ timeout: 20_000 });
      const src = (await image.getAttribute('src')) ?? '';
      assert.match(src, /^data:image\/jpeg;base64,\/9j\//);
      // The picture must really decode as an image (a broken JPEG has naturalWidth 0).
      await waitUntil(
        'the snapshot to decode',
        5_000,
        async () =>
          (await page.evaluate(
            `(() => { const img = document.querySelector('[data-testid="camera-image"]');
               return img !== null && img.complete && img.naturalWidth > 0; })()`,
          )) === true,
      );
      const served = stack.core.registry.snapshot(stack.agentId);
      assert.ok(served?.prediction, 'the agent sent a prediction with its snapshot');
      assert.match(await textOf(page, 'camera-prediction'), /\d+%/);
      assert.deepEqual(faults.errors, [], 'the page reported errors');
    });
  });

  test('deploys a package to the device from the fleet deploy view', async (t) => {
    await withPage(t, async (page) => {
      const faults = await watchFaults(page);
      // The package file is added through the page's file input; the core checks it and the page selects it.
      const keys = managerSigningKeys(stack.dataDir);
      const bytes = demoPackage(keys.privateKey, { id: 'fashion-ui', version: '7' });
      await page.goto(stack.uiUrl);
      // A damaged file is refused by the core with its reason, shown next to the input; nothing is added.
      const damaged = Buffer.from(bytes);
      damaged[damaged.length - 100] = damaged[damaged.length - 100]! ^ 0x01;
      await page
        .getByTestId('package-upload')
        .setInputFiles({ name: 'damaged.whittle', mimeType: 'application/octet-stream', buffer: damaged });
      await page.getByTestId('upload-error').waitFor({ timeout: 15_000 });
      assert.match(await textOf(page, 'upload-error'), /^damaged\.whittle: /);
      assert.match(await textOf(page, 'upload-error'), /SHA-256|hash/i);
      await page
        .getByTestId('package-upload')
        .setInputFiles({ name: 'fashion-ui-7.whittle', mimeType: 'application/octet-stream', buffer: bytes });
      const pkg = await waitFor('the uploaded package in the core', 15_000, () =>
        stack.core.deployments.packages().find((p) => p.modelId === 'fashion-ui' && p.modelVersion === '7'),
      );
      const choice = page.getByTestId(`package-${pkg.sha256.slice(0, 12)}`).locator('input');
      await choice.waitFor({ timeout: 10_000 });
      assert.ok(await choice.isChecked(), 'the uploaded package is selected');
      assert.equal(
        await page.getByTestId('upload-error').count(),
        0,
        'the error of the damaged file is gone',
      );
      const id = stack.agentId;
      await waitForText(page, `device-status-${id}`, 'online', 15_000);
      await page.getByTestId(`deploy-device-${id}`).check();
      await page.getByTestId('deploy-button').click();
      await waitForText(page, `deployment-phase-${id}`, 'committed', 60_000).catch(async (error: Error) => {
        const reason = await textOf(page, `deployment-reason-${id}`).catch(() => '?');
        throw new Error(`${error.message}; phase ${await textOf(page, `deployment-phase-${id}`)}: ${reason}`);
      });
      assert.deepEqual(
        stack.core.deployments.list().map((d) => [d.package.sha256, d.succeeded]),
        [[pkg.sha256, true]],
      );
      // An older version without "rollback": the device refuses, and the page shows its reason.
      const older = await fetch(`${stack.apiUrl}/api/packages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${stack.token}`, 'content-type': 'application/octet-stream' },
        body: demoPackage(keys.privateKey, { id: 'fashion-ui', version: '6' }),
      });
      const olderPkg = (await older.json()) as PackageView;
      await page
        .getByTestId(`package-${olderPkg.sha256.slice(0, 12)}`)
        .locator('input')
        .check({ timeout: 10_000 });
      await page.getByTestId('deploy-button').click();
      await waitForText(page, `deployment-phase-${id}`, 'refused', 30_000);
      assert.match(await textOf(page, `deployment-reason-${id}`), /^older-version: .*rollback/);
      // The refused upload is the only failed request (Chromium logs it); nothing else went wrong.
      assert.deepEqual(
        faults.errors.filter((e) => !/status of 422/.test(e)),
        [],
        'the page reported errors',
      );
      assert.equal(faults.errors.length, 1, faults.errors.join('\n'));
    });
  });

  for (const [name, hash] of [
    ['without a token', ''],
    ['with a wrong token', '#token=not-the-token'],
  ] as const) {
    test(`a page opened ${name} shows "unauthorized" and no devices`, async (t) => {
      await withPage(t, async (page) => {
        const pageErrors: string[] = [];
        page.on('pageerror', (error: Error) => pageErrors.push(error.message));
        await page.goto(`${stack.apiUrl}/${hash}`);
        await page
          .locator('[data-testid="connection-state"][data-state="unauthorized"]')
          .waitFor({ timeout: 10_000 });
        assert.equal(await textOf(page, 'connection-state'), 'unauthorized');
        assert.equal(await page.locator('[data-testid^="device-row-"]').count(), 0);
        // The 401 itself is logged by Chromium as a failed resource; the app must not crash on it.
        assert.deepEqual(pageErrors, []);
      });
    });
  }

  test('the row turns offline within 10 s of the agent dying, then online when it is restarted, without a reload', async (t) => {
    await withPage(t, async (page) => {
      const faults = await watchFaults(page);
      const id = stack.agentId;
      await page.goto(stack.uiUrl);
      await waitForText(page, `device-status-${id}`, 'online', 15_000);
      const notReloaded = await markNoReload(page);

      const killedAt = Date.now();
      stack.killAgent();
      await waitForText(page, `device-status-${id}`, 'offline', 10_000);
      const elapsed = Date.now() - killedAt;
      assert.ok(elapsed < 10_000, `offline after ${elapsed} ms`);
      assert.ok(await notReloaded(), 'the page reloaded');
      // The row stays, showing the device's last known state.
      assert.equal(await page.getByTestId(`device-row-${id}`).count(), 1);
      // The local agent is supervised: restarted after a back-off, it comes back online with live figures.
      await waitForText(page, `device-status-${id}`, 'online', 15_000);
      await waitUntil(
        'FPS above 0 again',
        10_000,
        async () => Number.parseFloat(await textOf(page, `device-fps-${id}`)) > 0,
      );
      assert.ok(await notReloaded(), 'the page reloaded');
      assert.deepEqual(faults.errors, [], 'the page reported errors');
    });
  });
});

describe("UI with the demo's labelled camera", () => {
  let stack: Stack;
  let browser: Browser;

  before(async () => {
    stack = await startStack({ withAgent: true, labelledVideo: true });
    browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  });

  after(async () => {
    await browser?.close();
    await stack?.stop();
  });

  test('the accuracy cell shows the windowed and the running accuracy, each labelled; the snapshot too', async () => {
    const page = await browser.newPage();
    try {
      const faults = await watchFaults(page);
      await page.goto(stack.uiUrl);
      const id = stack.agentId;
      await waitForText(page, `device-status-${id}`, 'online', 20_000);
      // Enough labelled frames that the figure is the model's (about 90 %), not the luck of a few frames.
      await waitFor('300 labelled frames', 30_000, () =>
        (stack.core.registry.get(id)?.accuracy?.running.frames ?? 0) >= 300 ? true : undefined,
      );
      const percent = async (testId: string): Promise<number> => {
        const text = await textOf(page, testId);
        assert.match(text, /^\d+\.\d %$/, `${testId} reads "${text}"`);
        return Number.parseFloat(text);
      };
      await page.getByTestId(`device-accuracy-window-${id}`).waitFor({ timeout: 10_000 });
      for (const figure of ['window', 'running']) {
        const value = await percent(`device-accuracy-${figure}-${id}`);
        assert.ok(value >= 80 && value <= 97, `${figure} accuracy ${value} % is not the model's ~90 %`);
      }
      const cell = await textOf(page, `device-accuracy-${id}`);
      assert.match(cell, /^last 30 s \d+\.\d %running \d+\.\d % of [\d,]+$/);
      // The page shows what the core counted (the cell follows the live feed: allow a record or two).
      const running = stack.core.registry.get(id)!.accuracy!.running;
      const shown = await percent(`device-accuracy-running-${id}`);
      assert.ok(Math.abs(shown - (running.correct / running.frames) * 100) < 2, `shown ${shown} %`);

      await page.getByTestId('camera-accuracy').waitFor({ timeout: 20_000 });
      assert.match(
        await textOf(page, 'camera-accuracy'),
        /^accuracy \d+\.\d % over [\d,]+ frames in the last 30 s; running \d+\.\d % over [\d,]+ frames$/,
      );
      assert.match(await textOf(page, 'camera-prediction'), /truth: /);
      assert.deepEqual(faults.errors, [], 'the page reported errors');
    } finally {
      await page.close();
    }
  });
});
