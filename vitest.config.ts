import { defineConfig } from 'vitest/config';
export default defineConfig({ test: { globalSetup: ['test/harness/global-setup.ts'], include: ['**/*.test.ts'], exclude: ['node_modules/**', 'dist/**'], testTimeout: 30000, hookTimeout: 60000 } });
