import { describe, expect, it } from 'vitest';
import { startProviderSimulator } from '../src/sim/providers.js';
import { useProcessTestScope } from './helpers/process-test-scope.js';
import { startRelayProcess } from './helpers/relay-process.js';
import { eventually } from './helpers/test-relay.js';

const { tempDb, defer } = useProcessTestScope('relay-outcome-unknown');

describe('a key whose outcome was never recorded', () => {
  it(
    'after kill -9 between the send and its record, a resend of the key is told the outcome is unknown and nothing is sent again',
    async () => {
      const provider = await startProviderSimulator({ kind: 'echo' });
      defer(() => provider.close());
      // Deadline 1 s: the key's lease (deadline + 5 s) ends 6 s after the request came in.
      const env = { SQLITE_PATH: tempDb(), DOWNSTREAM_URL: `${provider.url}/`, REQUEST_DEADLINE_MS: '1000', DOWNSTREAM_TIMEOUT_MS: '1000' };
      provider.hangNext(1);
      const first = await startRelayProcess(env);
      const send = (url: string) =>
        fetch(`${url}/relay`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'pay-once-77' }, body: '{"amount":4200}' });
      void send(first.url).catch(() => undefined);
      await eventually(() => provider.requests.length === 1, 5_000);
      await first.kill('SIGKILL');

      const second = await startRelayProcess(env);
      // While the dead holder's lease lasts, a resend is told the key is in flight.
      expect((await send(second.url)).status).toBe(409);
      await new Promise((resolve) => setTimeout(resolve, 6_500));
      const resend = await send(second.url);
      expect(resend.status).toBe(409);
      expect(await resend.json()).toMatchObject({ code: 'IDEMPOTENCY_OUTCOME_UNKNOWN' });
      expect(provider.requests).toHaveLength(1);
      expect(await (await fetch(`${second.url}/stats`)).json()).toMatchObject({ idempotency: { outcomeUnknown: 1 } });
    },
    30_000,
  );
});
