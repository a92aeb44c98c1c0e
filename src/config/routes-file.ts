import { readFileSync } from 'node:fs';
import YAML from 'yaml';
import type { RouteSpec } from '../routes/route-spec.js';
import { ConfigError } from './config-error.js';
import type { Env } from './env.js';
import { expandVars } from './expand-vars.js';
import { badHeaderValue, forbiddenToSet } from './header-rules.js';
import { isLoopbackHost } from './loopback.js';
import { DEFAULT_METHODS, ROUTABLE_METHODS } from './methods.js';
import { resolveKnobs } from './route-knobs.js';
import { RouteMistakes, valueAt } from './route-mistakes.js';
import { ROUTE_NAME, type RouteInput, routeSchema, routesFileSchema } from './routes-schema.js';

/** Reads a file as UTF-8 text (injectable so tests need no files). */
export type ReadFile = (path: string) => string;

/** @default reads from disk with node:fs readFileSync */
export const readFileUtf8: ReadFile = (path) => readFileSync(path, 'utf8');

/** A name no route may take: `/relay/batch` is the batch endpoint. */
const RESERVED_NAMES = new Set(['batch']);
/** A client token as sent in X-Relay-Token: visible ASCII, no spaces. */
const CLIENT_TOKEN = /^[\x21-\x7e]{1,8192}$/;

/**
 * Reads ROUTES_FILE and resolves every route in it.
 * @param env the raw environment, for `${VAR}` expansion
 * @param e the parsed environment, for every field a route leaves out
 * @throws ConfigError with one line per mistake
 */
export function loadRoutesFile(path: string, env: Record<string, string | undefined>, e: Env, readFile: ReadFile = readFileUtf8): RouteSpec[] {
  let text: string;
  try {
    text = readFile(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(`Invalid ROUTES_FILE=${JSON.stringify(path)}: cannot read it (${code}), expected a readable JSON or YAML file`);
  }
  return resolveRoutes(parseRoutesText(path, text), env, e);
}

/** JSON, or YAML for `.yaml`/`.yml`. Errors name a position, never the text (it may hold a secret). */
export function parseRoutesText(path: string, text: string): unknown {
  const at = `Invalid ROUTES_FILE=${JSON.stringify(path)}`;
  if (/\.ya?ml$/i.test(path)) {
    const doc = YAML.parseDocument(text, { prettyErrors: false });
    const [error] = doc.errors;
    if (error) throw new ConfigError(`${at}: not valid YAML at ${lineColumn(text, error.pos[0])} (${error.code}), expected a YAML routes file`);
    return doc.contents === null ? undefined : (doc.toJS() as unknown); // an empty file holds nothing
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    // V8 quotes the text around the mistake; keep only where it is.
    const position = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new ConfigError(`${at}: not valid JSON${position ? ` at ${lineColumn(text, Number(position))}` : ''}, expected a JSON routes file (or .yaml/.yml for YAML)`);
  }
}

function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset).split('\n');
  return `line ${before.length}, column ${before[before.length - 1]!.length + 1}`;
}

/**
 * Validates a parsed routes file and resolves each route: fields left out take
 * the environment's values, `${VAR}` is expanded, names are lower-cased.
 * @throws ConfigError with one line per mistake
 */
export function resolveRoutes(file: unknown, env: Record<string, string | undefined>, e: Env): RouteSpec[] {
  const mistakes = new RouteMistakes(file);
  const top = routesFileSchema.safeParse(file);
  if (!top.success) mistakes.addIssues(top.error.issues, [], routesFileSchema);
  // Each route is checked even when the file around it is wrong, so one start shows every mistake.
  const listed = valueAt(file, ['routes']);
  const raw: unknown[] = Array.isArray(listed) ? listed : [];
  const routes: Array<{ index: number; input: RouteInput }> = [];
  raw.forEach((route, index) => {
    const parsed = routeSchema.safeParse(route);
    if (parsed.success) routes.push({ index, input: parsed.data });
    else mistakes.addIssues(parsed.error.issues, ['routes', index], routeSchema);
  });
  // Names of every route, valid or not, so a fallback to a route with another mistake is not called unknown.
  const names = new Map<string, number>();
  raw.forEach((_route, index) => {
    const name = valueAt(raw, [index, 'name']);
    if (typeof name !== 'string' || !ROUTE_NAME.test(name)) return;
    const first = names.get(name);
    if (first !== undefined) mistakes.add(['routes', index, 'name'], `a name no other route has (routes[${first}] has it)`);
    else names.set(name, index);
  });
  const specs = routes.map(({ index, input }) => resolveRoute(input, index, { env, e, names, mistakes }));
  mistakes.throwIfAny();
  return specs;
}

interface RouteContext {
  env: Record<string, string | undefined>;
  e: Env;
  names: ReadonlyMap<string, number>;
  mistakes: RouteMistakes;
}

function resolveRoute(r: RouteInput, index: number, ctx: RouteContext): RouteSpec {
  const { e, mistakes } = ctx;
  const at = (...path: PropertyKey[]) => ['routes', index, ...path];
  if (RESERVED_NAMES.has(r.name)) mistakes.add(at('name'), 'a name other than "batch" (POST /relay/batch is the batch endpoint)');
  if (!URL.canParse(r.target)) mistakes.add(at('target'), 'an http(s) URL');

  const methods = resolveMethods(r.methods, (i, expected) => mistakes.add(at('methods', i), expected));
  const set = resolveSetHeaders(r, ctx, at);
  const clients = (r.clients ?? []).flatMap((template, i) => {
    const expanded = expandVars(template, ctx.env);
    if (!expanded.ok) mistakes.add(at('clients', i), expanded.expected);
    else if (!CLIENT_TOKEN.test(expanded.value)) mistakes.add(at('clients', i), 'a token of visible ASCII characters with no spaces (at most 8192)', expanded.value);
    return expanded.ok ? [expanded.value] : [];
  });
  if (Object.keys(set).length > 0 && (r.clients ?? []).length === 0 && !isLoopbackHost(e.HOST)) {
    mistakes.add(at('clients'), `at least one client token: a route with headers.set on a non-loopback HOST (${e.HOST}) would lend its credential to any caller`);
  }
  const idempotencyHeader = r.idempotency?.header ?? 'Idempotency-Key';
  const notSettable = forbiddenToSet(idempotencyHeader.toLowerCase());
  if (notSettable) mistakes.add(at('idempotency', 'header'), `a header name that is not ${notSettable}`);
  (r.fallbacks ?? []).forEach((fallback, i, all) => {
    if (fallback === r.name) mistakes.add(at('fallbacks', i), "another route's name, not this route's own");
    else if (!ctx.names.has(fallback)) mistakes.add(at('fallbacks', i), `the name of a route in this file (${[...ctx.names.keys()].join(', ')})`);
    else if (all.indexOf(fallback) !== i) mistakes.add(at('fallbacks', i), 'each fallback once');
  });

  const knobs = resolveKnobs(e, r);
  if (r.rateLimit !== undefined && knobs.rateLimit === null) {
    mistakes.add(at('rateLimit', 'rps'), 'a number > 0 (required here: RATE_LIMIT_RPS is unset)');
  }
  if (knobs.retry.maxDelayMs < knobs.retry.baseDelayMs) {
    mistakes.add(at('retry', 'maxDelayMs'), `a number >= retry.baseDelayMs (${knobs.retry.baseDelayMs})`, knobs.retry.maxDelayMs);
  }
  if (r.timeoutMs !== undefined && r.timeoutMs + 1000 > e.JOB_LEASE_MS) {
    // As for DOWNSTREAM_TIMEOUT_MS: a lease shorter than one attempt hands a job still in flight to another worker.
    mistakes.add(at('timeoutMs'), `a number <= JOB_LEASE_MS - 1000 (${e.JOB_LEASE_MS - 1000})`);
  }
  const lower = (list: readonly string[] | undefined) => [...new Set((list ?? []).map((h) => h.toLowerCase()))];
  return {
    name: r.name,
    target: r.target,
    methods,
    ...knobs,
    rateLimit: r.rateLimit === undefined ? null : knobs.rateLimit,
    idempotency: { header: idempotencyHeader, generate: r.idempotency?.generate ?? false },
    headers: { set, remove: lower(r.headers?.remove), secret: lower(r.headers?.secret) },
    clients,
    fallbacks: r.fallbacks ?? [],
    fallbackUrls: [],
  };
}

function resolveMethods(listed: readonly string[] | undefined, mistake: (index: number, expected: string) => void): string[] {
  if (listed === undefined) return [...DEFAULT_METHODS];
  const methods: string[] = [];
  listed.forEach((method, i) => {
    const upper = method.toUpperCase();
    if (!ROUTABLE_METHODS.includes(upper)) mistake(i, 'a method the relay can receive (GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE or another of node:http METHODS but CONNECT)');
    else if (methods.includes(upper)) mistake(i, 'each method once');
    else methods.push(upper);
  });
  return methods;
}

function resolveSetHeaders(r: RouteInput, ctx: RouteContext, at: (...path: PropertyKey[]) => PropertyKey[]): Record<string, string> {
  const set: Record<string, string> = {};
  for (const [name, template] of Object.entries(r.headers?.set ?? {})) {
    const lower = name.toLowerCase();
    const forbidden = forbiddenToSet(lower);
    if (forbidden) {
      ctx.mistakes.add(at('headers', 'set'), `a header name that is not ${forbidden}`, name);
      continue;
    }
    if (lower in set) {
      ctx.mistakes.add(at('headers', 'set'), 'each header name once (names are case-insensitive)', name);
      continue;
    }
    const expanded = expandVars(template, ctx.env);
    if (!expanded.ok) {
      ctx.mistakes.add(at('headers', 'set', name), expanded.expected);
      continue;
    }
    const bad = badHeaderValue(expanded.value);
    if (bad) ctx.mistakes.add(at('headers', 'set', name), `a header value with ${bad}`, expanded.value);
    set[lower] = expanded.value;
  }
  return set;
}
