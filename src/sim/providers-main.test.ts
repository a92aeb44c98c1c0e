import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const entry = fileURLToPath(new URL('./providers-main.ts', import.meta.url));

function runMain(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', entry], {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, exited, output: () => ({ stdout, stderr }) };
}

describe('npm run providers', () => {
  it('exits 1 with one line naming a bad port variable', async () => {
    const run = runMain({ SMS_PORT: 'twelve' });
    expect(await run.exited).toBe(1);
    expect(run.output().stderr).toBe('Invalid SMS_PORT="twelve": expected an integer port from 0 to 65535\n');
  });

  it('logs one line per provider, serves each with the keys from the environment, and exits 0 on SIGTERM', async () => {
    const run = runMain({ PAY_PORT: '0', SMS_PORT: '0', EMAIL_PORT: '0', PAY_API_KEY: 'sk_test_from_env' });
    try {
      const deadline = Date.now() + 10_000;
      while (run.output().stdout.split('\n').length < 4 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const lines = run.output().stdout.trim().split('\n');
      expect(lines).toHaveLength(3);
      expect(run.output().stdout).not.toContain('sk_test_from_env');
      const [payUrl, smsUrl, emailUrl] = lines.map((line) => /http:\/\/127\.0\.0\.1:\d+/.exec(line)?.[0]);

      const charge = await fetch(`${payUrl}/v1/charges`, {
        method: 'POST',
        headers: { authorization: 'Bearer sk_test_from_env', 'content-type': 'application/x-www-form-urlencoded' },
        body: 'amount=4200&currency=usd',
      });
      const sms = await fetch(`${smsUrl}/2010-04-01/Accounts/AC123/Messages.json`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from('AC123:authtoken').toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
        },
        body: 'To=%2B15550001111&Body=hi',
      });
      const mail = await fetch(`${emailUrl}/v3/mail/send`, {
        method: 'POST',
        headers: { authorization: 'Bearer SG.relay', 'content-type': 'application/json' },
        body: JSON.stringify({ personalizations: [{ to: [{ email: 'a@example.com' }] }], from: { email: 'b@example.com' } }),
      });
      expect([charge.status, sms.status, mail.status]).toEqual([200, 201, 202]);

      run.child.kill('SIGTERM');
      expect(await run.exited).toBe(0);
    } finally {
      run.child.kill('SIGKILL');
    }
  });
});
