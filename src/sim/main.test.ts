import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const entry = fileURLToPath(new URL('./main.ts', import.meta.url));

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

describe('npm run downstream', () => {
  it('exits 1 with one line naming a bad variable, its value and what was expected', async () => {
    const run = runMain({ SIM_FAIL_RATE: 'lots' });
    expect(await run.exited).toBe(1);
    expect(run.output().stderr).toBe('Invalid SIM_FAIL_RATE="lots": expected a number from 0 to 1\n');
  });

  it('prints its URL when listening and exits 0 on SIGTERM', async () => {
    const run = runMain({ SIM_PORT: '0', SIM_FAIL_RATE: '0' });
    try {
      await expectServesAndStops(run);
    } finally {
      run.child.kill('SIGKILL');
    }
  });
});

async function expectServesAndStops(run: ReturnType<typeof runMain>): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!run.output().stdout.includes('http://') && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const url = /http:\/\/\S+/.exec(run.output().stdout)?.[0];
  expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  const res = await fetch(`${url}/ping`, { method: 'POST', body: '{}' });
  expect(res.status).toBe(200);
  run.child.kill('SIGTERM');
  expect(await run.exited).toBe(0);
}
