/** `$${` (a literal `${`), or `${NAME}`, or a `${` that is neither. */
const REFERENCE = /\$\$\{|\$\{([^}]*)(\})?/g;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export type Expansion = { ok: true; value: string } | { ok: false; expected: string };

/**
 * Replaces each `${NAME}` with the variable's value; `$${` stays a literal `${`.
 * A variable that is unset or empty is a mistake, not an empty string: an
 * `Authorization: Bearer ` sent without its key would fail far from its cause.
 */
export function expandVars(template: string, env: Record<string, string | undefined>): Expansion {
  const missing: string[] = [];
  let malformed = false;
  const value = template.replace(REFERENCE, (match, name: string | undefined, close: string | undefined) => {
    if (match === '$${') return '${';
    if (name === undefined || close === undefined || !VARIABLE_NAME.test(name)) {
      malformed = true;
      return '';
    }
    const found = env[name];
    if (found === undefined || found === '') missing.push(name);
    return found ?? '';
  });
  if (malformed) return { ok: false, expected: '${NAME} with NAME a variable name (letters, digits, _), or $${ for a literal ${' };
  if (missing.length > 0) {
    const names = [...new Set(missing)];
    return { ok: false, expected: `${names.join(', ')} to be set in the environment (${names.length > 1 ? 'they are' : 'it is'} unset or empty)` };
  }
  return { ok: true, value };
}
