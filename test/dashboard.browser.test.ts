import { existsSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startTestRelay, type TestRelay } from './helpers/test-relay.js';

/**
 * The dashboard in a real browser: Debian's chromium driven by playwright-core
 * (no browser download). Without chromium the suite is skipped with a reason,
 * unless CI or REQUIRE_BROWSER is set: then it fails.
 */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const HAS_CHROMIUM = existsSync(CHROMIUM);
const BROWSER_REQUIRED = Boolean(process.env.CI || process.env.REQUIRE_BROWSER);
const SKIP_REASON = `no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH); set REQUIRE_BROWSER=1 to fail instead`;
const SHOTS = fileURLToPath(new URL('../test-output/', import.meta.url));
const TOKEN = 'browser-test-token-0123456789';

if (!HAS_CHROMIUM && !BROWSER_REQUIRED) process.stderr.write(`dashboard.browser.test.ts: skipped: ${SKIP_REASON}\n`);

describe.runIf(!HAS_CHROMIUM && BROWSER_REQUIRED)('dashboard browser tests (CI)', () => {
  it('find chromium', () => {
    expect.fail(`CI or REQUIRE_BROWSER is set but there is ${SKIP_REASON.split(';')[0]}; .ci/run installs it`);
  });
});

/** A downstream that records every body and answers 200, or 503 while `failing`. */
interface Downstream {
  url: string;
  bodies: string[];
  failing: boolean;
  close(): Promise<void>;
}

async function startDownstream(): Promise<Downstream> {
  const state = { bodies: [] as string[], failing: false };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      state.bodies.push(Buffer.concat(chunks).toString('utf8'));
      res.writeHead(state.failing ? 503 : 200, { 'content-type': 'application/json' });
      res.end(state.failing ? '{"down":true}' : '{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
}

describe.skipIf(!HAS_CHROMIUM)(`dashboard in a real browser (${HAS_CHROMIUM ? 'chromium' : `skipped: ${SKIP_REASON}`})`, () => {
  let browser: Browser;
  const cleanups: Array<() => Promise<void>> = [];

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--headless=new'] });
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  /** A relay in front of a fresh downstream. */
  async function relay(env: Record<string, string> = {}): Promise<{ t: TestRelay; downstream: Downstream }> {
    const downstream = await startDownstream();
    cleanups.push(() => downstream.close());
    const t = await startTestRelay({ env: { DOWNSTREAM_URL: downstream.url, ...env } });
    cleanups.push(() => t.close());
    return { t, downstream };
  }

  /** A page on the relay's dashboard; `problems` collects console errors and uncaught exceptions. */
  async function open(t: TestRelay, viewport = { width: 1280, height: 900 }): Promise<{ page: Page; context: BrowserContext; problems: string[] }> {
    const context = await browser.newContext({ viewport });
    cleanups.push(() => context.close());
    const page = await context.newPage();
    const problems: string[] = [];
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    await page.goto(`${t.url}/dashboard`);
    return { page, context, problems };
  }

  const live = (page: Page) => page.locator('#connection[data-state="live"]').waitFor({ timeout: 5_000 });

  /** `count` requests through the relay, `parallel` at a time; answers are not checked. */
  async function send(t: TestRelay, count: number, body = '{"n":1}', parallel = 5): Promise<void> {
    for (let sent = 0; sent < count; sent += parallel) {
      await Promise.all(
        Array.from({ length: Math.min(parallel, count - sent) }, () =>
          fetch(`${t.url}/relay`, { method: 'POST', body, headers: { 'content-type': 'application/json' } }).then((res) => res.arrayBuffer()),
        ),
      );
    }
  }

  it('loads with no console error, and its charts move under traffic, on a laptop and a phone', async () => {
    const { t } = await relay();
    const { page, problems } = await open(t);
    await live(page);
    const rpsLine = page.locator('#chart-rps path[data-series="rps"]');
    await expect.poll(() => rpsLine.getAttribute('data-points'), { timeout: 3_000 }).not.toBe('0');
    const idle = await rpsLine.getAttribute('d');
    expect(await page.locator('#overview [data-field=rps]').textContent()).toBe('0');

    // About 60 req/s for 2.5 s: the next events see the totals move.
    const until = Date.now() + 2_500;
    while (Date.now() < until) {
      await send(t, 6);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await expect.poll(async () => Number(await page.locator('#overview [data-field=rps]').textContent()), { timeout: 3_000 }).toBeGreaterThan(5);
    expect(await rpsLine.getAttribute('d')).not.toBe(idle);
    // The line rises above the chart's floor: some point is higher (smaller y) than the idle ones.
    const ys = ((await rpsLine.getAttribute('d')) ?? '').match(/,[\d.]+/g)!.map((y) => Number(y.slice(1)));
    expect(Math.min(...ys)).toBeLessThan(Math.max(...ys));
    expect(await page.locator('[data-route="default"] [data-field="rps"]').textContent()).not.toBe('–');
    await page.screenshot({ path: `${SHOTS}dashboard-traffic.png`, fullPage: true });

    await page.setViewportSize({ width: 390, height: 844 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    // Readable on a phone: nothing wider than the screen, so no sideways scrolling of the page.
    expect(await page.evaluate<number>('document.documentElement.scrollWidth')).toBeLessThanOrEqual(390);
    await page.screenshot({ path: `${SHOTS}dashboard-phone.png`, fullPage: true });
    expect(problems).toEqual([]);
  });

  it("turns the route's breaker red within 2 s of an outage opening it, on the badge and the timeline", async () => {
    // Detection is what this times, so the breaker is not forced: a downstream failing every call opens it after 5 calls.
    const { t, downstream } = await relay({ BREAKER_MIN_CALLS: '5', RETRY_MAX_ATTEMPTS: '2' });
    const { page, problems } = await open(t);
    await live(page);
    await expect(page.locator('[data-route="default"] .route-head .badge').getAttribute('data-breaker')).resolves.toBe('closed');
    let openedAt: number | undefined;
    t.relay.events.on('breaker', (change) => {
      if (change.to === 'open') openedAt ??= Date.now();
    });
    downstream.failing = true;
    for (let round = 0; round < 10 && openedAt === undefined; round++) await send(t, 5);
    expect(openedAt).toBeDefined();
    await page.locator('[data-route="default"] .route-head .badge[data-breaker="open"]').waitFor({ timeout: 2_000 });
    expect(Date.now() - openedAt!).toBeLessThan(2_000);
    expect(await page.locator('[data-route="default"] .route-head .badge').textContent()).toBe('open');
    await page.locator('[data-route="default"] svg.timeline rect[data-state="open"]').first().waitFor({ timeout: 1_500 });
    await page.screenshot({ path: `${SHOTS}dashboard-outage.png`, fullPage: true });

    // The downstream is back: the next probe closes the breaker and the timeline shows the way back.
    downstream.failing = false;
    const recoverUntil = Date.now() + 6_000;
    while (Date.now() < recoverUntil && (await page.locator('[data-route="default"] .route-head .badge[data-breaker="closed"]').count()) === 0) {
      await send(t, 3);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await page.locator('[data-route="default"] .route-head .badge[data-breaker="closed"]').waitFor({ timeout: 2_000 });
    expect(await page.locator('[data-route="default"] svg.timeline line.transition').count()).toBeGreaterThanOrEqual(1);
    await page.screenshot({ path: `${SHOTS}dashboard-recovered.png`, fullPage: true });
    expect(problems).toEqual([]);
  });

  it('shows a DLQ entry as text, and replaying it from the table delivers it', async () => {
    const { t, downstream } = await relay({ RETRY_MAX_ATTEMPTS: '2' });
    const { page, problems } = await open(t);
    await live(page);
    downstream.failing = true;
    // A body that would run script if the page ever parsed values as HTML.
    const marker = `<img src=x onerror="window.pwned=1">-${Date.now()}`;
    const failed = await fetch(`${t.url}/relay`, { method: 'POST', body: JSON.stringify({ marker }), headers: { 'content-type': 'application/json' } });
    expect(failed.status).toBe(502);
    const { dlqId } = (await failed.json()) as { dlqId: string };
    downstream.failing = false;

    const row = page.locator(`#dlq-rows tr[data-id="${dlqId}"]`);
    await row.waitFor({ timeout: 3_000 });
    expect(await page.locator('#overview [data-field=dlq]').textContent()).toBe('1');
    await row.locator('button[data-action="open"]').click();
    const detail = page.locator('#dlq-detail pre.entry');
    await detail.waitFor();
    expect(await detail.textContent()).toContain(JSON.stringify(marker).slice(1, -1));
    expect(await page.locator('#dlq-detail img').count()).toBe(0);
    expect(await page.evaluate<unknown>('window.pwned')).toBeUndefined();
    await page.screenshot({ path: `${SHOTS}dashboard-dlq.png`, fullPage: true });

    const before = downstream.bodies.length;
    await row.locator('button[data-action="replay"]').click();
    await page.locator('#dlq-message[data-kind="ok"]').waitFor({ timeout: 5_000 });
    expect(await page.locator('#dlq-message').textContent()).toMatch(/delivered, status 200/);
    expect(downstream.bodies.slice(before)).toEqual([JSON.stringify({ marker })]);
    await row.waitFor({ state: 'detached', timeout: 3_000 });
    await expect.poll(() => page.locator('#overview [data-field=dlq]').textContent(), { timeout: 2_500 }).toBe('0');
    await page.screenshot({ path: `${SHOTS}dashboard-dlq-replayed.png`, fullPage: true });
    expect(problems).toEqual([]);
  });

  it("forces a route's breaker open and back to auto, and pauses and resumes it, from the route card, with the token", async () => {
    const { t, downstream } = await relay({ ADMIN_TOKEN: TOKEN });
    const { page, problems } = await open(t);
    const adminCalls: string[] = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname.startsWith('/admin/')) adminCalls.push(`${request.method()} ${new URL(request.url()).pathname} ${request.postData() ?? ''} ${request.headers().authorization ?? 'no token'}`);
    });
    await page.locator('#token-form').waitFor();
    await page.fill('#token-input', TOKEN);
    await page.click('#token-form button[type="submit"]');
    await live(page);
    const card = page.locator('[data-route="default"]');
    const badge = card.locator('.route-head .badge[data-breaker]');
    const button = (action: string) => card.locator(`[data-controls] button[data-action="${action}"]`);
    const relayCall = () => fetch(`${t.url}/relay`, { method: 'POST', body: '{"n":1}', headers: { 'content-type': 'application/json' } });
    await button('breaker-open').waitFor();
    expect(await badge.getAttribute('data-breaker')).toBe('closed');

    // Stopping a route takes a second click: one stray click changes nothing.
    await button('breaker-open').click();
    expect(await button('breaker-open').textContent()).toBe('open?');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(adminCalls).toEqual([]);
    await button('breaker-open').click();
    await card.locator('.route-head .badge[data-breaker="open"]').waitFor({ timeout: 2_000 });
    expect(await badge.textContent()).toBe('open (forced)');
    expect(await button('breaker-open').getAttribute('aria-pressed')).toBe('true');
    expect(adminCalls).toEqual([`POST /admin/routes/default/breaker {"state":"open"} Bearer ${TOKEN}`]);
    const before = downstream.bodies.length;
    const refused = await relayCall();
    expect(refused.status).toBe(503);
    expect(await refused.json()).toMatchObject({ code: 'CIRCUIT_OPEN' });
    expect(downstream.bodies.length).toBe(before);
    await page.screenshot({ path: `${SHOTS}dashboard-forced-open.png`, fullPage: true });

    await button('breaker-auto').click();
    await card.locator('.route-head .badge[data-breaker="closed"]').waitFor({ timeout: 2_000 });
    expect(await badge.textContent()).toBe('closed');
    expect((await relayCall()).status).toBe(200);

    await button('pause').click();
    await button('pause').click();
    await page.locator('[data-route="default"][data-paused]').waitFor({ timeout: 2_000 });
    expect(await card.locator('.route-head .paused-flag').isVisible()).toBe(true);
    // A request sent while paused is held, not refused, and goes once the route resumes.
    const held = relayCall();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(downstream.bodies.length).toBe(before + 1);
    await page.screenshot({ path: `${SHOTS}dashboard-paused.png`, fullPage: true });
    await button('resume').click();
    expect((await held).status).toBe(200);
    expect(downstream.bodies.length).toBe(before + 2);
    await page.locator('[data-route="default"]:not([data-paused])').waitFor({ timeout: 2_000 });
    expect(await card.locator('.route-head .paused-flag').isVisible()).toBe(false);
    expect(adminCalls.slice(1)).toEqual([
      `POST /admin/routes/default/breaker {"state":"auto"} Bearer ${TOKEN}`,
      `POST /admin/routes/default/pause  Bearer ${TOKEN}`,
      `POST /admin/routes/default/resume  Bearer ${TOKEN}`,
    ]);

    // A token the relay no longer takes: the action fails on the card and the page asks for the token again.
    await page.evaluate(`sessionStorage.setItem('resilient-relay.adminToken', 'not-the-token-0123456789')`);
    await button('pause').click();
    await button('pause').click();
    await page.locator('#token-form').waitFor({ timeout: 2_000 });
    expect(await card.locator('[data-controls] .message[data-kind="error"]').textContent()).toMatch(/^Pause failed: /);
    expect((await relayCall()).status).toBe(200);
    expect(problems.filter((p) => !/401/.test(p))).toEqual([]);
  });

  it('with ADMIN_TOKEN asks for the token before any admin request, then works, and keeps it for the tab', async () => {
    const { t } = await relay({ ADMIN_TOKEN: TOKEN });
    const { page, problems } = await open(t);
    const adminRequests: string[] = [];
    page.on('request', (request) => {
      if (!new URL(request.url()).pathname.startsWith('/dashboard')) adminRequests.push(`${request.method()} ${request.url()} ${request.headers().authorization ?? 'no token'}`);
    });
    await page.locator('#token-form').waitFor();
    expect(await page.locator('#connection').getAttribute('data-state')).toBe('unauthorized');
    await page.screenshot({ path: `${SHOTS}dashboard-token.png` });
    expect(adminRequests).toEqual([]);

    await page.fill('#token-input', TOKEN);
    await page.click('#token-form button[type="submit"]');
    await live(page);
    await page.locator('#dlq-rows td.empty').waitFor({ timeout: 3_000 });
    expect(await page.locator('#token-panel').isHidden()).toBe(true);
    expect(adminRequests.length).toBeGreaterThanOrEqual(2);
    for (const request of adminRequests) {
      expect(request).toMatch(new RegExp(`Bearer ${TOKEN}$`));
      expect(request).not.toContain(`?${TOKEN}`);
    }
    expect(await page.evaluate<string[]>('Object.values(sessionStorage)')).toEqual([TOKEN]);
    await page.screenshot({ path: `${SHOTS}dashboard-token-accepted.png` });

    await page.reload();
    await live(page);
    expect(await page.locator('#token-panel').isHidden()).toBe(true);
    expect(problems).toEqual([]);
  });
});
