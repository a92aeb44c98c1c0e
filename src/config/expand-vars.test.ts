import { describe, expect, it } from 'vitest';
import { expandVars } from './expand-vars.js';

describe('expandVars', () => {
  const env = { KEY: 'k3y', OTHER: 'o', EMPTY: '' };

  it('replaces each ${NAME} with its value', () => {
    expect(expandVars('Bearer ${KEY}:${OTHER}${KEY}', env)).toEqual({ ok: true, value: 'Bearer k3y:ok3y' });
  });

  it('reads $${ as a literal ${ and leaves other dollars alone', () => {
    expect(expandVars('$${KEY} $$ $x ${KEY}$', env)).toEqual({ ok: true, value: '${KEY} $$ $x k3y$' });
  });

  it('refuses an unset or empty variable, naming each once', () => {
    expect(expandVars('${NOPE} ${EMPTY} ${NOPE}', env)).toEqual({ ok: false, expected: 'NOPE, EMPTY to be set in the environment (they are unset or empty)' });
  });

  it('says "it" of one variable named twice', () => {
    expect(expandVars('${NOPE}${NOPE}', env)).toEqual({ ok: false, expected: 'NOPE to be set in the environment (it is unset or empty)' });
  });

  it.each(['${', '${KEY', '${1KEY}', '${}', '${KEY-NAME}'])('refuses a malformed reference: %s', (template) => {
    expect(expandVars(template, env)).toMatchObject({ ok: false, expected: expect.stringMatching(/^\$\{NAME\} with NAME a variable name/) as string });
  });
});
