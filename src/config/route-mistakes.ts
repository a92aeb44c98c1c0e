import { z } from 'zod';
import { ConfigError } from './config-error.js';
import { describeIssue } from './issue-text.js';
import { redacted, redactUserInfo } from './redact.js';
import { ROUTE_NAME } from './routes-schema.js';

type Path = ReadonlyArray<PropertyKey>;

/**
 * The mistakes found in a routes file, one line each:
 * `ROUTES_FILE routes[1] (sms) field rateLimit.rps: got -5, expected a number > 0`.
 * Values under `headers.set` and `clients` are secrets (or expand to them) and are
 * shown by length only.
 */
export class RouteMistakes {
  private readonly lines: string[] = [];

  constructor(private readonly file: unknown) {}

  get count(): number {
    return this.lines.length;
  }

  /** A mistake at `path` from the file's root (`['routes', 1, 'rateLimit', 'rps']`). */
  add(path: Path, expected: string, value: unknown = valueAt(this.file, path)): void {
    this.lines.push(`${this.where(path)}: got ${show(value, isSecretPath(path))}, expected ${expected}`);
  }

  /** Every zod issue, found under `prefix` (a route's parse gets `['routes', i]`). */
  addIssues(issues: readonly z.core.$ZodIssue[], prefix: Path, schema: z.ZodType): void {
    const seen = new Set<string>();
    for (const issue of issues) {
      const path = [...prefix, ...issue.path];
      const key = JSON.stringify(path.map(String));
      if (seen.has(key)) continue; // one line per field: the first rule it breaks
      seen.add(key);
      if (issue.code === 'unrecognized_keys') {
        const known = knownFields(schema, issue.path);
        for (const key of issue.keys) this.add([...path, key], `no such field (known: ${known.join(', ')})`);
      } else {
        this.add(path, describeIssue(issue).replace(/^expected /, ''));
      }
    }
  }

  throwIfAny(): void {
    if (this.lines.length > 0) throw new ConfigError(this.lines);
  }

  private where(path: Path): string {
    if (path[0] !== 'routes' || typeof path[1] !== 'number') {
      return path.length === 0 ? 'ROUTES_FILE' : `ROUTES_FILE field ${fieldName(path)}`;
    }
    const name = valueAt(this.file, [...path.slice(0, 2), 'name']);
    const route = `ROUTES_FILE routes[${path[1]}]${typeof name === 'string' && ROUTE_NAME.test(name) ? ` (${name})` : ''}`;
    return path.length === 2 ? route : `${route} field ${fieldName(path.slice(2))}`;
  }
}

function fieldName(path: Path): string {
  return path.map((key, i) => (typeof key === 'number' ? `[${key}]` : `${i === 0 ? '' : '.'}${String(key)}`)).join('');
}

/** Under a route: `headers.set.{name}` values and `clients[i]` entries. */
function isSecretPath(path: Path): boolean {
  if (path[0] !== 'routes') return false;
  const [, , first, second] = path;
  return (first === 'headers' && second === 'set' && path.length >= 5) || (first === 'clients' && path.length >= 4);
}

function show(value: unknown, secret: boolean): string {
  if (value === undefined) return 'nothing';
  // Never a dump of a collection: it may hold secrets, and its shape says enough.
  if (Array.isArray(value)) return `a list of ${value.length} item${value.length === 1 ? '' : 's'}`;
  if (value !== null && typeof value === 'object') return 'an object';
  if (secret) return redacted(typeof value === 'string' ? value : String(value));
  if (typeof value === 'string') {
    const text = JSON.stringify(redactUserInfo(value));
    return text.length > 100 ? `${text.slice(0, 96)}..."` : text;
  }
  return String(value);
}

export function valueAt(root: unknown, path: Path): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** The fields a strict object in `schema` accepts at `path`, to name them beside an unknown one. */
function knownFields(schema: z.ZodType, path: Path): string[] {
  let node: unknown = schema;
  for (const key of [...path, undefined]) {
    while (node instanceof z.ZodOptional) node = node.unwrap();
    if (key === undefined) break;
    node = node instanceof z.ZodObject ? (node.shape as Record<string, unknown>)[String(key)] : undefined;
  }
  return node instanceof z.ZodObject ? Object.keys(node.shape) : [];
}
