import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { systemClock } from '../clock.js';
import type { Clock, Random } from '../clock.js';
import { readBody } from './http-io.js';
import { listen, urlOf } from './listen.js';
import { fromCanned, intFrom, jsonAnswer, writeAnswer } from './providers/answer.js';
import type { CannedAnswer } from './providers/answer.js';
import { createEchoProvider } from './providers/echo.js';
import { createEmailProvider } from './providers/email.js';
import { FaultPlan } from './providers/faults.js';
import type { InjectedFailure } from './providers/faults.js';
import { createPaymentProvider } from './providers/payment.js';
import type { Provider } from './providers/provider.js';
import { recordRequest } from './providers/recording.js';
import type { RecordedRequest } from './providers/recording.js';
import { createSmsProvider } from './providers/sms.js';
import { parseOrThrow } from './validation.js';

export type { CannedAnswer } from './providers/answer.js';
export type { InjectedFailure } from './providers/faults.js';
export type { Charge } from './providers/payment.js';
export type { RecordedRequest } from './providers/recording.js';
export { SimValidationError } from './validation.js';

export type ProviderKind = 'payment' | 'sms' | 'email' | 'echo';

/** The credentials and limits a provider simulator uses when not told otherwise. */
export const PROVIDER_DEFAULTS = {
  paymentApiKey: 'sk_test_relay',
  smsAccountSid: 'AC123',
  smsAuthToken: 'authtoken',
  smsRatePerSecond: 5,
  emailApiKey: 'SG.relay',
} as const;

interface CommonOptions {
  /**
   * Port to listen on; 0 picks a free one.
   * @default 0
   */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
  /**
   * Fraction of requests answered with `failure` instead of the provider's answer, after any planned fault.
   * @default 0
   */
  failRate?: number;
  /** The answer `failRate` sends. @default { status: 503 } */
  failure?: InjectedFailure;
  /** Random source in [0, 1) for `failRate`. @default Math.random */
  random?: Random;
  /** Clock for `RecordedRequest.at` and the sms rate window. @default systemClock */
  clock?: Clock;
}

export type ProviderSimulatorOptions =
  /** Stripe-like charges; Bearer `apiKey` (@default 'sk_test_relay'). */
  | (CommonOptions & { kind: 'payment'; apiKey?: string })
  /** Twilio-like messages; Basic `accountSid:authToken` (@default 'AC123' / 'authtoken'), `ratePerSecond` (@default 5). */
  | (CommonOptions & { kind: 'sms'; accountSid?: string; authToken?: string; ratePerSecond?: number })
  /** SendGrid-like mail send; Bearer `apiKey` (@default 'SG.relay'). */
  | (CommonOptions & { kind: 'email'; apiKey?: string })
  /** Anything goes; answers the JSON echo, or `answer` when given. */
  | (CommonOptions & { kind: 'echo'; answer?: CannedAnswer });

/** A provider on a real HTTP server, with its traffic recorded and its faults under the test's control. */
export interface ProviderSimulator {
  readonly kind: ProviderKind;
  /** Base URL, e.g. `http://127.0.0.1:40123`. */
  readonly url: string;
  readonly port: number;
  /** Every request received, in arrival order, injected faults included; a fresh array after `reset()`. */
  readonly requests: readonly RecordedRequest[];
  /**
   * Effects carried out: payment, charges created (a replay creates none);
   * sms, messages queued; email, mails accepted; echo, answers sent.
   */
  readonly created: number;
  /** The next `count` requests get `failure` (@default 503). */
  failNext(count: number, failure?: InjectedFailure): void;
  /** The next `count` requests get `answer` instead of the provider's. */
  answerNext(count: number, answer: CannedAnswer): void;
  /** The next `count` requests are read and never answered, until the client or `close()` ends them. */
  hangNext(count: number): void;
  /** The next `count` requests are read, then their connection is reset with no answer. */
  resetNext(count: number): void;
  setFailRate(rate: number, failure?: InjectedFailure): void;
  /** Forgets planned faults and sets the fail rate to 0. */
  clearFaults(): void;
  /** Forgets requests, faults, created effects, idempotency keys and the rate window. */
  reset(): void;
  /** Stops listening and destroys every socket, hanging requests too. Idempotent. */
  close(): Promise<void>;
}

const credential = z.string({ error: 'expected a non-empty string' }).min(1, { error: 'expected a non-empty string' });
// The rest (failRate, failure, answer) is checked where it is used.
const optionsSchema = z.object({
  kind: z.enum(['payment', 'sms', 'email', 'echo'], { error: 'expected payment, sms, email or echo' }),
  port: intFrom(0, 65_535, 'expected an integer port from 0 to 65535').optional(),
  host: credential.optional(),
  apiKey: credential.optional(),
  accountSid: credential.optional(),
  authToken: credential.optional(),
  ratePerSecond: intFrom(1, 1_000_000, 'expected a whole number of calls per second from 1 up').optional(),
});

// Longer than the relay pool's idle timeout, so the relay (not we) closes idle sockets
// and never writes into a socket we are closing.
const KEEP_ALIVE_TIMEOUT_MS = 65_000;

/**
 * Starts a provider-shaped simulator.
 * @throws {SimValidationError} naming a bad option.
 */
export async function startProviderSimulator(options: ProviderSimulatorOptions): Promise<ProviderSimulator> {
  parseOrThrow(optionsSchema, options);
  const clock = options.clock ?? systemClock;
  const faults = new FaultPlan(options.random ?? Math.random);
  if (options.failRate !== undefined || options.failure !== undefined) {
    faults.setFailRate(options.failRate ?? 0, options.failure);
  }
  const provider = providerFor(options, clock);
  let requests: RecordedRequest[] = [];

  const server = createServer({ noDelay: true }, (req, res) => {
    const at = clock.now();
    readBody(req, (body) => {
      const request = recordRequest(req, body ?? Buffer.alloc(0), at);
      requests.push(request);
      if (body === null) {
        return writeAnswer(res, jsonAnswer(413, { error: { message: 'the simulator keeps bodies up to 8 MiB' } }));
      }
      const fault = faults.next();
      if (fault?.kind === 'hang') return;
      if (fault?.kind === 'reset') return void req.socket.resetAndDestroy();
      writeAnswer(res, fault?.kind === 'answer' ? fault.answer : provider.answer(request));
    });
  });

  server.keepAliveTimeout = KEEP_ALIVE_TIMEOUT_MS;
  server.headersTimeout = KEEP_ALIVE_TIMEOUT_MS + 1_000;

  await listen(server, options.port ?? 0, options.host ?? '127.0.0.1');
  const address = server.address() as AddressInfo;

  let closing: Promise<void> | undefined;
  return {
    kind: options.kind,
    url: urlOf(address),
    port: address.port,
    get requests() {
      return requests;
    },
    get created() {
      return provider.created();
    },
    failNext: (count, failure) => faults.failNext(count, failure),
    answerNext: (count, answer) => faults.answerNext(count, answer),
    hangNext: (count) => faults.hangNext(count),
    resetNext: (count) => faults.resetNext(count),
    setFailRate: (rate, failure) => faults.setFailRate(rate, failure),
    clearFaults: () => faults.clear(),
    reset() {
      requests = [];
      faults.clear();
      provider.reset();
    },
    close() {
      closing ??= new Promise<void>((resolve) => {
        // The callback's error only says the server was not listening; closed is closed.
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}

function providerFor(options: ProviderSimulatorOptions, clock: Clock): Provider {
  switch (options.kind) {
    case 'payment':
      return createPaymentProvider(options.apiKey ?? PROVIDER_DEFAULTS.paymentApiKey);
    case 'sms':
      return createSmsProvider({
        accountSid: options.accountSid ?? PROVIDER_DEFAULTS.smsAccountSid,
        authToken: options.authToken ?? PROVIDER_DEFAULTS.smsAuthToken,
        ratePerSecond: options.ratePerSecond ?? PROVIDER_DEFAULTS.smsRatePerSecond,
        clock,
      });
    case 'email':
      return createEmailProvider(options.apiKey ?? PROVIDER_DEFAULTS.emailApiKey);
    case 'echo':
      return createEchoProvider(options.answer === undefined ? undefined : fromCanned(options.answer));
  }
}
