import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'scripts/**/*.test.ts', 'bench/**/*.test.ts'],
    environment: 'node',
    // Behaviour tests start real HTTP servers; a few seconds is normal on two cores.
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
  },
});
