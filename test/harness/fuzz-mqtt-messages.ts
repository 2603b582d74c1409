// Random MQTT traffic: who connects (an agent login of the fuzz site, a feed login, anonymous,
// a reader, bad logins), with which client id, and what it publishes where: topics with `+`, `#`,
// NUL, `$` and 70,000 characters, QoS 0-2, retained or not, random bytes, protobuf
// TelemetryBatches with extreme values (NaN, the infinities, negatives, 4e9 in int fields,
// far-future and far-past times, seq 2^53-1, arrays near the packet limit), JSON prices and
// frequencies of the wrong types.
import fc from 'fast-check';
import { GpuState, MiningState, TelemetryBatch, type AsicSample, type GpuSample } from '../../proto/gen/hcp/v1/telemetry.js';
import { someBytes, trickyNumber, trickyString } from './fuzz-arbitraries.js';
import { FUZZ_ASICS, FUZZ_GPUS, FUZZ_SITE } from './fuzz-target.js';


export type Login = 'agent' | 'feed' | 'anonymous' | 'viewer' | 'bad_secret' | 'unknown_user' | 'customer' | 'agent_as_other_site';

/** a sample time: 'now' is filled in by the test with a time unique to the case, so its rows can be found */
export type SampleTime = 'now' | number;

export interface GpuSpec extends Omit<GpuSample, 'tsMs'> {
  ts: SampleTime;
}
export interface AsicSpec extends Omit<AsicSample, 'tsMs'> {
  ts: SampleTime;
}
export interface BatchSpec {
  siteId: string;
  seq: number;
  sentAtMs: number;
  /** 'fresh': a session of its own, so no earlier case makes this batch a replay */
  agentSession: string | 'fresh';
  gpus: GpuSpec[];
  asics: AsicSpec[];
}

export type Payload = { kind: 'batch'; batch: BatchSpec } | { kind: 'bytes'; bytes: Uint8Array } | { kind: 'json'; text: string } | { kind: 'huge'; bytes: number };

export interface Publish {
  topic: string;
  payload: Payload;
  qos: 0 | 1 | 2;
  retain: boolean;
}

export interface MqttCase {
  login: Login;
  clientId: string | null;
  clean: boolean;
  publish: Publish;
}

const DAY = 86_400_000;
const sampleTime: fc.Arbitrary<SampleTime> = fc.oneof(
  { weight: 12, arbitrary: fc.constant<SampleTime>('now') },
  { weight: 1, arbitrary: fc.constantFrom(0, -1, 1, 8.64e15, -8.64e15, 2 ** 53 - 1, Date.now() + 301_000, Date.now() - DAY - 1000, Date.now() + 10 * 365 * DAY) },
);

/** mostly in range; now and then one of the tricky numbers */
// (even the in-range doubles include subnormals, 5e-324, that float4 cannot hold: ingest refuses them)
const val = (ok: fc.Arbitrary<number>) => fc.oneof({ weight: 30, arbitrary: ok }, { weight: 1, arbitrary: trickyNumber });
/** uint32 fields (xid_errors, fan_rpm): int4 holds them up to 2^31-1 */
const uint32 = (max: number) =>
  fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 0, max }) }, { weight: 1, arbitrary: fc.constantFrom(2 ** 31 - 1, 2 ** 31, 4e9, 2 ** 32 - 1) });
/** uint64 fields: what a JS number holds exactly, and past it (the decoder refuses those) */
const uint64 = fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 0, max: 1e9 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 2 ** 31, 4e9, 2 ** 53 - 1, 2 ** 53 + 2, 1.8e19) });
const text = fc.oneof({ weight: 10, arbitrary: fc.constantFrom('', 'wl-1') }, { weight: 1, arbitrary: trickyString });

const gpuSpec: fc.Arbitrary<GpuSpec> = fc.record({
  deviceId: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...FUZZ_GPUS) }, { weight: 1, arbitrary: fc.constantFrom(FUZZ_ASICS[0]!, 'gpu-steady-1-0001', 'gpu-nope') }, { weight: 1, arbitrary: trickyString }),
  ts: sampleTime,
  utilizationPct: val(fc.double({ min: 0, max: 100, noNaN: true })),
  memoryUsedMib: val(fc.double({ min: 0, max: 40_000, noNaN: true })),
  memoryTotalMib: val(fc.constant(81_559)),
  temperatureC: val(fc.double({ min: -40, max: 150, noNaN: true })),
  powerW: val(fc.double({ min: 0, max: 800, noNaN: true })),
  smClockMhz: val(fc.double({ min: 0, max: 2000, noNaN: true })),
  state: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(GpuState.GPU_STATE_IDLE, GpuState.GPU_STATE_BUSY, GpuState.GPU_STATE_FAULT) }, { weight: 1, arbitrary: fc.constantFrom(GpuState.GPU_STATE_UNSPECIFIED, 99 as GpuState, -5 as GpuState) }),
  workloadId: text,
  memoryTemperatureC: val(fc.double({ min: 0, max: 100, noNaN: true })),
  powerLimitW: val(fc.constant(700)),
  energyMj: uint64,
  xidErrors: uint32(100),
});

const temps = fc.oneof({ weight: 10, arbitrary: fc.array(fc.double({ min: 20, max: 90, noNaN: true }), { minLength: 1, maxLength: 4 }) }, { weight: 1, arbitrary: fc.array(trickyNumber, { maxLength: 20 }) });


const asicSpec: fc.Arbitrary<AsicSpec> = fc.record({
  deviceId: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...FUZZ_ASICS) }, { weight: 1, arbitrary: fc.constantFrom(FUZZ_GPUS[0]!, 'asic-steady-1-00001') }, { weight: 1, arbitrary: trickyString }),
  ts: sampleTime,
  hashrate5sThs: val(fc.double({ min: 0, max: 300, noNaN: true })),
  hashrateAvgThs: val(fc.double({ min: 0, max: 300, noNaN: true })),
  powerW: val(fc.double({ min: 0, max: 4000, noNaN: true })),
  boardTemperaturesC: temps,
  chipTemperaturesC: temps,
  fanRpm: fc.oneof({ weight: 10, arbitrary: fc.array(uint32(7000), { maxLength: 4 }) }, { weight: 1, arbitrary: fc.array(uint32(7000), { minLength: 17, maxLength: 40 }) }),
  acceptedShares: uint64,
  rejectedShares: uint64,
  hardwareErrors: uint64,
  miningState: fc.oneof({ weight: 10, arbitrary: fc.constantFrom(MiningState.MINING_STATE_MINING, MiningState.MINING_STATE_SLEEPING, MiningState.MINING_STATE_RAMPING) }, { weight: 1, arbitrary: fc.constantFrom(0 as MiningState, 42 as MiningState) }),
  powerTargetW: val(fc.constantFrom(0, 3000)),
});

/** a batch near the 1 MiB packet limit: a few thousand samples of one device, each its own time */
const BIG = { count: 6000 };

export const batchSpec: fc.Arbitrary<BatchSpec> = fc.record({
  siteId: fc.oneof({ weight: 12, arbitrary: fc.constant(FUZZ_SITE) }, { weight: 1, arbitrary: fc.constantFrom('steady-1', '', 'FUZZ-1') }, { weight: 1, arbitrary: trickyString }),
  seq: fc.oneof({ weight: 10, arbitrary: fc.integer({ min: 1, max: 1_000_000 }) }, { weight: 1, arbitrary: fc.constantFrom(0, 2 ** 53 - 1, 2 ** 53 + 2, 1.8e19) }),
  sentAtMs: fc.oneof({ weight: 10, arbitrary: fc.constant(Date.now()) }, { weight: 1, arbitrary: fc.constantFrom(0, -1, 8.64e15, 2 ** 53 - 1, -(2 ** 53) + 1) }),
  agentSession: fc.oneof({ weight: 10, arbitrary: fc.constant<'fresh'>('fresh') }, { weight: 1, arbitrary: fc.constantFrom('', 'fixed-session') }, { weight: 1, arbitrary: trickyString }),
  gpus: fc.oneof({ weight: 10, arbitrary: fc.array(gpuSpec, { maxLength: 4 }) }, { weight: 1, arbitrary: gpuSpec.map((g) => Array.from({ length: BIG.count }, () => ({ ...g, deviceId: FUZZ_GPUS[0]!, ts: 'now' as const }))) }),
  asics: fc.array(asicSpec, { maxLength: 4 }),
});

const OWN = {
  telemetry: `hcp/v1/sites/${FUZZ_SITE}/telemetry`,
  status: `hcp/v1/sites/${FUZZ_SITE}/status`,
};

export const TOPICS = {
  ...OWN,
  market: ['hcp/v1/market/btc_usd', 'hcp/v1/market/gpu_spot', `hcp/v1/market/power/${FUZZ_SITE}`, 'hcp/v1/market/power/nope-1', 'hcp/v1/grid/ercot/frequency', 'hcp/v1/grid/ieso/frequency'],
  others: [
    'hcp/v1/sites/steady-1/telemetry', 'hcp/v1/sites/steady-1/status', 'hcp/v1/sites/texas-1/telemetry', 'hcp/v1/sites/FUZZ-1/telemetry', 'hcp/v1/sites/fuzz-1/telemetry/x',
    'hcp/v1/sites/+/telemetry', 'hcp/v1/sites/#', 'hcp/v1/#', '#', '+', '$SYS/broker/x', '$hcp/forbidden/x', '$hcp/unknown/hcp/v1/market/btc_usd', 'hcp/v1/market/oil',
    'hcp/v1/grid/ERCOT/frequency', 'hcp/v1', '/hcp/v1/market/btc_usd', 'hcp//v1', 'a\u0000b',
    // near MQTT's longest string (65,535 bytes); a client cannot send a longer one
    `hcp/v1/sites/${'a'.repeat(60_000)}/telemetry`,
  ],
};

const topic: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.constant(OWN.telemetry) },
  { weight: 2, arbitrary: fc.constant(OWN.status) },
  { weight: 4, arbitrary: fc.constantFrom(...TOPICS.market) },
  { weight: 3, arbitrary: fc.constantFrom(...TOPICS.others) },
  { weight: 1, arbitrary: trickyString.filter((s) => s.length > 0 && Buffer.byteLength(s) < 65_535) },
);

const price = fc.oneof(
  { weight: 4, arbitrary: fc.record({ ts: fc.constant(new Date().toISOString()), price: fc.double({ min: -5, max: 100_000, noNaN: true }) }).map((o) => JSON.stringify(o)) },
  { weight: 2, arbitrary: fc.record({ ts: fc.oneof(fc.constant(new Date().toISOString()), trickyString), price: fc.oneof(trickyNumber, trickyString, fc.constant(null)) }).map((o) => JSON.stringify(o)) },
  { weight: 2, arbitrary: fc.record({ ts: fc.constant(new Date().toISOString()), hz: fc.oneof(fc.double({ min: 55, max: 65, noNaN: true }), trickyNumber) }).map((o) => JSON.stringify(o)) },
  { weight: 3, arbitrary: fc.constantFrom('{"ts":"2026-11-24T00:00:00Z","price":1e999}', '{"ts":"-271821-04-20T00:00:00.000Z","price":1}', '{"ts":"+275760-09-13T00:00:00.000Z","hz":60}', '{"price":1}', '[]', 'null', '{', '', '{"ts":"2026-11-24T00:00:00Z","price":"5"}', '{"ts":"2026-11-24T00:00:00Z","hz":-60}') },
  { weight: 1, arbitrary: fc.constant(JSON.stringify({ site: FUZZ_SITE, state: 'online', session: 'fuzz', ts: new Date().toISOString() })) },
);

const payloadFor = (t: string): fc.Arbitrary<Payload> =>
  fc.oneof(
    { weight: t === OWN.telemetry ? 12 : 1, arbitrary: batchSpec.map((batch) => ({ kind: 'batch' as const, batch })) },
    { weight: t === OWN.telemetry ? 2 : 6, arbitrary: price.map((text) => ({ kind: 'json' as const, text })) },
    { weight: 2, arbitrary: someBytes.map((bytes) => ({ kind: 'bytes' as const, bytes })) },
    // past the broker's 1 MiB packet limit: the connection is cut at the packet's header
    { weight: 1, arbitrary: fc.constantFrom(1024 * 1024 - 2000, 1024 * 1024 + 1).map((bytes) => ({ kind: 'huge' as const, bytes })) },
  );

export const publish: fc.Arbitrary<Publish> = topic.chain((t) =>
  fc.record({ topic: fc.constant(t), payload: payloadFor(t), qos: fc.constantFrom<0 | 1 | 2>(0, 1, 1, 2), retain: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }) }),
);

export const clientId: fc.Arbitrary<string | null> = fc.oneof(
  { weight: 8, arbitrary: fc.constant(null) },
  { weight: 2, arbitrary: fc.constantFrom('fuzz-client', `hcp-agent-${FUZZ_SITE}-fuzz`, 'hcp-agent-steady-1-steady', 'hcp-ingest-0', 'hcp-key-fuzz-feed-x', 'hcp-key-root', 'hcp-', '') },
  { weight: 1, arbitrary: trickyString.filter((s) => s.length > 0 && Buffer.byteLength(s) < 65_535) },
);

export const mqttCase: fc.Arbitrary<MqttCase> = fc.record({
  login: fc.oneof(
    { weight: 8, arbitrary: fc.constant<Login>('agent') },
    { weight: 3, arbitrary: fc.constantFrom<Login>('feed', 'anonymous') },
    { weight: 1, arbitrary: fc.constantFrom<Login>('viewer', 'bad_secret', 'unknown_user', 'customer', 'agent_as_other_site') },
  ),
  clientId,
  clean: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  publish,
});

/** the bytes of a payload; sample times of 'now' become `now(device)` (unique per device, increasing) */
export function payloadBytes(p: Payload, now: (deviceId: string) => number, session: string): { bytes: Buffer; batch?: TelemetryBatch } {
  switch (p.kind) {
    case 'bytes':
      return { bytes: Buffer.from(p.bytes) };
    case 'json':
      return { bytes: Buffer.from(p.text, 'utf8') };
    case 'huge':
      return { bytes: Buffer.alloc(p.bytes, 0x61) };
    case 'batch': {
      const b = p.batch;
      const ts = (t: SampleTime, id: string) => (t === 'now' ? now(id) : t);
      const batch: TelemetryBatch = {
        siteId: b.siteId, seq: b.seq, sentAtMs: b.sentAtMs, agentSession: b.agentSession === 'fresh' ? session : b.agentSession,
        gpus: b.gpus.map(({ ts: t, ...g }) => ({ ...g, tsMs: ts(t, g.deviceId) })),
        asics: b.asics.map(({ ts: t, ...a }) => ({ ...a, tsMs: ts(t, a.deviceId) })),
      };
      return { bytes: Buffer.from(TelemetryBatch.encode(batch).finish()), batch };
    }
  }
}
