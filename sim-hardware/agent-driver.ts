// The simulated fleet as an agent driver (agent/drivers/driver.ts CommandableDriver): reads and
// commands the device models directly, no protocol in between. The agent's core never imports
// this; its entry point registers it by name (agent/main-sim.ts). The fleet is owned by the
// caller; close() does not close it.
import { asicStateName, gpuStateName } from '../agent/drivers/device-state.js';
import type { CommandableDriver, DeviceOp, DeviceOpResult } from '../agent/drivers/driver.js';
import type { DeviceState } from '../proto/gen/hcp/v1/commands.js';
import { DeviceKind, type Device } from '../proto/gen/hcp/v1/gateway.js';
import { GpuState } from '../proto/gen/hcp/v1/telemetry.js';
import type { SimFleet } from './fleet.js';
import type { SimH100 } from './h100.js';
import type { SimS21 } from './s21.js';

export function createSimDriver(fleet: SimFleet): CommandableDriver {
  const inventory: Device[] = [
    ...fleet.gpus.map((g) => ({
      id: g.id,
      kind: DeviceKind.DEVICE_KIND_GPU,
      model: g.name,
      endpoint: '',
      serial: g.uuid,
      ratedPowerW: g.powerLimitW,
      ratedHashrateThs: 0,
      memoryTotalMib: g.memoryTotalMib,
      driver: 'sim',
    })),
    ...fleet.asics.map((a) => ({
      id: a.id,
      kind: DeviceKind.DEVICE_KIND_ASIC,
      model: a.model.name,
      endpoint: '',
      serial: a.minerId,
      ratedPowerW: a.model.ratedPowerW,
      ratedHashrateThs: a.model.ratedThs,
      memoryTotalMib: 0,
      driver: 'sim',
    })),
  ];
  let closed = false;
  // One sample object per ASIC, rewritten at every read: the agent reads 5,000 of them a second,
  // and fresh ones (2 MB a tick) were still alive at the scavenges in the middle of the tick, so
  // with the small young generation the agent runs (agent/heap-flags.ts) each was promoted and
  // became old-generation garbage, 2 MB a second of it. A reading's ASIC samples are therefore
  // valid until the next read() (DeviceDriver.read).
  const asicSamples = fleet.asics.map((a) => a.reading(0));

  const gpuState = (g: SimH100): DeviceState => ({ deviceId: g.id, state: gpuStateName(g.state), workloadId: g.workloadId, powerTargetW: 0 });
  // powerTargetW 0 = stock, as in AsicSample.
  const asicState = (a: SimS21): DeviceState => ({ deviceId: a.id, state: asicStateName(a.miningState), workloadId: '', powerTargetW: a.powerTargetW ?? 0 });
  const result = (deviceId: string, state: DeviceState, code = 'ok', message = ''): DeviceOpResult => ({ deviceId, ok: code === 'ok', code, message, state });

  function applyGpu(g: SimH100, op: DeviceOp): DeviceOpResult {
    if (op.kind === 'mining') return result(g.id, gpuState(g), 'invalid_command', 'mining applies to ASICs, not GPUs');
    if (op.kind === 'release') {
      // Releasing an idle GPU is a no-op success: the wanted end state already holds.
      if (g.workloadId) g.release();
      return result(g.id, gpuState(g));
    }
    if (!op.workloadId) return result(g.id, gpuState(g), 'invalid_command', 'assign needs a workload id');
    if (g.workloadId === op.workloadId) return result(g.id, gpuState(g));
    if (g.workloadId) return result(g.id, gpuState(g), 'device_busy', `running workload ${g.workloadId}`);
    // A GPU out of service after a fatal Xid takes no work until it is reset.
    if (g.state === GpuState.GPU_STATE_FAULT) return result(g.id, gpuState(g), 'driver_error', 'GPU is in fault after a fatal Xid; reset it first');
    g.assign(op.workloadId);
    return result(g.id, gpuState(g));
  }

  function applyAsic(a: SimS21, op: DeviceOp): DeviceOpResult {
    if (op.kind !== 'mining') return result(a.id, asicState(a), 'invalid_command', `${op.kind} applies to GPUs, not ASICs`);
    const w = op.powerTargetW;
    // 0 is not a target (null means stock, enabled=false means off); out-of-range positive
    // targets are clamped by the model to 50–110 % of stock and reported as clamped.
    if (w !== null && !(Number.isFinite(w) && w > 0)) return result(a.id, asicState(a), 'invalid_command', `power target ${w} W is not a positive number`);
    a.setPowerTarget(w);
    a.setMining(op.enabled);
    return result(a.id, asicState(a));
  }

  return {
    name: 'sim',
    inventory: () => inventory,
    async read(nowMs) {
      if (closed) return { gpus: [], asics: [], errors: [] };
      fleet.step();
      return {
        gpus: fleet.gpus.map((g) => g.reading(nowMs)),
        asics: fleet.asics.map((a, i) => a.readInto(asicSamples[i]!, nowMs)),
        errors: [],
      };
    },
    async apply(ops) {
      // Bring every model to the present first, so a change acts from now on and not over the
      // interval since the last step.
      if (!closed) fleet.step();
      return ops.map((op) => {
        const unknown: DeviceState = { deviceId: op.deviceId, state: 'unknown', workloadId: '', powerTargetW: 0 };
        try {
          if (closed) return result(op.deviceId, unknown, 'driver_error', 'driver is closed');
          const g = fleet.gpu(op.deviceId);
          if (g) return applyGpu(g, op);
          const a = fleet.asic(op.deviceId);
          if (a) return applyAsic(a, op);
          return result(op.deviceId, unknown, 'unknown_device', `${op.deviceId} is not a device of the sim driver`);
        } catch (err) {
          return result(op.deviceId, unknown, 'driver_error', err instanceof Error ? err.message : String(err));
        }
      });
    },
    async close() {
      closed = true;
    },
  };
}
