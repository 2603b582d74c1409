// V8 flags for the agent's heap, set before any other module of the agent is evaluated (the
// first import of agent/main.ts). Node 20's single executable takes no execArgv, and the
// binary must not re-spawn itself, so what cannot be set after V8 has made the heap is out of
// reach: --max-semi-space-size given to v8.setFlagsFromString at run time changes nothing (the
// young generation still grew to 16 MB per semi-space; NODE_OPTIONS would work, but it is the
// operator's environment, not the binary). The three below are read by V8 at every
// collection, so setting them now takes effect.
import { setFlagsFromString } from 'node:v8';

// No allocation-site pretenuring: in the first seconds, while the young generation is small, a
// scavenge in the middle of a sampling tick finds every sample of the tick alive, V8 decides
// that site's objects live long and from then on allocates every device's sample of every tick
// in the old generation. At 5,000 ASICs that was 2 MB/s of garbage there and an old generation
// growing 40 → 110 MB between collections (bench:agent, README "Capacity").
setFlagsFromString('--no-allocation-site-pretenuring');

// The young generation stays at its initial 1 MB per semi-space: V8 grows it by this factor when
// much survives a scavenge (the start builds 5,000 simulated miners at once; a tick's samples
// lived through scavenges), and it sat at the 16 MB maximum, 32 MB of RSS for the agent's life,
// never shrunk while the agent allocates megabytes a second. A sampling tick keeps
// little alive now (agent/telemetry-encoding.ts, sim-hardware/agent-driver.ts), so the small
// young generation costs a few scavenges a tick and little promotion: at 5,000 ASICs RSS p50
// 127 → 98 MB, CPU 3.4 → 3.2 % of a core (the built binary, one 40 s run each; README "The
// agent's memory").
setFlagsFromString('--semi-space-growth-factor=1');

// The old generation may grow to 1.3 × what the last full collection left alive before the
// next one, where V8's own factor (up to 4 for a fast-allocating heap) let it reach 35 MB over
// 27 MB alive at 5,000 ASICs: RSS p50 98 → 91 MB for +0.2 % of a core.
setFlagsFromString('--heap-growing-percent=30');
