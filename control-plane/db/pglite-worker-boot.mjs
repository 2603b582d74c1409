// The embedded database's worker thread starts here (client.ts): tsx's API compiles
// pglite-worker.ts. A worker thread on Node 20 does not inherit tsx's loader from `tsx main.ts`,
// nor vitest's transform, so the worker registers it itself.
import { tsImport } from 'tsx/esm/api';

await tsImport('./pglite-worker.ts', import.meta.url);
