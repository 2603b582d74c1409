// The web console's build (docs/console.md): Vite bundles web/src into web/dist, which the
// control plane serves at / (control-plane/http/static.ts). JSX is compiled for Preact by Vite's
// own transform (Vite 8: Oxc, the successor of its esbuild step), from the automatic runtime.
import { defineConfig } from 'vite';

export default defineConfig({
  root: import.meta.dirname,
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 400 },
  server: {
    // `npx vite web` during development: the API of a control plane on :8080
    proxy: { '/api': 'http://127.0.0.1:8080', '/openapi.json': 'http://127.0.0.1:8080' },
  },
  logLevel: 'warn',
});
