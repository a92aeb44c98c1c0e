/** How a secret value appears in an error: its length only, never its text. */
export function redacted(value: unknown): string {
  const text = typeof value === 'string' ? value : (JSON.stringify(value) ?? '');
  return `[redacted, ${text.length} chars]`;
}

// The user-info of `scheme://user:pass@host`; the last `@` before the path ends it.
const USER_INFO = /^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)@/i;

/** A URL (or a comma-separated list of them) with its user-info part redacted. */
export function redactUserInfo(text: string): string {
  return text
    .split(',')
    .map((part) => part.replace(USER_INFO, (_all, scheme: string, userInfo: string) => `${scheme}${redacted(userInfo)}@`))
    .join(',');
}
