import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type Config, ConfigError, loadConfig } from '../config.js';
import { routesJsonSchemaText } from './routes-schema.js';

const PAY_KEY = 'sk_test_51HxYzAbCdEf0123456789';
const APP_TOKEN = 'app-token-0123456789abcdef';
const SECRET_ENV = { PAY_SECRET_KEY: PAY_KEY, APP_TOKEN };

/** loadConfig with ROUTES_FILE read from `text` instead of the disk. */
function load(text: string, env: Record<string, string> = {}, path = 'routes.json'): Config {
  return loadConfig({ ROUTES_FILE: path, ...SECRET_ENV, ...env }, { readFile: () => text });
}

function loadRoutes(routes: unknown[], env: Record<string, string> = {}): Config {
  return load(JSON.stringify({ routes }), env);
}

/** The ConfigError's lines for these routes. */
function mistakes(routes: unknown[], env: Record<string, string> = {}): string[] {
  try {
    loadRoutes(routes, env);
  } catch (error) {
    if (error instanceof ConfigError) return [...error.lines];
    throw error;
  }
  throw new Error('expected a ConfigError');
}

const pay = { name: 'pay', target: 'http://127.0.0.1:4101/' };

describe('routes file', () => {
  it('resolves a YAML file, filling every field it leaves out from the environment', () => {
    const yaml = [
      'routes:',
      '  - name: pay',
      '    target: http://127.0.0.1:4101/v1',
      '    methods: [get, Post]',
      '    retry: { maxAttempts: 2 }',
      '    idempotency: { generate: true }',
      '    headers:',
      '      set: { Authorization: "Bearer ${PAY_SECRET_KEY}" }',
      '      remove: [Cookie]',
      '      secret: [X-Partner-Signature]',
      '    rateLimit: { rps: 20 }',
      '    concurrency: { max: 3 }',
      '    clients: ["${APP_TOKEN}"]',
      '    fallbacks: [pay-backup]',
      '  - name: pay-backup',
      '    target: https://backup.example.test',
    ].join('\n');
    const config = load(yaml, { RETRY_BASE_DELAY_MS: '50', RATE_LIMIT_BURST: '7', BREAKER_MIN_CALLS: '30', AIMD_MIN_CONCURRENCY: '5' }, 'routes.yaml');
    const [payRoute, backup] = config.routes;
    expect(payRoute).toEqual({
      name: 'pay',
      target: 'http://127.0.0.1:4101/v1',
      methods: ['GET', 'POST'],
      timeoutMs: 5000,
      retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 2000 },
      idempotency: { header: 'Idempotency-Key', generate: true },
      headers: { set: { authorization: `Bearer ${PAY_KEY}` }, remove: ['cookie'], secret: ['x-partner-signature'] },
      rateLimit: { mode: 'enforce', canaryPercent: 10, ratePerSecond: 20, burst: 7, warmupMs: 10_000, warmupStartRatePerSecond: 5 },
      concurrency: { max: 3 },
      breaker: { ...config.breaker, minimumCalls: 30 },
      retryBudget: config.retryBudget,
      // The floor is the environment's, held under this route's own ceiling.
      aimd: { ...config.aimd, min: 3 },
      queue: { capacity: 100, lowPriorityMaxFill: 0.5 },
      clients: [APP_TOKEN],
      fallbacks: ['pay-backup'],
      fallbackUrls: [],
    });
    expect(backup).toMatchObject({ name: 'pay-backup', rateLimit: null, clients: [], fallbacks: [], headers: { set: {}, remove: [], secret: [] } });
    expect(backup!.methods).toContain('PATCH');
    expect(backup!.methods).not.toContain('TRACE');
    expect(config.downstreamUrl).toBeUndefined();
  });

  it('resolves a JSON file the same way', () => {
    const config = load(
      JSON.stringify({
        routes: [{ name: 'email', target: 'http://127.0.0.1:4103/', timeoutMs: 8000, queue: { capacity: 5 }, breaker: { mode: 'shadow', openMs: 100 } }],
      }),
      { WORKERS: '9' },
    );
    expect(config.routes).toHaveLength(1);
    expect(config.routes[0]).toMatchObject({
      name: 'email',
      timeoutMs: 8000,
      queue: { capacity: 5, lowPriorityMaxFill: 0.5 },
      concurrency: { max: 9 },
      breaker: { mode: 'shadow', openMs: 100, minimumCalls: 100, consecutiveFailures: 20, openMaxMs: 2000 },
      rateLimit: null,
    });
  });

  it('expands ${VAR} in headers.set values and clients, and reads $${ as a literal ${', () => {
    const config = loadRoutes(
      [{ ...pay, headers: { set: { 'X-Api-Key': '${PAY_SECRET_KEY}', 'X-Template': 'a $${literal} and ${A}${B}' } }, clients: ['${APP_TOKEN}', 'plain-token'] }],
      { A: 'x', B: 'y' },
    );
    expect(config.routes[0]!.headers.set).toEqual({ 'x-api-key': PAY_KEY, 'x-template': 'a ${literal} and xy' });
    expect(config.routes[0]!.clients).toEqual([APP_TOKEN, 'plain-token']);
  });

  it("takes a protection's canary percent next to its mode, else the variable's", () => {
    const [route] = loadRoutes([{ ...pay, fallbacks: [], rateLimit: { rps: 5, mode: 'canary', canaryPercent: 50 }, aimd: { mode: 'canary' } }], { AIMD_CANARY_PERCENT: '20' }).routes;
    expect(route!.rateLimit).toMatchObject({ mode: 'canary', canaryPercent: 50 });
    expect(route!.aimd).toMatchObject({ mode: 'canary', canaryPercent: 20 });
    expect(route!.breaker).toMatchObject({ mode: 'enforce', canaryPercent: 10 });
  });

  it('leaves ${VAR} alone in fields that are not expanded', () => {
    expect(loadRoutes([{ ...pay, fallbacks: [] , headers: { remove: ['X-Literal'] } }]).routes[0]!.headers.remove).toEqual(['x-literal']);
  });

  it.each<[string, unknown[], Record<string, string>, string]>([
    ['a bad number', [{ ...pay, rateLimit: { rps: -5 } }], {}, 'ROUTES_FILE routes[0] (pay) field rateLimit.rps: got -5, expected a number > 0'],
    ['a fraction of a worker', [{ ...pay, concurrency: { max: 1.5 } }], {}, 'ROUTES_FILE routes[0] (pay) field concurrency.max: got 1.5, expected a whole number'],
    ['a zero limit', [{ ...pay, queue: { lowPriorityMaxFill: 0 } }], {}, 'ROUTES_FILE routes[0] (pay) field queue.lowPriorityMaxFill: got 0, expected a number > 0'],
    ['a number given as a string', [{ ...pay, timeoutMs: '5000' }], {}, 'ROUTES_FILE routes[0] (pay) field timeoutMs: got "5000", expected a number'],
    ['an unknown field', [{ ...pay, retry: { maxAtempts: 3 } }], {}, 'ROUTES_FILE routes[0] (pay) field retry.maxAtempts: got 3, expected no such field (known: maxAttempts, baseDelayMs, maxDelayMs)'],
    ['an unknown mode', [{ ...pay, breaker: { mode: 'on' } }], {}, 'ROUTES_FILE routes[0] (pay) field breaker.mode: got "on", expected one of enforce, shadow, canary, off'],
    ['a canary percent above 100', [{ ...pay, breaker: { mode: 'canary', canaryPercent: 101 } }], {}, 'ROUTES_FILE routes[0] (pay) field breaker.canaryPercent: got 101, expected a number <= 100'],
    ['a bad name', [{ ...pay, name: 'Pay_API' }], {}, 'ROUTES_FILE routes[0] field name: got "Pay_API", expected 1-32 characters, each a-z, 0-9 or -'],
    ['a reserved name', [{ ...pay, name: 'batch' }], {}, 'ROUTES_FILE routes[0] (batch) field name: got "batch", expected a name other than "batch" (POST /relay/batch is the batch endpoint)'],
    ['a duplicate name', [pay, { ...pay }], {}, 'ROUTES_FILE routes[1] (pay) field name: got "pay", expected a name no other route has (routes[0] has it)'],
    ['a missing target', [{ name: 'pay' }], {}, 'ROUTES_FILE routes[0] (pay) field target: got nothing, expected a string'],
    ['a target that is not http(s)', [{ ...pay, target: 'ftp://files.example.test/' }], {}, 'ROUTES_FILE routes[0] (pay) field target: got "ftp://files.example.test/", expected an http(s) URL with no query (?) or fragment (#)'],
    ['a target with a query', [{ ...pay, target: 'https://api.example.test/?key=1' }], {}, 'ROUTES_FILE routes[0] (pay) field target: got "https://api.example.test/?key=1", expected an http(s) URL with no query (?) or fragment (#)'],
    ['a target with a fragment', [{ ...pay, target: 'https://api.example.test/#x' }], {}, 'ROUTES_FILE routes[0] (pay) field target: got "https://api.example.test/#x", expected an http(s) URL with no query (?) or fragment (#)'],
    ['a target that does not parse', [{ ...pay, target: 'http://exa[mple/' }], {}, 'ROUTES_FILE routes[0] (pay) field target: got "http://exa[mple/", expected an http(s) URL'],
    ['a fallback to an unknown route', [{ ...pay, fallbacks: ['nope'] }], {}, 'ROUTES_FILE routes[0] (pay) field fallbacks[0]: got "nope", expected the name of a route in this file (pay)'],
    ['a fallback to itself', [{ ...pay, fallbacks: ['pay'] }], {}, "ROUTES_FILE routes[0] (pay) field fallbacks[0]: got \"pay\", expected another route's name, not this route's own"],
    ['an invalid header name', [{ ...pay, headers: { remove: ['Bad Header'] } }], {}, "ROUTES_FILE routes[0] (pay) field headers.remove[0]: got \"Bad Header\", expected a header name (letters, digits and !#$%&'*+-.^_`|~)"],
    ['a hop-by-hop header set', [{ ...pay, headers: { set: { Connection: 'close' } }, clients: ['t'] }], {}, 'ROUTES_FILE routes[0] (pay) field headers.set: got "Connection", expected a header name that is not a hop-by-hop header'],
    ['Host set', [{ ...pay, headers: { set: { Host: 'evil.test' } }, clients: ['t'] }], {}, 'ROUTES_FILE routes[0] (pay) field headers.set: got "Host", expected a header name that is not a header the relay computes'],
    ['Content-Length set', [{ ...pay, headers: { set: { 'Content-Length': '1' } }, clients: ['t'] }], {}, 'ROUTES_FILE routes[0] (pay) field headers.set: got "Content-Length", expected a header name that is not a header the relay computes'],
    ['X-Request-Id set', [{ ...pay, headers: { set: { 'X-Request-Id': '1' } }, clients: ['t'] }], {}, 'ROUTES_FILE routes[0] (pay) field headers.set: got "X-Request-Id", expected a header name that is not a header the relay always sends itself'],
    ['traceparent set', [{ ...pay, headers: { set: { traceparent: '1' } }, clients: ['t'] }], {}, 'ROUTES_FILE routes[0] (pay) field headers.set: got "traceparent", expected a header name that is not a header the relay always sends itself'],
    ['an X-Relay-* header set', [{ ...pay, headers: { set: { 'X-Relay-Token': '1' } }, clients: ['t'] }], {}, "ROUTES_FILE routes[0] (pay) field headers.set: got \"X-Relay-Token\", expected a header name that is not one of the relay's own X-Relay-* headers"],
    ['one header set twice', [{ ...pay, headers: { set: { 'X-A': '1', 'x-a': '2' } }, clients: ['t'] }], {}, 'ROUTES_FILE routes[0] (pay) field headers.set: got "x-a", expected each header name once (names are case-insensitive)'],
    ['a set value with CR LF', [{ ...pay, headers: { set: { 'X-A': 'a\r\nX-Evil: 1' } }, clients: ['t'] }], {}, 'ROUTES_FILE routes[0] (pay) field headers.set.X-A: got [redacted, 12 chars], expected a header value with no CR, LF or NUL'],
    ['a set value with NUL after expansion', [{ ...pay, headers: { set: { 'X-A': '${NUL}' } }, clients: ['t'] }], { NUL: 'a\0b' }, 'ROUTES_FILE routes[0] (pay) field headers.set.X-A: got [redacted, 3 chars], expected a header value with no CR, LF or NUL'],
    ['a set value over 8 KiB', [{ ...pay, headers: { set: { 'X-A': 'a'.repeat(8193) } }, clients: ['t'] }], {}, 'ROUTES_FILE routes[0] (pay) field headers.set.X-A: got [redacted, 8193 chars], expected a header value with at most 8192 bytes (8 KiB)'],
    ['an unset variable', [{ ...pay, headers: { set: { Authorization: 'Bearer ${NOT_SET}' } }, clients: ['t'] }], {}, 'ROUTES_FILE routes[0] (pay) field headers.set.Authorization: got [redacted, 17 chars], expected NOT_SET to be set in the environment (it is unset or empty)'],
    ['an empty variable in clients', [{ ...pay, clients: ['${EMPTY}'] }], { EMPTY: '' }, 'ROUTES_FILE routes[0] (pay) field clients[0]: got [redacted, 8 chars], expected EMPTY to be set in the environment (it is unset or empty)'],
    ['an unclosed ${', [{ ...pay, clients: ['${APP_TOKEN'] }], {}, 'ROUTES_FILE routes[0] (pay) field clients[0]: got [redacted, 11 chars], expected ${NAME} with NAME a variable name (letters, digits, _), or $${ for a literal ${'],
    ['a client token with a space', [{ ...pay, clients: ['two words'] }], {}, 'ROUTES_FILE routes[0] (pay) field clients[0]: got [redacted, 9 chars], expected a token of visible ASCII characters with no spaces (at most 8192)'],
    ['a credential open to any caller off loopback', [{ ...pay, headers: { set: { Authorization: 'Bearer x' } } }], { HOST: '0.0.0.0', ADMIN_TOKEN: 'admin-token-0123456789' }, 'ROUTES_FILE routes[0] (pay) field clients: got nothing, expected at least one client token: a route with headers.set on a non-loopback HOST (0.0.0.0) would lend its credential to any caller'],
    ['an unknown method', [{ ...pay, methods: ['GET', 'FETCH'] }], {}, 'ROUTES_FILE routes[0] (pay) field methods[1]: got "FETCH", expected a method the relay can receive (GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE or another of node:http METHODS but CONNECT)'],
    ['CONNECT', [{ ...pay, methods: ['CONNECT'] }], {}, 'ROUTES_FILE routes[0] (pay) field methods[0]: got "CONNECT", expected a method the relay can receive (GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE or another of node:http METHODS but CONNECT)'],
    ['a method twice', [{ ...pay, methods: ['GET', 'get'] }], {}, 'ROUTES_FILE routes[0] (pay) field methods[1]: got "get", expected each method once'],
    ['no methods at all', [{ ...pay, methods: [] }], {}, 'ROUTES_FILE routes[0] (pay) field methods: got a list of 0 items, expected a list of at least 1 item'],
    ['a backoff cap below its base', [{ ...pay, retry: { baseDelayMs: 3000 } }], {}, 'ROUTES_FILE routes[0] (pay) field retry.maxDelayMs: got 2000, expected a number >= retry.baseDelayMs (3000)'],
    ['an attempt longer than a job lease', [{ ...pay, timeoutMs: 60_000 }], {}, 'ROUTES_FILE routes[0] (pay) field timeoutMs: got 60000, expected a number <= JOB_LEASE_MS - 1000 (29000)'],
    ['an idempotency header the relay may not set', [{ ...pay, idempotency: { header: 'Host' } }], {}, 'ROUTES_FILE routes[0] (pay) field idempotency.header: got "Host", expected a header name that is not a header the relay computes'],
    ['generate that is not a boolean', [{ ...pay, idempotency: { generate: 'yes' } }], {}, 'ROUTES_FILE routes[0] (pay) field idempotency.generate: got "yes", expected true or false'],
  ])('names the route, the field and the value: %s', (_rule, routes, env, line) => {
    expect(mistakes(routes, env)).toEqual([line]);
  });

  it('takes a backoff base raised to its cap', () => {
    expect(loadRoutes([{ ...pay, retry: { baseDelayMs: 3000, maxDelayMs: 3000 } }]).routes[0]!.retry).toEqual({ maxAttempts: 4, baseDelayMs: 3000, maxDelayMs: 3000 });
  });

  it('lists every mistake of every route, one line each', () => {
    const lines = mistakes([
      { ...pay, rateLimit: { rps: 0, burst: -1 } },
      { name: 'sms', target: 'http://127.0.0.1:4102/', colour: 'blue', fallbacks: ['email'] },
    ]);
    expect(lines).toEqual([
      'ROUTES_FILE routes[0] (pay) field rateLimit.rps: got 0, expected a number > 0',
      'ROUTES_FILE routes[0] (pay) field rateLimit.burst: got -1, expected a number >= 1',
      expect.stringMatching(/^ROUTES_FILE routes\[1\] \(sms\) field colour: got "blue", expected no such field \(known: name, target, /) as string,
    ]);
  });

  it('knows a fallback route that has a mistake of its own', () => {
    expect(mistakes([{ ...pay, fallbacks: ['backup'] }, { name: 'backup', target: 'http://127.0.0.1:4104/', timeoutMs: 0 }])).toEqual([
      'ROUTES_FILE routes[1] (backup) field timeoutMs: got 0, expected a number >= 1',
    ]);
  });

  it('names the file-level mistakes', () => {
    const lines = (text: string, path = 'routes.json') => {
      try {
        load(text, {}, path);
      } catch (error) {
        if (error instanceof ConfigError) return error.message;
        throw error;
      }
      return 'no error';
    };
    expect(lines('{"routes": []}')).toBe('ROUTES_FILE field routes: got a list of 0 items, expected a list of at least 1 item');
    expect(lines('{"paths": []}')).toBe(
      'ROUTES_FILE field routes: got nothing, expected a list\nROUTES_FILE field paths: got a list of 0 items, expected no such field (known: $schema, routes)',
    );
    expect(lines('{"extra": 1, "routes": [{"name": "pay", "target": "ftp://x/"}]}')).toBe(
      'ROUTES_FILE field extra: got 1, expected no such field (known: $schema, routes)\nROUTES_FILE routes[0] (pay) field target: got "ftp://x/", expected an http(s) URL with no query (?) or fragment (#)',
    );
    expect(lines('', 'routes.yaml')).toBe('ROUTES_FILE: got nothing, expected an object (a mapping of names to values)');
    expect(lines('{"routes": [1]}')).toBe('ROUTES_FILE routes[0]: got 1, expected an object (a mapping of names to values)');
    expect(lines(`{"routes": [{"name": "${PAY_KEY}"`)).toMatch(/^Invalid ROUTES_FILE="routes.json": not valid JSON/);
    expect(lines(`routes:\n  - name: pay\n  target: x\n    y: ${PAY_KEY}`, 'routes.yml')).toMatch(
      /^Invalid ROUTES_FILE="routes.yml": not valid YAML at line \d+, column \d+ \(\w+\), expected a YAML routes file$/,
    );
    expect(lines(`{"routes": [{"name": "${PAY_KEY}"`)).not.toContain(PAY_KEY);
  });

  it('names a file it cannot read', () => {
    expect(() => loadConfig({ ROUTES_FILE: '/nonexistent/routes.yaml' })).toThrow(
      new ConfigError('Invalid ROUTES_FILE="/nonexistent/routes.yaml": cannot read it (ENOENT), expected a readable JSON or YAML file'),
    );
  });

  it('never shows a secret in an error: set values, clients, expansions, URL user-info', () => {
    const leaked = 'hunter2-very-secret';
    const message = mistakes(
      [
        {
          name: 'pay',
          target: `https://user:${leaked}@api.example.test/?q=1`,
          headers: { set: { 'X-A': `${leaked}\n`, 'X-B': '${LEAKY}\r', 'X-C': 123 } },
          clients: [`${leaked} `, 42, '${LEAKY} '],
        },
        { name: 'sms', target: 'http://127.0.0.1:4102/', headers: { set: { Authorization: `Bearer ${leaked}` } }, clients: [] },
      ],
      { LEAKY: leaked, HOST: '0.0.0.0', ADMIN_TOKEN: 'admin-token-0123456789' },
    ).join('\n');
    expect(message).toContain('[redacted, ');
    expect(message).toContain('routes[1] (sms) field clients');
    expect(message).not.toContain(leaked);
    expect(message).not.toContain('hunter2');
    expect(message).not.toContain('123');
    expect(message).not.toContain('42');
  });

  it('loads routes.example.yaml with its variables set', () => {
    const path = new URL('../../routes.example.yaml', import.meta.url).pathname;
    const config = loadConfig({
      ROUTES_FILE: path,
      PAY_SECRET_KEY: PAY_KEY,
      SMS_BASIC_AUTH: Buffer.from('relay:sms-password').toString('base64'),
      EMAIL_API_KEY: 'email-key-0123456789',
      APP_TOKEN,
    });
    expect(config.routes.map((r) => [r.name, r.target])).toEqual([
      ['payments', 'http://127.0.0.1:4101/'],
      ['sms', 'http://127.0.0.1:4102/'],
      ['email', 'http://127.0.0.1:4103/'],
    ]);
    const [payments, sms, email] = config.routes;
    expect(payments).toMatchObject({ idempotency: { generate: true }, headers: { set: { authorization: `Bearer ${PAY_KEY}` } }, clients: [APP_TOKEN] });
    expect(payments!.rateLimit).not.toBeNull();
    expect(sms!.headers.set.authorization).toMatch(/^Basic /);
    expect(sms!.rateLimit).not.toBeNull();
    expect(email!.headers.set.authorization).toBe('Bearer email-key-0123456789');
    expect(() => loadConfig({ ROUTES_FILE: path, APP_TOKEN })).toThrow(/PAY_SECRET_KEY to be set/);
  });

  it('publishes docs/routes.schema.json as the script writes it now (run npm run routes:schema)', () => {
    const committed = readFileSync(new URL('../../docs/routes.schema.json', import.meta.url), 'utf8');
    expect(committed).toBe(routesJsonSchemaText());
  });
});
