import { hasBearer } from './auth.js';
import { jsonAnswer } from './answer.js';
import type { ProviderAnswer } from './answer.js';
import type { Provider } from './provider.js';
import { mediaType, pathOnly } from './recording.js';
import type { RecordedRequest } from './recording.js';

/**
 * A SendGrid-like mail API: `POST /v3/mail/send` with a JSON body (at least
 * `personalizations: [..]` and `from: { email }`) and a Bearer key, answering
 * 202 with no body and an `X-Message-Id` header.
 */
export function createEmailProvider(apiKey: string): Provider {
  let accepted = 0;

  const send = (request: RecordedRequest): ProviderAnswer => {
    if (mediaType(request) !== 'application/json') {
      return sendgridError(415, 'Content-Type should be application/json.');
    }
    const mail = parseObject(request.body);
    if (mail === undefined) return sendgridError(400, 'Bad Request');
    if (!Array.isArray(mail.personalizations) || mail.personalizations.length === 0) {
      return sendgridError(
        400,
        'The personalizations field is required and must have at least one personalization.',
        'personalizations',
      );
    }
    const from = mail.from as { email?: unknown } | null | undefined;
    if (typeof from?.email !== 'string') {
      return sendgridError(400, 'The from object must be provided for every email send.', 'from');
    }
    accepted += 1;
    const messageId = `sim-message-${String(accepted).padStart(6, '0')}`;
    return { status: 202, headers: { 'x-message-id': messageId }, body: Buffer.alloc(0) };
  };

  return {
    answer(request) {
      if (!hasBearer(request.headers.authorization, apiKey)) {
        return sendgridError(401, 'The provided authorization grant is invalid, expired, or revoked');
      }
      const path = pathOnly(request.path);
      if (path !== '/v3/mail/send') return sendgridError(404, 'Not Found');
      if (request.method !== 'POST') return sendgridError(405, 'Method Not Allowed', null, { allow: 'POST' });
      return send(request);
    },
    created: () => accepted,
    reset() {
      accepted = 0;
    },
  };
}

function parseObject(body: Buffer): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown;
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    return isObject ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

function sendgridError(
  status: number,
  message: string,
  field: string | null = null,
  headers: Record<string, string> = {},
): ProviderAnswer {
  return jsonAnswer(status, { errors: [{ message, field, help: null }] }, headers);
}
