/**
 * Standalone provider simulators for the demo (`npm run providers`): payment,
 * sms and email on fixed ports. With `main.ts`, the only simulator files that
 * read the environment, listen for good and handle signals.
 */
import { z } from 'zod';
import { envPort, fail, parseEnv } from './env.js';
import { PROVIDER_DEFAULTS, startProviderSimulator } from './providers.js';
import type { ProviderSimulator, ProviderSimulatorOptions } from './providers.js';

const secret = z.string();

const envSchema = z.object({
  PROVIDERS_HOST: z.string().default('127.0.0.1'),
  PAY_PORT: envPort.default(4101),
  SMS_PORT: envPort.default(4102),
  EMAIL_PORT: envPort.default(4103),
  PAY_API_KEY: secret.default(PROVIDER_DEFAULTS.paymentApiKey),
  SMS_USER: secret.default(PROVIDER_DEFAULTS.smsAccountSid),
  SMS_PASS: secret.default(PROVIDER_DEFAULTS.smsAuthToken),
  EMAIL_API_KEY: secret.default(PROVIDER_DEFAULTS.emailApiKey),
});

async function main(): Promise<void> {
  const env = parseEnv(envSchema, process.env);
  const host = env.PROVIDERS_HOST;
  // Secrets are named by their variable, never printed.
  const servers: Array<{ options: ProviderSimulatorOptions; describe: (url: string) => string }> = [
    {
      options: { kind: 'payment', host, port: env.PAY_PORT, apiKey: env.PAY_API_KEY },
      describe: (url) => `Payment provider (Stripe-like) on ${url}: POST /v1/charges, Bearer PAY_API_KEY`,
    },
    {
      options: { kind: 'sms', host, port: env.SMS_PORT, accountSid: env.SMS_USER, authToken: env.SMS_PASS },
      describe: (url) =>
        `SMS provider (Twilio-like) on ${url}: POST /2010-04-01/Accounts/${env.SMS_USER}/Messages.json, Basic SMS_USER:SMS_PASS`,
    },
    {
      options: { kind: 'email', host, port: env.EMAIL_PORT, apiKey: env.EMAIL_API_KEY },
      describe: (url) => `Email provider (SendGrid-like) on ${url}: POST /v3/mail/send, Bearer EMAIL_API_KEY`,
    },
  ];

  const started: ProviderSimulator[] = [];
  const closeAll = (): Promise<unknown> => Promise.allSettled(started.map((sim) => sim.close()));
  for (const { options, describe } of servers) {
    try {
      const sim = await startProviderSimulator(options);
      started.push(sim);
      process.stdout.write(`${describe(sim.url)}\n`);
    } catch (error) {
      await closeAll();
      const code = (error as NodeJS.ErrnoException).code ?? '';
      fail(`The ${options.kind} provider could not start on ${host}:${String(options.port)}: ${code || String(error)}`);
    }
  }

  const stop = (): void => {
    void closeAll().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

void main();
