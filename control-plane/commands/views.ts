// JSON shape of a command for REST (snake_case, ISO times).
import type { CommandRecord } from './model.js';

const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function commandView(r: CommandRecord) {
  const { type, ...params } = r.payload;
  return {
    id: r.id,
    site: r.siteId,
    type,
    state: r.state,
    actor: r.actor,
    workload_id: r.workloadId,
    /** why it was sent: the reconciler's carry the winning claim (source, claim_id, reason) */
    details: r.details,
    params: Object.fromEntries(Object.entries(params).map(([k, v]) => [k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`), v])),
    created_at: iso(r.createdAtMs),
    deadline: iso(r.deadlineMs),
    sent_at: iso(r.sentAtMs),
    acked_at: iso(r.ackedAtMs),
    finished_at: iso(r.finishedAtMs),
    attempts: r.attempts,
    reason_code: r.reasonCode,
    message: r.message,
    devices: r.devices?.map((d) => ({ device_id: d.deviceId, state: d.state, workload_id: d.workloadId || null, power_target_w: d.powerTargetW || null })) ?? null,
  };
}
