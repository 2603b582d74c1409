// The state names a DeviceState carries (proto/hcp/v1/commands.proto): gpu idle | busy (| fault
// after a fatal Xid); asic mining | ramping | sleeping | fault | unreachable.
import { GpuState, MiningState } from '../../proto/gen/hcp/v1/telemetry.js';

export function gpuStateName(s: GpuState): string {
  return s === GpuState.GPU_STATE_BUSY ? 'busy' : s === GpuState.GPU_STATE_FAULT ? 'fault' : 'idle';
}

export function asicStateName(s: MiningState): string {
  switch (s) {
    case MiningState.MINING_STATE_MINING:
      return 'mining';
    case MiningState.MINING_STATE_RAMPING:
      return 'ramping';
    case MiningState.MINING_STATE_SLEEPING:
      return 'sleeping';
    case MiningState.MINING_STATE_FAULT:
      return 'fault';
    default:
      return 'unreachable';
  }
}
