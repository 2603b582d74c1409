#!/usr/bin/env node
// The `hcp` bin: the CLI's TypeScript run through tsx, resolved from this file (not the caller's
// working directory), so `npx hcp` works from anywhere in the clone.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
// EPIPE: the reader went away (`hcp devices | head`); that is not an error of ours.
process.stdout.on('error', (e) => process.exit(e.code === 'EPIPE' ? 0 : 1));
process.exitCode = await main(process.argv.slice(2));
