// The sampling tick's TelemetryBatch, encoded to the bytes TelemetryBatch.encode writes
// (agent/telemetry-encoding.test.ts compares them) but without its garbage for every ASIC sample.
// The generated AsicSample.encode walks each sensor list with for…of and writes each 64-bit
// field through a BigInt and a { lo, hi } object: about 330 bytes of short-lived objects per
// sample, 1.7 MB a tick at 5,000 ASICs, the larger part of what the agent allocated. At that
// rate the young generation had to be 16 MB per semi-space for the tick's samples to die before
// they were promoted (agent/heap-flags.ts, README "Capacity").
import type { BinaryWriter } from '@bufbuild/protobuf/wire';
import { TelemetryBatch, type AsicSample } from '../proto/gen/hcp/v1/telemetry.js';

/** a varint past 32 bits is built here, then copied in (the writer's own 64-bit path is private) */
const scratch = new Uint8Array(10);
const views = Array.from({ length: scratch.length + 1 }, (_, n) => scratch.subarray(0, n));

/** a non-negative safe integer as a varint: the bytes uint64 and a non-negative int64 write */
function varint(w: BinaryWriter, n: number): void {
  if (n <= 0xffff_ffff) {
    w.uint32(n);
    return;
  }
  let len = 0;
  while (n >= 128) {
    scratch[len++] = (n % 128) | 128;
    n = Math.floor(n / 128);
  }
  scratch[len++] = n;
  w.raw(views[len]!);
}

const uint64 = (w: BinaryWriter, v: number) => (Number.isSafeInteger(v) && v >= 0 ? varint(w, v) : w.uint64(v));
const int64 = (w: BinaryWriter, v: number) => (Number.isSafeInteger(v) && v >= 0 ? varint(w, v) : w.int64(v));

function packedDoubles(w: BinaryWriter, tag: number, xs: readonly number[]): void {
  if (xs.length === 0) return;
  w.uint32(tag).fork();
  for (let i = 0; i < xs.length; i++) w.double(xs[i]!);
  w.join();
}

/** AsicSample.encode's fields, in its order and with its defaults left out */
function asicSample(w: BinaryWriter, m: AsicSample): void {
  if (m.deviceId !== '') w.uint32(10).string(m.deviceId);
  if (m.tsMs !== 0) int64(w.uint32(16), m.tsMs);
  if (m.hashrate5sThs !== 0) w.uint32(25).double(m.hashrate5sThs);
  if (m.hashrateAvgThs !== 0) w.uint32(33).double(m.hashrateAvgThs);
  if (m.powerW !== 0) w.uint32(41).double(m.powerW);
  packedDoubles(w, 50, m.boardTemperaturesC);
  packedDoubles(w, 58, m.chipTemperaturesC);
  if (m.fanRpm.length !== 0) {
    w.uint32(66).fork();
    for (let i = 0; i < m.fanRpm.length; i++) w.uint32(m.fanRpm[i]!);
    w.join();
  }
  if (m.acceptedShares !== 0) uint64(w.uint32(72), m.acceptedShares);
  if (m.rejectedShares !== 0) uint64(w.uint32(80), m.rejectedShares);
  if (m.hardwareErrors !== 0) uint64(w.uint32(88), m.hardwareErrors);
  if (m.miningState !== 0) w.uint32(96).int32(m.miningState);
  if (m.powerTargetW !== 0) w.uint32(105).double(m.powerTargetW);
}

/** the batch's bytes, as TelemetryBatch.encode(batch, w).finish() returns them */
export function encodeTelemetryBatch(batch: TelemetryBatch, w: BinaryWriter): Uint8Array {
  // fields 1–5 (and the GPUs, tens to hundreds a site) by the generated code; then 6 and 7
  TelemetryBatch.encode({ ...batch, asics: [], stream: undefined }, w);
  const asics = batch.asics;
  for (let i = 0; i < asics.length; i++) {
    w.uint32(50).fork();
    asicSample(w, asics[i]!);
    w.join();
  }
  if (batch.stream !== undefined) w.uint32(58).string(batch.stream);
  return w.finish();
}
