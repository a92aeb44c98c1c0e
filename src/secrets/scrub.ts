import { REDACTED, SECRET_HEADERS, redactUrl } from './redact.js';

/** Field names (compared lower-case) whose values are secrets wherever they sit: credential headers and the relay's own keys. */
export const SECRET_FIELDS: ReadonlySet<string> = new Set([...SECRET_HEADERS, 'admintoken', 'secretkey', 'relaysecretkey', 'password']);

/** Deeper than this a value is left as it is: log fields are shallow, and a cycle must end. */
const MAX_DEPTH = 8;

function isSecretField(key: string): boolean {
  return SECRET_FIELDS.has(key) || SECRET_FIELDS.has(key.toLowerCase());
}

function isUrlField(key: string): boolean {
  return key === 'url' || key === 'target' || key.endsWith('Url');
}

export interface ScrubOptions {
  /** How an Error nested in the value becomes data (its result is scrubbed too). @default the Error, left unscanned */
  serializeError?: (error: Error) => unknown;
}

/**
 * `value` with every secret in it redacted: the values of secret fields
 * (`authorization`, `cookie`, `secretKey`... in any case, at any depth) and
 * the user-info and secret query parameters of URL fields (`url`, `target`,
 * `*Url`) and URL objects.
 *
 * Copy-on-write: a value without secrets is returned as is and nothing is
 * allocated, so it can run on every log line.
 */
export function scrubSecrets(value: unknown, options: ScrubOptions = {}): unknown {
  return scrub(value, options, 0);
}

function scrub(value: unknown, options: ScrubOptions, depth: number): unknown {
  if (value === null || typeof value !== 'object' || depth > MAX_DEPTH) return value;
  if (value instanceof Error) {
    return options.serializeError ? scrub(options.serializeError(value), options, depth + 1) : value;
  }
  if (value instanceof URL) return redactUrl(value.href);
  if (ArrayBuffer.isView(value) || value instanceof Date || value instanceof Map || value instanceof Set) return value;
  if (Array.isArray(value)) {
    let copy: unknown[] | undefined;
    for (let i = 0; i < value.length; i++) {
      const next = scrub(value[i], options, depth + 1);
      if (next !== value[i]) (copy ??= value.slice())[i] = next;
    }
    return copy ?? value;
  }
  // An object that chooses its own JSON is opaque here; none of the relay's carries a secret.
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return value;
  const record = value as Record<string, unknown>;
  let copy: Record<string, unknown> | undefined;
  for (const key in record) {
    if (!Object.hasOwn(record, key)) continue;
    const field = record[key];
    let next: unknown;
    if (isSecretField(key)) next = field === undefined || field === null ? field : REDACTED;
    else if (typeof field === 'string') next = isUrlField(key) ? redactUrl(field) : field;
    else next = scrub(field, options, depth + 1);
    if (next === field) continue;
    copy ??= { ...record };
    // defineProperty: a key named `__proto__` must stay a plain field.
    Object.defineProperty(copy, key, { value: next, enumerable: true, writable: true, configurable: true });
  }
  return copy ?? value;
}
