import { SecretBox } from './secret-box.js';

/** What a secret shows as in logs, `/stats`, `/dlq`, `/jobs` and problem bodies. */
export const REDACTED = '[redacted]';

/** Header names (lower-case) that always carry a credential. Routes add their own (`headers.set`, `headers.secret`). */
export const SECRET_HEADERS: ReadonlySet<string> = new Set([
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  'x-relay-token',
]);

/** Query parameter names (compared lower-case, after percent-decoding) whose values are credentials. */
export const SECRET_QUERY_PARAMS: ReadonlySet<string> = new Set([
  'api_key',
  'apikey',
  'token',
  'access_token',
  'key',
  'signature',
  'password',
  'secret',
]);

/** Whether a header carries a secret; `extra` holds a route's own secret names, in any case. */
export function isSecretHeader(name: string, extra?: ReadonlySet<string>): boolean {
  const lower = name.toLowerCase();
  if (SECRET_HEADERS.has(lower)) return true;
  if (extra === undefined || extra.size === 0) return false;
  if (extra.has(lower) || extra.has(name)) return true;
  for (const secret of extra) if (secret.toLowerCase() === lower) return true;
  return false;
}

/**
 * A copy for display, names lower-case: secret headers' values, and any value
 * still in sealed form, become `[redacted]`.
 */
export function redactHeaders(headers: Record<string, string>, extra?: ReadonlySet<string>): Record<string, string> {
  // fromEntries, not assignment: a header named `__proto__` must stay a plain own property.
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => {
      const hidden = isSecretHeader(name, extra) || (typeof value === 'string' && SecretBox.isSealed(value));
      return [name.toLowerCase(), hidden ? REDACTED : value];
    }),
  );
}

function isSecretParam(rawName: string): boolean {
  let name = rawName;
  if (name.includes('%') || name.includes('+')) {
    try {
      name = decodeURIComponent(name.replaceAll('+', ' '));
    } catch {
      // A malformed escape: compare the raw name.
    }
  }
  return SECRET_QUERY_PARAMS.has(name.toLowerCase());
}

// `;` and `#` count as separators too: some servers split on `;`, and OAuth puts `access_token` in the fragment.
const PARAM = /([?&;#])([^=&;#?]*)=([^&;#]*)/g;

/**
 * A path-and-query (or any URL) with the values of secret query parameters
 * replaced by `[redacted]`; every other byte is kept as it was (nothing is
 * decoded or re-encoded).
 */
export function redactQuery(pathAndQuery: string): string {
  const start = firstOf(pathAndQuery, '?', '#');
  if (start === -1) return pathAndQuery;
  const tail = pathAndQuery.slice(start).replace(PARAM, (pair: string, separator: string, name: string) =>
    isSecretParam(name) ? `${separator}${name}=${REDACTED}` : pair,
  );
  return pathAndQuery.slice(0, start) + tail;
}

/**
 * A path-and-query with the value of every secret query parameter passed
 * through `transform` (seal, open); every other byte kept as it was.
 */
export function mapSecretParams(pathAndQuery: string, transform: (value: string) => string): string {
  const start = pathAndQuery.indexOf('?');
  if (start === -1) return pathAndQuery;
  const tail = pathAndQuery.slice(start).replace(PARAM, (pair: string, separator: string, name: string, value: string) =>
    separator !== '#' && isSecretParam(name) ? `${separator}${name}=${transform(value)}` : pair,
  );
  return pathAndQuery.slice(0, start) + tail;
}

function firstOf(text: string, a: string, b: string, from = 0): number {
  const i = text.indexOf(a, from);
  const j = text.indexOf(b, from);
  return i === -1 ? j : j === -1 ? i : Math.min(i, j);
}

/**
 * A URL with its user-info (`user:pw@` -> `[redacted]@`) and secret query
 * parameters redacted. Never throws: text that is not a URL has anything
 * between `//` and the last `@` redacted, which may hide more than needed
 * but never less.
 */
export function redactUrl(url: string): string {
  const slashes = url.indexOf('//');
  if (slashes === -1) return redactQuery(url);
  const hostStart = slashes + 2;
  let authorityEnd = url.slice(hostStart).search(/[/?#\\]/);
  authorityEnd = authorityEnd === -1 ? url.length : hostStart + authorityEnd;
  let at = url.lastIndexOf('@', authorityEnd - 1);
  if (at < hostStart && url.indexOf('@', hostStart) !== -1 && !parsesWithoutUserInfo(url)) {
    // A password with a raw `/`, `?` or `#` ends the authority early: hide up to the last `@` of all.
    at = url.lastIndexOf('@');
  }
  const withoutUserInfo = at < hostStart ? url : `${url.slice(0, hostStart)}${REDACTED}${url.slice(at)}`;
  return redactQuery(withoutUserInfo);
}

function parsesWithoutUserInfo(url: string): boolean {
  try {
    const parsed = new URL(url);
    return parsed.username === '' && parsed.password === '';
  } catch {
    return false;
  }
}

/** How a secret appears in an error line: its length, never its text. */
export function describeSecret(value: string): string {
  return `[redacted, ${[...value].length} chars]`;
}

/** Why a stored header cannot be sent: it was never stored, there is no key, or the key does not open it. */
export type SecretHeaderProblem = 'not-stored' | 'no-key' | 'unreadable';

/**
 * A stored secret header cannot be given back, so the request must not be
 * sent (a send without the client's credentials is never the fallback).
 * The HTTP layer answers it as `SECRET_KEY_REQUIRED`.
 */
export class SecretHeaderUnavailableError extends Error {
  readonly code = 'SECRET_KEY_REQUIRED';
  override readonly name = 'SecretHeaderUnavailableError';
  constructor(
    /** The header's name (never its value). */
    readonly header: string,
    readonly problem: SecretHeaderProblem,
    options?: ErrorOptions,
  ) {
    super(`The stored value of header ${JSON.stringify(header)} ${PROBLEM_TEXT[problem]}.`, options);
  }
}

const PROBLEM_TEXT: Record<SecretHeaderProblem, string> = {
  'not-stored': 'was not kept (RELAY_SECRET_KEY was unset when it was recorded); the client must send the request again',
  'no-key': 'is encrypted and RELAY_SECRET_KEY is unset',
  unreadable: 'does not decrypt (RELAY_SECRET_KEY changed, or the record was altered)',
};

/** A value `openHeaders` would read as sealed or dropped, so it must not be stored as plain text. */
function looksStored(value: string): boolean {
  return value === REDACTED || SecretBox.isSealed(value);
}

/**
 * Headers ready to store: secret values sealed with `box`, bound to
 * `associatedData` (the record's id). Without a box they are replaced by
 * `[redacted]` and `droppedSecrets` is true. A plain value that merely looks
 * sealed or redacted is treated as a secret too, so `openHeaders` gives it
 * back literally instead of misreading it.
 */
export function sealHeaders(
  headers: Record<string, string>,
  secretNames: ReadonlySet<string>,
  box: SecretBox | undefined,
  associatedData: string,
): { headers: Record<string, string>; droppedSecrets: boolean } {
  let droppedSecrets = false;
  const sealed = Object.fromEntries(
    Object.entries(headers).map(([name, value]) => {
      if (!isSecretHeader(name, secretNames) && !looksStored(value)) return [name, value];
      if (box === undefined) {
        droppedSecrets = true;
        return [name, REDACTED];
      }
      return [name, box.seal(value, associatedData)];
    }),
  );
  return { headers: sealed, droppedSecrets };
}

/**
 * The headers `sealHeaders` stored, with sealed values opened.
 * @throws {SecretHeaderUnavailableError} when a secret was dropped, or a sealed value cannot be opened (no box, or another key).
 */
export function openHeaders(
  headers: Record<string, string>,
  box: SecretBox | undefined,
  associatedData: string,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).map(([name, value]) => {
      if (value === REDACTED) throw new SecretHeaderUnavailableError(name, 'not-stored');
      if (!SecretBox.isSealed(value)) return [name, value];
      if (box === undefined) throw new SecretHeaderUnavailableError(name, 'no-key');
      try {
        return [name, box.open(value, associatedData)];
      } catch (cause) {
        throw new SecretHeaderUnavailableError(name, 'unreadable', { cause });
      }
    }),
  );
}
