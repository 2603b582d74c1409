// The control plane's parts talk through this typed in-process event stream, built first
// (control-plane.ts): a part that needs to hear of something subscribes here instead of being
// handed a late-bound reference to whoever produces it, so construction is a one-way graph.
//
// Delivery is synchronous, in subscription order. A listener that throws is logged and the
// others still hear the event; a listener returning a promise is not awaited (a part that must
// finish work before an answer goes out uses a direct call, not an event).
import type { Logger } from 'pino';
import type { CommandResult } from '../proto/gen/hcp/v1/commands.js';
import type { GridTripFired } from '../proto/gen/hcp/v1/gateway.js';
import type { Claim } from './claims/model.js';
import type { CommandRecord } from './commands/model.js';
import type { WrittenAudit } from './db/audit-writer.js';
import type { WorkloadRow } from './db/workload-store.js';
import type { WorkloadState } from './scheduler/workload-state.js';

export interface ControlPlaneEvents {
  /**
   * an agent's stream is up (after its Hello was accepted): first 'site.opened', for what must
   * reach the agent before anything else (its desired state: the agent sleeps a miner its held
   * state says should sleep, so a start must not arrive ahead of the state that allows it), then
   * 'site.connected' (the command bus redelivers what is pending)
   */
  'site.opened': { siteId: string };
  'site.connected': { siteId: string };
  'site.disconnected': { siteId: string };
  /** an agent acked or answered a command on its stream */
  'agent.ack': { siteId: string; commandId: string };
  'agent.result': { siteId: string; result: CommandResult };
  /** the agent's local under-frequency trip fired */
  'agent.grid_trip': { siteId: string; fired: GridTripFired };
  /** the agent holds this version of the site's desired state */
  'agent.desired_held': { siteId: string; version: number };
  /** a grid frequency reading from the feeds */
  'grid.frequency': { region: string; hz: number };
  /** a command record changed state (stored) */
  'command.changed': { record: CommandRecord };
  /** a claim was stated, released or expired */
  'claim.changed': { claim: Claim; change: 'set' | 'released' | 'expired'; /** learnt from the table: another replica made it (claims service reload) */ remote?: boolean };
  /** audit entries are in the audit_log table (one write of the audit writer: db/audit-writer.ts) */
  'audit.written': { entries: WrittenAudit[] };
  /** a site's telemetry batch was ingested (the registry holds the new readings) */
  'telemetry.ingested': { siteId: string };
  /**
   * a workload moved (workloads/service.ts, its only writer; stored before this is said). `row`
   * is the stored workload after the move when the service read it (always for pending);
   * `command` the command whose answer moved it, if one did.
   */
  'workload.changed': { workloadId: string; from: WorkloadState | null; to: WorkloadState; siteId: string | null; reason: string; row?: WorkloadRow; command?: CommandRecord };
}

export type EventName = keyof ControlPlaneEvents;
export type Listener<K extends EventName> = (e: ControlPlaneEvents[K]) => void;

export class EventStream {
  private readonly listeners = new Map<EventName, Set<Listener<never>>>();

  constructor(private readonly log?: Logger) {}

  /** returns the unsubscribe */
  on<K extends EventName>(name: K, fn: Listener<K>): () => void {
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => void set.delete(fn as Listener<never>);
  }

  emit<K extends EventName>(name: K, e: ControlPlaneEvents[K]): void {
    const set = this.listeners.get(name);
    if (!set) return;
    for (const fn of set) {
      try {
        (fn as Listener<K>)(e);
      } catch (err) {
        this.log?.error({ err, event: name }, 'event listener failed');
      }
    }
  }

  listenerCount(name: EventName): number {
    return this.listeners.get(name)?.size ?? 0;
  }
}
