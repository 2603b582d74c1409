// Commands as the control plane sees them: a pure state machine, no I/O.
//
//   pending ─send─▶ sent ─ack─▶ acked ─result─▶ succeeded | failed
//      ▲             │            │
//      └─disconnect──┴────────────┘   (redelivered on reconnect; the agent applies an id once)
//   pending | sent | acked ─deadline─▶ expired
import type { DeviceState } from '../../proto/gen/hcp/v1/commands.js';

export const COMMAND_STATES = ['pending', 'sent', 'acked', 'succeeded', 'failed', 'expired'] as const;
export type CommandState = (typeof COMMAND_STATES)[number];
export const COMMAND_TYPES = ['allocate', 'release', 'set_mining', 'curtail', 'arm_grid_trip'] as const;
export type CommandType = (typeof COMMAND_TYPES)[number];

export type CommandPayload =
  | { type: 'allocate'; workloadId: string; deviceIds: string[] }
  | { type: 'release'; workloadId: string; deviceIds: string[] }
  | { type: 'set_mining'; enabled: boolean; deviceIds: string[]; powerTargetW: number | null }
  | { type: 'curtail'; reason: string }
  | { type: 'arm_grid_trip'; enabled: boolean; region: string; thresholdHz: number; deviceIds: string[] };

export interface CommandRecord {
  id: string;
  siteId: string;
  payload: CommandPayload;
  state: CommandState;
  actor: string;
  workloadId: string | null;
  createdAtMs: number;
  deadlineMs: number;
  sentAtMs: number | null;
  ackedAtMs: number | null;
  finishedAtMs: number | null;
  attempts: number;
  reasonCode: string | null;
  message: string | null;
  devices: DeviceState[] | null;
  /** why it was sent (the reconciler's: the winning claim's source, id and reason); null = not said */
  details: Record<string, unknown> | null;
}

const NEXT: Record<CommandState, readonly CommandState[]> = {
  pending: ['sent', 'expired'],
  sent: ['acked', 'succeeded', 'failed', 'pending', 'expired'],
  acked: ['succeeded', 'failed', 'pending', 'expired'],
  succeeded: [],
  failed: [],
  expired: [],
};

export function canTransition(from: CommandState, to: CommandState): boolean {
  return NEXT[from].includes(to);
}

export function isFinal(s: CommandState): boolean {
  return NEXT[s].length === 0;
}

export function isLive(s: CommandState): boolean {
  return !isFinal(s);
}
