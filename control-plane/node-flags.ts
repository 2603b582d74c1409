// The Node/V8 flags the control plane runs with, wherever it is started: scripts/start.ts
// (npm start), test/harness/processes.ts (tests and benchmarks) and package.json's
// `control-plane` script (the Dockerfile's command), which repeats them (a test compares).
//
// --max-semi-space-size=64 (MB; V8's default is 16 on 64-bit): at 50,000 samples/s the young
// generation was scavenged 15 times a second and rows still waiting for their flush survived each
// scavenge to be copied and promoted. With 64 MB, bench:ingest -- --steps 50000 --step-s 30 on
// PostgreSQL, two runs each way, alternated: control plane CPU 61 -> 53 % and 71 -> 57 %,
// `GET /api/v1/status` p99 172 -> 111 ms and 486 -> 372 ms; RSS p50 +90 to +170 MB.
export const CONTROL_PLANE_NODE_FLAGS = ['--max-semi-space-size=64'] as const;
