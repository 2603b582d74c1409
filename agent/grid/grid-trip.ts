// The agent's local under-frequency trip. Grid programs need the load gone faster than a round
// trip to the control plane (ERCOT FFR: full response within 15 cycles, 0.25 s, at 59.7 Hz), so
// the control plane arms it (HelloAck at every connect, ArmGridTrip commands for changes) and the
// agent acts alone: it listens to its region's frequency topic and, at or below the threshold,
// tells every covered ASIC to sleep at once. It stays armed while the control plane is
// unreachable. Once fired it does not fire again until the frequency is back above the
// threshold; bringing the ASICs back is the control plane's staged restore.
import type { Logger } from 'pino';
import type { ArmGridTrip, DeviceState } from '../../proto/gen/hcp/v1/commands.js';
import type { GridTripFired } from '../../proto/gen/hcp/v1/gateway.js';
import { DeviceKind } from '../../proto/gen/hcp/v1/gateway.js';
import { decodeFrequency, marketTopics } from '../../proto/market-topics.js';
import { isValidSiteId } from '../../proto/topics.js';
import type { CommandableDriver, DeviceOp } from '../drivers/driver.js';
import type { AgentMetrics } from '../metrics.js';

// Mains frequency lives near 50 or 60 Hz; anything outside this is a misconfiguration.
const MIN_THRESHOLD_HZ = 45;
const MAX_THRESHOLD_HZ = 65;

export interface GridTripDeps {
  drivers: CommandableDriver[];
  listen(topic: string, onMessage: (payload: Buffer) => void): void;
  unlisten(topic: string): void;
  /** tells the control plane; dropped when the stream is down (telemetry shows the sleep anyway) */
  report(fired: GridTripFired): void;
  /** sample at once so telemetry shows the trip */
  changed(): void;
  log: Logger;
  metrics: AgentMetrics;
  /** settings accepted by arm(), e.g. to save them for the next start */
  onArmed?: (c: ArmGridTrip) => void;
  now?: () => number;
}

export type ArmOutcome = { ok: true; devices: DeviceState[] } | { ok: false; code: string; message: string };

export function createGridTrip(d: GridTripDeps) {
  const now = d.now ?? Date.now;
  const owner = new Map<string, CommandableDriver>();
  const asics: string[] = [];
  for (const drv of d.drivers) {
    for (const dev of drv.inventory()) {
      if (dev.kind !== DeviceKind.DEVICE_KIND_ASIC) continue;
      owner.set(dev.id, drv);
      asics.push(dev.id);
    }
  }
  /** `ops`: the sleep ops per driver, built when armed so that firing only sends them */
  let armed: { region: string; thresholdHz: number; devices: string[]; topic: string; ops: Map<CommandableDriver, DeviceOp[]> } | null = null;
  let fired = false;
  let firing: Promise<void> = Promise.resolve();

  async function fire(hz: number, signalTsMs: number, receivedAt: number): Promise<void> {
    const a = armed!;
    const results = (await Promise.all([...a.ops].filter(([, ops]) => ops.length).map(([drv, ops]) => drv.apply(ops)))).flat();
    const appliedAt = now();
    d.metrics.gridTrips.inc();
    d.metrics.gridTripSeconds.observe((appliedAt - receivedAt) / 1000);
    const failed = results.filter((r) => !r.ok);
    d.log.warn(
      { region: a.region, hz, thresholdHz: a.thresholdHz, devices: results.length, failed: failed.length, ms: appliedAt - receivedAt },
      'under-frequency trip fired: ASICs told to sleep',
    );
    d.report({ region: a.region, hz, signalTsMs, appliedAtMs: appliedAt, deviceIds: results.filter((r) => r.ok).map((r) => r.deviceId) });
    d.changed();
  }

  /** the urgent sleep op for each device, grouped by the driver that owns it (every driver, even with none) */
  function sleepOps(devices: string[]): Map<CommandableDriver, DeviceOp[]> {
    const ops = new Map<CommandableDriver, DeviceOp[]>(d.drivers.map((drv) => [drv, []]));
    for (const id of devices) ops.get(owner.get(id)!)!.push({ kind: 'mining', deviceId: id, enabled: false, powerTargetW: null, urgent: true });
    return ops;
  }

  /**
   * Lets each driver get ready to act without a read (the cgminer driver caches confs); a driver
   * with no device covered is told so, and stops keeping any ready.
   */
  function prepare(ops: Map<CommandableDriver, DeviceOp[]>): void {
    for (const [drv, list] of ops) {
      void drv.prepare?.(list.map((o) => o.deviceId)).then(
        (r) => (r.failed ? d.log.warn({ driver: drv.name, ...r }, 'grid trip: some devices could not be prepared; they will be read first when it fires') : undefined),
        (err) => d.log.warn({ err, driver: drv.name }, 'grid trip: prepare failed'),
      );
    }
  }

  function onReading(payload: Buffer): void {
    const receivedAt = now();
    const r = decodeFrequency(payload);
    if (!r) {
      d.metrics.gridReadingsRejected.inc();
      return;
    }
    if (!armed) return;
    if (r.hz <= armed.thresholdHz) {
      if (fired) return;
      fired = true;
      firing = firing.then(() => fire(r.hz, Date.parse(r.ts), receivedAt)).catch((err) => d.log.error({ err }, 'under-frequency trip failed'));
    } else if (fired) {
      fired = false;
      d.log.info({ region: armed.region, hz: r.hz }, 'frequency above the trip threshold again: trip re-armed');
    }
  }

  return {
    /** arms, re-arms with new settings, or disarms (enabled false); refuses bad settings whole */
    arm(c: ArmGridTrip): ArmOutcome {
      if (!c.enabled) {
        if (armed) d.unlisten(armed.topic);
        if (armed) {
          d.log.info({ region: armed.region }, 'under-frequency trip disarmed');
          prepare(sleepOps([]));
        }
        armed = null;
        fired = false;
        d.onArmed?.(c);
        return { ok: true, devices: [] };
      }
      if (!isValidSiteId(c.region)) return { ok: false, code: 'invalid_command', message: `region ${JSON.stringify(c.region)} is not a region id` };
      if (!(c.thresholdHz >= MIN_THRESHOLD_HZ && c.thresholdHz <= MAX_THRESHOLD_HZ)) {
        return { ok: false, code: 'invalid_command', message: `threshold_hz ${c.thresholdHz} is outside ${MIN_THRESHOLD_HZ}–${MAX_THRESHOLD_HZ} Hz` };
      }
      const unknown = c.deviceIds.filter((id) => !owner.has(id));
      if (unknown.length) return { ok: false, code: 'unknown_device', message: `not ASICs at this site: ${unknown.slice(0, 5).join(', ')}` };
      const devices = c.deviceIds.length ? [...new Set(c.deviceIds)] : asics;
      const topic = marketTopics.gridFrequency(c.region);
      if (armed && armed.topic !== topic) d.unlisten(armed.topic);
      const same = armed?.topic === topic && armed.thresholdHz === c.thresholdHz && armed.devices.join() === devices.join();
      armed = { region: c.region, thresholdHz: c.thresholdHz, devices, topic, ops: same ? armed!.ops : sleepOps(devices) };
      d.listen(topic, onReading);
      if (!same) {
        d.log.info({ region: c.region, thresholdHz: c.thresholdHz, devices: devices.length }, 'under-frequency trip armed');
        prepare(armed.ops);
      }
      d.onArmed?.(c);
      return { ok: true, devices: devices.map((id) => ({ deviceId: id, state: 'armed', workloadId: '', powerTargetW: 0 })) };
    },
    state: () => (armed ? { region: armed.region, thresholdHz: armed.thresholdHz, devices: armed.devices.length, fired } : null),
    /** resolves when a trip in progress has been applied (tests, shutdown) */
    idle: () => firing,
    /** for tests: a reading as it would arrive on the topic */
    onReading,
  };
}

export type GridTrip = ReturnType<typeof createGridTrip>;
