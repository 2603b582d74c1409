// Commands and audit: the command log and the audit log, filtered, live (docs/console.md).
// Commands are GET /api/v1/commands, then moved by the stream's `command` events; the audit log is
// GET /api/v1/audit, read again (once per burst) when the stream says entries were written
// (`audit`), and paged back with its cursor. The filters live in the query string, so a reload
// or a shared link shows the same view.
import { useEffect, useRef, useState } from 'preact/hooks';
import { api, messageOf } from '../api.js';
import { useLive, useLiveValue } from '../live.js';
import { Link } from '../router.js';
import type { PageProps } from './page.js';

// control-plane/commands/model.ts
const STATES = ['pending', 'sent', 'acked', 'succeeded', 'failed', 'expired'] as const;
const KINDS = ['set_mining', 'curtail', 'allocate', 'release', 'arm_grid_trip'] as const;
/** the families the control plane writes (grep "action:" control-plane); any action may be typed */
const FAMILIES = ['claim.', 'command.', 'economics.', 'grid.', 'key.', 'site.', 'workload.'];
const COMMAND_LIMIT = 200;
const AUDIT_PAGE = 100;
/** the API's bounds (control-plane/http/routes/audit.ts) */
const pageSize = (v: string) => (/^\d+$/.test(v) ? Math.min(1000, Math.max(1, Number(v))) : AUDIT_PAGE);

interface Command {
  id: string; site: string; type: string; state: string; actor: string; workload_id: string | null;
  details: { source?: string; claim_id?: string; reason?: string } | null;
  params: Record<string, any>; created_at: string; attempts: number; reason_code: string | null; message: string | null;
  devices: Array<{ device_id: string }> | null;
}
interface AuditEntry { id: string; time: string; actor: string; action: string; subject: string | null; details: Record<string, unknown> }

/** audit_limit: entries per audit page (no input; a link may set it) */
type Filters = { site: string; state: string; kind: string; actor: string; action: string; from: string; to: string; audit_limit: string };
const KEYS: Array<keyof Filters> = ['site', 'state', 'kind', 'actor', 'action', 'from', 'to', 'audit_limit'];

const fromQuery = (): Filters => {
  const q = new URLSearchParams(location.search);
  return Object.fromEntries(KEYS.map((k) => [k, q.get(k) ?? ''])) as Filters;
};
/** the filters into the address bar, in place (no history entry per keystroke) */
const toQuery = (f: Filters) => {
  const q = new URLSearchParams(KEYS.filter((k) => f[k]).map((k) => [k, f[k]]));
  history.replaceState(null, '', `${location.pathname}${q.size ? `?${q}` : ''}`);
};
const qs = (o: Record<string, string | number | undefined>) => new URLSearchParams(Object.entries(o).filter(([, v]) => v !== undefined && v !== '').map(([k, v]) => [k, String(v)])).toString();

const when = (iso: string) => {
  const d = new Date(iso);
  return d.toDateString() === new Date().toDateString() ? d.toLocaleTimeString() : d.toLocaleString();
};
/** yyyy-MM-ddTHH:mm in local time, what <input type="datetime-local"> shows */
const localInput = (iso: string) => {
  if (!iso) return '';
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60_000).toISOString().slice(0, 16);
};

/** a command's state moves forward; a stream event may be older than what a read returned */
const RANK: Record<string, number> = { pending: 0, sent: 1, acked: 2, succeeded: 3, failed: 3, expired: 3 };
const newer = (a: Command, b: Command) => (RANK[a.state] ?? 0) > (RANK[b.state] ?? 0) || a.attempts > b.attempts;

const matches = (c: Command, f: Filters) => (!f.site || c.site === f.site) && (!f.state || c.state === f.state) && (!f.kind || c.type === f.kind);

/** what a command was for, in words */
function kindOf(c: Command): string {
  const p = c.params;
  if (c.type === 'set_mining') return `mining ${p.enabled ? 'on' : 'off'}`;
  if (c.type === 'arm_grid_trip') return `grid trip ${p.enabled ? 'armed' : 'disarmed'}`;
  return c.type;
}
function targetOf(c: Command) {
  const p = c.params;
  const ids: string[] = p.device_ids ?? c.devices?.map((d) => d.device_id) ?? [];
  const devices = ids.length === 1 ? <Link href={`/devices/${encodeURIComponent(ids[0]!)}`}>{ids[0]}</Link> : ids.length ? `${ids.length} devices` : 'every ASIC';
  const extra = [
    p.power_target_w ? `at ${p.power_target_w} W` : null,
    c.workload_id ? `for ${c.workload_id}` : null,
    c.type === 'arm_grid_trip' ? `${p.region} under ${p.threshold_hz} Hz` : null,
  ].filter(Boolean).join(' ');
  return <>{devices}{extra ? ` ${extra}` : ''}</>;
}

/** an entry's details in one line, the reason first: its fields, long lists counted (the full details on hover) */
function summary(d: Record<string, unknown>): string {
  const s = Object.entries(d)
    .sort(([a], [b]) => Number(b === 'reason') - Number(a === 'reason'))
    .filter(([k, v]) => k !== 'site' && k !== 'request_id' && v !== null && v !== '' && !(Array.isArray(v) && v.length === 0))
    .map(([k, v]) => `${k}: ${Array.isArray(v) && v.length > 3 ? `${v.length} items` : typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(', ');
  return s.length > 200 ? `${s.slice(0, 199)}…` : s;
}

export function CommandsPage(_: PageProps) {
  const [f, setF] = useState<Filters>(fromQuery);
  const fleet = useLiveValue<{ sites: Array<{ id: string }> }>('fleet');
  const sites = [...new Set([...(fleet?.sites.map((s) => s.id) ?? []), ...(f.site ? [f.site] : [])])].sort();
  const set = (k: keyof Filters, v: string) => setF((old) => ({ ...old, [k]: v }));
  useEffect(() => toQuery(f), [f]);

  const input = (e: Event) => (e.target as HTMLInputElement | HTMLSelectElement).value;
  return (
    <div class="page commands" data-testid="commands-page">
      <h2>Commands and audit</h2>
      <div class="filters">
        <label>Site <select data-testid="filter-site" value={f.site} onChange={(e) => set('site', input(e))}>
          <option value="">every site</option>
          {sites.map((s) => <option value={s}>{s}</option>)}
        </select></label>
      </div>
      <CommandLog f={f} set={set} input={input} />
      <AuditLog f={f} set={set} input={input} sites={sites} />
    </div>
  );
}

interface SectionProps { f: Filters; set: (k: keyof Filters, v: string) => void; input: (e: Event) => string }

function CommandLog({ f, set, input }: SectionProps) {
  const [list, setList] = useState<Command[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const fRef = useRef(f);
  fRef.current = f;
  /** commands heard while a read is out: laid over what it returns, so none is lost between the two */
  const heard = useRef<Map<string, Command> | null>(null);

  useEffect(() => {
    let current = true;
    heard.current = new Map();
    api<{ commands: Command[] }>(`/api/v1/commands?${qs({ site: f.site, state: f.state, type: f.kind, limit: COMMAND_LIMIT })}`).then((r) => {
      if (!current) return;
      const byId = new Map(r.commands.map((c) => [c.id, c]));
      for (const c of heard.current!.values()) {
        const had = byId.get(c.id);
        if (!had || newer(c, had)) byId.set(c.id, c);
      }
      heard.current = null;
      setList(sortNewest([...byId.values()].filter((c) => matches(c, fRef.current))));
      setError(null);
    }, (e) => {
      if (!current) return;
      heard.current = null;
      setError(messageOf(e));
    });
    return () => void (current = false);
  }, [f.site, f.state, f.kind]);

  useLive<Command>('command', (c) => {
    heard.current?.set(c.id, c);
    // a command that left the filter (its state moved on) leaves the list
    setList((l) => l && sortNewest([...(matches(c, fRef.current) ? [c] : []), ...l.filter((x) => x.id !== c.id)]));
  });

  return (
    <section data-testid="commands">
      <h3>Commands{list ? ` (${list.length}${list.length >= COMMAND_LIMIT ? '+' : ''})` : ''}</h3>
      <div class="filters">
        <label>State <select data-testid="filter-state" value={f.state} onChange={(e) => set('state', input(e))}>
          <option value="">any</option>
          {STATES.map((s) => <option value={s}>{s}</option>)}
        </select></label>
        <label>Kind <select data-testid="filter-kind" value={f.kind} onChange={(e) => set('kind', input(e))}>
          <option value="">any</option>
          {KINDS.map((k) => <option value={k}>{k}</option>)}
        </select></label>
      </div>
      {error && <p class="error" role="alert" data-testid="commands-error">{error}</p>}
      {list && (
        <table data-testid="commands-table">
          <thead><tr><th>Time</th><th>Site</th><th>Target</th><th>Kind</th><th>State</th><th>Reason</th><th>Actor</th></tr></thead>
          <tbody>
            {list.map((c) => (
              <tr data-testid="command-row" data-command={c.id} data-site={c.site} data-state={c.state} title={c.id}>
                <td>{when(c.created_at)}</td>
                <td><Link href={`/sites/${encodeURIComponent(c.site)}`}>{c.site}</Link></td>
                <td>{targetOf(c)}</td>
                <td>{kindOf(c)}</td>
                <td class={`state-${c.state}`}>{c.state}{c.reason_code || c.message ? <small> {[c.reason_code, c.message].filter(Boolean).join(': ')}</small> : null}</td>
                <td>{c.details?.reason ?? (c.type === 'curtail' ? c.params.reason : '')}{c.details?.source ? <small> ({c.details.source})</small> : null}</td>
                <td>{c.actor}</td>
              </tr>
            ))}
            {list.length === 0 && <tr><td colSpan={7} class="hint">No commands match.</td></tr>}
          </tbody>
        </table>
      )}
    </section>
  );
}

const sortNewest = (l: Command[]) => l.sort((a, b) => (a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0)).slice(0, COMMAND_LIMIT);

function AuditLog({ f, set, input, sites }: SectionProps & { sites: string[] }) {
  /** the entries shown, newest first, and the cursor to the page after the last of them */
  const [log, setLog] = useState<{ entries: AuditEntry[]; cursor: string | null } | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const query = (c?: string) => `/api/v1/audit?${qs({ site: f.site, actor: f.actor, action: f.action, from: f.from, to: f.to, limit: pageSize(f.audit_limit), cursor: c })}`;
  // gen moves when the filters do: an answer to older filters is dropped. top: only the newest
  // read of the first page counts.
  const gen = useRef(0);
  const top = useRef(0);
  const read = useRef<(fresh: boolean) => void>(() => {});

  /** the first page; fresh: the filters changed, start over; else put its new entries on top */
  read.current = (fresh) => {
    const g = fresh ? ++gen.current : gen.current;
    const n = ++top.current;
    api<{ entries: AuditEntry[]; next_cursor: string | null }>(query()).then((r) => {
      if (g !== gen.current || n !== top.current) return;
      setError(null);
      setLog((old) => {
        if (fresh || !old) return { entries: r.entries, cursor: r.next_cursor };
        const have = new Set(old.entries.map((e) => e.id));
        const added = r.entries.filter((e) => !have.has(e.id));
        // nothing in common: more arrived than a page holds, and the list would have a hole
        if (added.length === r.entries.length && old.entries.length) return { entries: r.entries, cursor: r.next_cursor };
        return { entries: [...added, ...old.entries], cursor: old.cursor };
      });
    }, (e) => g === gen.current && setError(messageOf(e)));
  };
  useEffect(() => read.current(true), [f.site, f.actor, f.action, f.from, f.to, f.audit_limit]);

  // a burst of writes (a fleet-wide curtail) is one read. `audit` is said by the replica that
  // wrote; a claim stated on another replica is heard here as `claim` (ha/replicas.ts), so an
  // operator's action on any replica shows
  const timer = useRef<number | null>(null);
  const soon = () => {
    if (timer.current !== null) return;
    timer.current = window.setTimeout(() => {
      timer.current = null;
      read.current(false);
    }, 250);
  };
  useLive('audit', soon);
  useLive('claim', soon);
  useEffect(() => () => void (timer.current !== null && clearTimeout(timer.current)), []);

  const older = async () => {
    const cursor = log?.cursor;
    if (!cursor) return;
    const g = gen.current;
    setBusy(true);
    try {
      const r = await api<{ entries: AuditEntry[]; next_cursor: string | null }>(query(cursor));
      if (g !== gen.current) return;
      // entries put on top meanwhile leave the cursor (the last entry's) as it was; a list
      // started over meanwhile does not continue with this page
      setLog((old) => (old && old.cursor === cursor ? { entries: [...old.entries, ...r.entries], cursor: r.next_cursor } : old));
    } catch (e) {
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  };
  const time = (k: 'from' | 'to') => (e: Event) => {
    const v = input(e);
    set(k, v ? new Date(v).toISOString() : '');
  };

  return (
    <section data-testid="audit">
      <h3>Audit log</h3>
      <div class="filters">
        <label>Actor <TextFilter testid="filter-actor" placeholder="key:ops" value={f.actor} commit={(v) => set('actor', v)} /></label>
        <label>Action <TextFilter testid="filter-action" list="audit-families" placeholder="claim. or claim.set" value={f.action} commit={(v) => set('action', v)} /></label>
        <datalist id="audit-families">{FAMILIES.map((a) => <option value={a} />)}</datalist>
        <label>From <input data-testid="filter-from" type="datetime-local" value={localInput(f.from)} onChange={time('from')} /></label>
        <label>To <input data-testid="filter-to" type="datetime-local" value={localInput(f.to)} onChange={time('to')} /></label>
      </div>
      {error && <p class="error" role="alert" data-testid="audit-error">{error}</p>}
      {log && (
        <table data-testid="audit-table">
          <thead><tr><th>Time</th><th>Actor</th><th>Action</th><th>Subject</th><th>Site</th><th>Details</th></tr></thead>
          <tbody>
            {log.entries.map((e) => (
              <tr data-testid="audit-row" data-audit={e.id} data-action={e.action} data-subject={e.subject ?? ''}>
                <td>{when(e.time)}</td>
                <td>{e.actor}</td>
                <td>{e.action}</td>
                <td><code>{e.subject ?? '–'}</code></td>
                <td class="site">{typeof e.details.site === 'string' ? e.details.site : e.subject && sites.includes(e.subject) ? e.subject : ''}</td>
                <td class="details" title={JSON.stringify(e.details, null, 1)}>{summary(e.details)}</td>
              </tr>
            ))}
            {log.entries.length === 0 && <tr><td colSpan={6} class="hint">No entries match.</td></tr>}
          </tbody>
        </table>
      )}
      {log?.cursor && <p><button data-testid="audit-older" disabled={busy} onClick={older}>{busy ? 'Reading…' : 'Older'}</button></p>}
    </section>
  );
}

/**
 * A text filter that applies on Enter or leaving the field. What is typed is its own state until
 * then: a controlled input's value is put back on every render, and this page renders on every
 * live event, which would wipe out half-typed text.
 */
function TextFilter({ value, commit, testid, ...attrs }: { value: string; commit: (v: string) => void; testid: string; placeholder: string; list?: string }) {
  const [draft, setDraft] = useState(value);
  useEffect(() => setDraft(value), [value]);
  return (
    <input type="text" {...attrs} data-testid={testid} value={draft}
      onInput={(e) => setDraft((e.target as HTMLInputElement).value)}
      onChange={(e) => commit((e.target as HTMLInputElement).value.trim())} />
  );
}
