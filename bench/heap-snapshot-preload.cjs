// Preloaded into the agent by `npm run bench:agent -- --heap-snapshot-dir DIR` (node --require):
// SIGUSR2 writes a heap snapshot to $HCP_HEAP_SNAPSHOT_DIR, under a temporary name renamed when
// complete, so the bench sees only whole files. (--heapsnapshot-signal left an empty file on the
// bundled agent at 5,000 ASICs: the snapshot never finished.)
'use strict';
const { renameSync } = require('node:fs');
const { join } = require('node:path');
const { writeHeapSnapshot } = require('node:v8');

const dir = process.env.HCP_HEAP_SNAPSHOT_DIR;
if (dir) {
  process.on('SIGUSR2', () => {
    const file = join(dir, `agent-${process.pid}-${Date.now()}.heapsnapshot`);
    writeHeapSnapshot(`${file}.part`);
    renameSync(`${file}.part`, file);
  });
}
