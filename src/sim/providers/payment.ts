import { hasBearer } from './auth.js';
import { jsonAnswer } from './answer.js';
import type { ProviderAnswer } from './answer.js';
import type { Provider } from './provider.js';
import { formFields, pathOnly } from './recording.js';
import type { RecordedRequest } from './recording.js';

export interface Charge {
  id: string;
  object: 'charge';
  amount: number;
  currency: string;
  status: 'succeeded';
}

interface StoredCall {
  /** The form fields, sorted, so that `a=1&b=2` and `b=2&a=1` are the same parameters. */
  params: string;
  answer: ProviderAnswer;
}

/**
 * A Stripe-like charges API: `POST /v1/charges` (form body, Bearer key) and
 * `GET /v1/charges/:id`. As Stripe does, an `Idempotency-Key` stores the
 * answer of a call that passed validation; the same key with the same
 * parameters gets it again with `Idempotent-Replayed: true` and creates
 * nothing; with other parameters it gets 400 `idempotency_error`.
 */
export function createPaymentProvider(apiKey: string): Provider {
  const charges = new Map<string, Charge>();
  const byKey = new Map<string, StoredCall>();

  const create = (request: RecordedRequest): ProviderAnswer => {
    const fields = formFields(request);
    if (fields === null) {
      return stripeError(415, 'Content-Type must be application/x-www-form-urlencoded.');
    }
    const key = request.headers['idempotency-key'];
    const params = JSON.stringify([...fields].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    const stored = key === undefined ? undefined : byKey.get(key);
    if (stored !== undefined) {
      if (stored.params !== params) {
        const message =
          'Keys for idempotent requests can only be used with the same parameters they were first used with. ' +
          `Try using a key other than '${key}' if you meant to execute a different request.`;
        return stripeError(400, message, { type: 'idempotency_error' });
      }
      return { ...stored.answer, headers: { ...stored.answer.headers, 'idempotent-replayed': 'true' } };
    }

    const amount = fields.get('amount') ?? '';
    if (!/^[1-9]\d{0,11}$/.test(amount)) {
      return stripeError(400, 'Invalid positive integer', { param: 'amount', code: 'parameter_invalid_integer' });
    }
    const currency = (fields.get('currency') ?? '').toLowerCase();
    if (!/^[a-z]{3}$/.test(currency)) {
      return stripeError(400, `Invalid currency: ${currency}.`, { param: 'currency', code: 'invalid_currency' });
    }
    const charge: Charge = {
      id: `ch_sim_${String(charges.size + 1).padStart(6, '0')}`,
      object: 'charge',
      amount: Number(amount),
      currency,
      status: 'succeeded',
    };
    charges.set(charge.id, charge);
    const answer = jsonAnswer(200, charge, key === undefined ? {} : { 'idempotency-key': key });
    if (key !== undefined) byKey.set(key, { params, answer });
    return answer;
  };

  const retrieve = (id: string): ProviderAnswer => {
    const charge = charges.get(id);
    if (charge === undefined) {
      return stripeError(404, `No such charge: '${id}'`, { param: 'id', code: 'resource_missing' });
    }
    return jsonAnswer(200, charge);
  };

  return {
    answer(request) {
      if (!hasBearer(request.headers.authorization, apiKey)) {
        return stripeError(401, 'Invalid API Key provided.', {}, { 'www-authenticate': 'Bearer realm="Stripe"' });
      }
      const path = pathOnly(request.path);
      if (path === '/v1/charges') return request.method === 'POST' ? create(request) : notAllowed('POST');
      const id = /^\/v1\/charges\/([^/]+)$/.exec(path)?.[1];
      if (id !== undefined) return request.method === 'GET' ? retrieve(id) : notAllowed('GET');
      return stripeError(404, `Unrecognized request URL (${request.method}: ${path}).`);
    },
    created: () => charges.size,
    reset() {
      charges.clear();
      byKey.clear();
    },
  };
}

function notAllowed(allow: string): ProviderAnswer {
  return stripeError(405, `This endpoint accepts ${allow} only.`, {}, { allow });
}

function stripeError(
  status: number,
  message: string,
  extra: { type?: string; param?: string; code?: string } = {},
  headers: Record<string, string> = {},
): ProviderAnswer {
  return jsonAnswer(status, { error: { type: 'invalid_request_error', message, ...extra } }, headers);
}
