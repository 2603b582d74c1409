// Workloads: the queue with positions, what runs and what finished, each with its history and
// placement; submit and cancel for the roles that may. A customer key sees only its own: the API
// scopes GET /api/v1/workloads to the key's customer, and the stream says only its workloads.
// The list is read again when the stream says a workload moved (no polling).
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, can, messageOf } from '../api.js';
import { Confirm } from '../components/Confirm.js';
import { ago } from '../format.js';
import { useLive } from '../live.js';
import type { PageProps } from './page.js';

const TYPES = ['ai_inference_realtime', 'ai_inference_batch', 'ai_training'] as const;
const FINAL = new Set(['completed', 'failed', 'cancelled']);

interface Workload {
  id: string; customer_id: string; workload_type: string; priority: number; state: string; site: string | null;
  requirements: { gpu_type: string; gpu_count: number }; created_at: string; started_at: string | null; finished_at: string | null;
}

/**
 * Queue positions in the scheduler's order: higher priority first, then the older. The scheduler
 * also ages long waits upwards, so a position is an estimate (control-plane/scheduler/).
 */
function positions(list: Workload[]): Map<string, number> {
  const pending = list.filter((w) => w.state === 'pending').sort((a, b) => b.priority - a.priority || (a.created_at < b.created_at ? -1 : 1));
  return new Map(pending.map((w, i) => [w.id, i + 1]));
}

export function WorkloadsPage({ me }: PageProps) {
  const [list, setList] = useState<Workload[]>([]);
  const [error, setError] = useState<string | null>(null);
  const [openId, setOpenId] = useState<string | null>(null);
  const [detail, setDetail] = useState<any>(null);
  const [cancelling, setCancelling] = useState<Workload | null>(null);
  const [busy, setBusy] = useState(false);
  const [form, setForm] = useState({ workload_type: 'ai_inference_batch', priority: 5, gpu_count: 1, customer_id: '' });
  const reload = useRef<() => void>(() => {});

  reload.current = () => {
    api<{ workloads: Workload[] }>('/api/v1/workloads?limit=200').then((r) => {
      setList(r.workloads);
      setError(null);
    }, (e) => setError(messageOf(e)));
    if (openId) api(`/api/v1/workloads/${encodeURIComponent(openId)}`).then(setDetail, (e) => setError(messageOf(e)));
  };
  useEffect(() => reload.current(), [openId]);
  // a burst of moves (a placement pass) is one read
  const timer = useRef<number | null>(null);
  useLive('workload', () => {
    if (timer.current !== null) return;
    timer.current = window.setTimeout(() => {
      timer.current = null;
      reload.current();
    }, 250);
  });
  useEffect(() => () => void (timer.current !== null && clearTimeout(timer.current)), []);

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    try {
      const w = await api<Workload>('/api/v1/workloads', {
        method: 'POST',
        body: {
          workload_type: form.workload_type, priority: form.priority, requirements: { gpu_type: 'h100', gpu_count: form.gpu_count },
          ...(me.role !== 'customer' && form.customer_id ? { customer_id: form.customer_id } : {}),
        },
      });
      setOpenId(w.id);
      reload.current();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
    }
  };
  const cancel = async (w: Workload) => {
    setBusy(true);
    try {
      await api(`/api/v1/workloads/${encodeURIComponent(w.id)}/cancel`, { method: 'POST' });
      reload.current();
    } catch (err) {
      setError(messageOf(err));
    } finally {
      setBusy(false);
      setCancelling(null);
    }
  };

  const pos = positions(list);
  const groups: Array<[string, Workload[]]> = [
    ['Queue', list.filter((w) => w.state === 'pending').sort((a, b) => pos.get(a.id)! - pos.get(b.id)!)],
    ['Running', list.filter((w) => !FINAL.has(w.state) && w.state !== 'pending')],
    ['Finished', list.filter((w) => FINAL.has(w.state))],
  ];
  return (
    <div class="page workloads" data-testid="workloads-page">
      <h2>Workloads{me.role === 'customer' ? ` of ${me.customer_id}` : ''}</h2>
      {error && <p class="error" role="alert" data-testid="workloads-error">{error}</p>}
      {can(me, 'workloads.submit') && (
        <form class="submit" data-testid="workload-submit" onSubmit={submit}>
          <label>Type <select value={form.workload_type} onChange={(e) => setForm({ ...form, workload_type: (e.target as HTMLSelectElement).value })}>
            {TYPES.map((t) => <option value={t}>{t}</option>)}
          </select></label>
          <label>Priority <input type="number" min={1} max={10} value={form.priority} onInput={(e) => setForm({ ...form, priority: Number((e.target as HTMLInputElement).value) })} /></label>
          <label>H100 GPUs <input type="number" min={1} max={1024} value={form.gpu_count} onInput={(e) => setForm({ ...form, gpu_count: Number((e.target as HTMLInputElement).value) })} /></label>
          {me.role !== 'customer' && (
            <label>Customer <input data-testid="submit-customer" placeholder="cust-001" value={form.customer_id} onInput={(e) => setForm({ ...form, customer_id: (e.target as HTMLInputElement).value })} /></label>
          )}
          <button class="primary" type="submit" disabled={busy}>Submit</button>
        </form>
      )}
      {groups.map(([title, rows]) => (
        <section>
          <h3>{title} ({rows.length})</h3>
          <table data-testid={`workloads-${title.toLowerCase()}`}>
            <thead><tr><th>{title === 'Queue' ? '#' : ''}</th><th>Workload</th><th>Customer</th><th>Type</th><th>Priority</th><th>GPUs</th><th>State</th><th>Site</th><th>Submitted</th><th></th></tr></thead>
            <tbody>
              {rows.map((w) => (
                <tr data-testid="workload-row" data-workload={w.id} data-customer={w.customer_id} class={openId === w.id ? 'selected' : ''} onClick={() => setOpenId(openId === w.id ? null : w.id)}>
                  <td>{pos.get(w.id) ?? ''}</td><td><code>{w.id}</code></td><td>{w.customer_id}</td><td>{w.workload_type}</td><td>{w.priority}</td>
                  <td>{w.requirements.gpu_count} × {w.requirements.gpu_type}</td><td>{w.state}</td><td>{w.site ?? '–'}</td><td>{ago(w.created_at)}</td>
                  <td>{can(me, 'workloads.cancel') && !FINAL.has(w.state) && (
                    <button data-testid="workload-cancel" onClick={(e) => { e.stopPropagation(); setCancelling(w); }}>Cancel</button>
                  )}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </section>
      ))}
      {openId && detail && detail.id === openId && (
        <section class="detail" data-testid="workload-detail">
          <h3>{detail.id}</h3>
          <p>Placement: {detail.allocations.length ? detail.allocations.map((a: any) => `${a.device_id}${a.live ? '' : ' (released)'}`).join(', ') : 'none yet'}</p>
          <table>
            <thead><tr><th>Time</th><th>From</th><th>To</th><th>Site</th><th>Reason</th></tr></thead>
            <tbody>{detail.history.map((h: any) => <tr><td>{new Date(h.time).toLocaleTimeString()}</td><td>{h.from ?? '–'}</td><td>{h.to}</td><td>{h.site ?? '–'}</td><td>{h.reason}</td></tr>)}</tbody>
          </table>
        </section>
      )}
      {cancelling && (
        <Confirm title={`Cancel ${cancelling.id}?`} confirmLabel="Cancel the workload" busy={busy} onConfirm={() => cancel(cancelling)} onCancel={() => setCancelling(null)}>
          <p>Its GPUs are released and it does not run again.</p>
        </Confirm>
      )}
    </div>
  );
}
