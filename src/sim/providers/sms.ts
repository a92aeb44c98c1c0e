import type { Clock } from '../../clock.js';
import { hasBasic } from './auth.js';
import { jsonAnswer } from './answer.js';
import type { ProviderAnswer } from './answer.js';
import type { Provider } from './provider.js';
import { formFields, pathOnly } from './recording.js';

export interface SmsProviderOptions {
  accountSid: string;
  authToken: string;
  /** Authenticated calls admitted per clock second; the next ones get 429 with `Retry-After: 1`. */
  ratePerSecond: number;
  clock: Clock;
}

const MESSAGES_PATH = /^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/;

/**
 * A Twilio-like Messages API: `POST /2010-04-01/Accounts/:sid/Messages.json`
 * with a form body (`To`, `Body`, optional `From`) and Basic auth
 * (account SID : auth token), answering 201 with the queued message.
 */
export function createSmsProvider(options: SmsProviderOptions): Provider {
  let queued = 0;
  let windowSecond = Number.NaN;
  let admittedInWindow = 0;

  // Counts calls, not messages, as Twilio's concurrency and rate limits do: a refused body still used a slot.
  const admit = (): boolean => {
    const second = Math.floor(options.clock.now() / 1000);
    if (second !== windowSecond) {
      windowSecond = second;
      admittedInWindow = 0;
    }
    if (admittedInWindow >= options.ratePerSecond) return false;
    admittedInWindow += 1;
    return true;
  };

  return {
    answer(request) {
      if (!hasBasic(request.headers.authorization, options.accountSid, options.authToken)) {
        return twilioError(401, 20003, 'Authenticate', { 'www-authenticate': 'Basic realm="Twilio API"' });
      }
      const path = pathOnly(request.path);
      const sid = MESSAGES_PATH.exec(path)?.[1];
      if (sid !== options.accountSid) {
        return twilioError(404, 20404, `The requested resource ${path} was not found`);
      }
      if (request.method !== 'POST') return twilioError(405, 20004, 'Method not allowed', { allow: 'POST' });
      if (!admit()) return twilioError(429, 20429, 'Too Many Requests', { 'retry-after': '1' });

      const fields = formFields(request);
      if (fields === null) return twilioError(415, null, 'Content-Type must be application/x-www-form-urlencoded');
      const to = fields.get('To');
      if (!to) return twilioError(400, 21604, "A 'To' phone number is required.");
      const body = fields.get('Body');
      if (!body) return twilioError(400, 21602, 'Message body is required.');

      queued += 1;
      const messageSid = `SM${queued.toString(16).padStart(32, '0')}`;
      return jsonAnswer(201, {
        sid: messageSid,
        account_sid: sid,
        to,
        from: fields.get('From'),
        body,
        status: 'queued',
        uri: `/2010-04-01/Accounts/${sid}/Messages/${messageSid}.json`,
      });
    },
    created: () => queued,
    reset() {
      queued = 0;
      windowSecond = Number.NaN;
      admittedInWindow = 0;
    },
  };
}

// `code` is Twilio's error number where Twilio has one for the case.
function twilioError(
  status: number,
  code: number | null,
  message: string,
  headers: Record<string, string> = {},
): ProviderAnswer {
  return jsonAnswer(
    status,
    { code, message, more_info: code === null ? null : `https://www.twilio.com/docs/errors/${code}`, status },
    headers,
  );
}
