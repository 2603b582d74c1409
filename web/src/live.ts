// The live stream (GET /api/v1/events, docs/console.md): one connection for the whole page, read
// with fetch() so the key goes in the Authorization header (EventSource cannot send headers, and
// a key in a URL ends up in logs and history). Server-Sent Events are parsed here; a page
// subscribes to an event by name with useLive(). A lost stream is opened again after a short
// backoff, and the status says "reconnecting" meanwhile.
import { useEffect, useRef, useState } from 'preact/hooks';
import { storedKey } from './api.js';

export type LiveStatus = 'connecting' | 'live' | 'reconnecting' | 'closed';
type Handler = (data: any) => void;

const handlers = new Map<string, Set<Handler>>();
const statusListeners = new Set<(s: LiveStatus) => void>();
/** the newest data of each event, for a page that mounts after it arrived */
const latest = new Map<string, unknown>();
let status: LiveStatus = 'closed';
let site: string | null = null;
let abort: AbortController | null = null;
let generation = 0;

function setStatus(s: LiveStatus) {
  status = s;
  for (const f of statusListeners) f(s);
}

function dispatch(name: string, data: string) {
  let v: unknown;
  try {
    v = JSON.parse(data);
  } catch {
    return;
  }
  latest.set(name, v);
  for (const f of handlers.get(name) ?? []) {
    try {
      f(v);
    } catch (err) {
      console.error(`live handler for ${name} failed`, err);
    }
  }
}

/** one stream until it ends: resolves when the server ends it, throws when it fails */
async function readStream(signal: AbortSignal): Promise<void> {
  const key = storedKey();
  if (!key) throw new Error('no key');
  const res = await fetch(`/api/v1/events${site ? `?site=${encodeURIComponent(site)}` : ''}`, {
    headers: { authorization: `Bearer ${key}`, accept: 'text/event-stream' },
    signal,
  });
  if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
  setStatus('live');
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    heard = Date.now();
    buf += value;
    let i: number;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let name = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) continue;
        const c = line.indexOf(':');
        const field = c < 0 ? line : line.slice(0, c);
        const val = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
        if (field === 'event') name = val;
        else if (field === 'data') data.push(val);
      }
      if (data.length) dispatch(name, data.join('\n'));
    }
  }
}

/** a stream silent for 2.5 heartbeats (a frozen server, a dropped network) is given up */
let heard = 0;
let silentAfterMs = 40_000;
handlers.set('hello', new Set([(h: { heartbeat_ms?: number }) => void (silentAfterMs = Math.max(2000, 2.5 * (h.heartbeat_ms ?? 16_000)))]));

async function run(gen: number, signal: AbortSignal) {
  let backoff = 1000;
  while (gen === generation && !signal.aborted) {
    const attempt = new AbortController();
    const stop = () => attempt.abort();
    signal.addEventListener('abort', stop, { once: true });
    heard = Date.now();
    const watchdog = setInterval(() => {
      if (Date.now() - heard > silentAfterMs) attempt.abort();
    }, 500);
    try {
      await readStream(attempt.signal);
      backoff = 1000;
    } catch {
      /* lost: try again below */
    } finally {
      clearInterval(watchdog);
      signal.removeEventListener('abort', stop);
    }
    if (gen !== generation || signal.aborted) return;
    setStatus('reconnecting');
    await new Promise((r) => setTimeout(r, backoff));
    backoff = Math.min(backoff * 2, 10_000);
  }
}

/** (re)opens the stream; site: also hear that site's devices */
export function connectLive(forSite: string | null = site): void {
  site = forSite;
  abort?.abort();
  abort = new AbortController();
  const gen = ++generation;
  setStatus(status === 'live' ? 'live' : 'connecting');
  void run(gen, abort.signal);
}

export function disconnectLive(): void {
  generation++;
  abort?.abort();
  abort = null;
  latest.clear();
  setStatus('closed');
}

/** the devices of this site are wanted (the Site page): reopens the stream if it changes */
export function liveSite(s: string | null): void {
  if (s !== site && abort) connectLive(s);
}

/** calls handler with every `name` event (and at once with the newest one, if there was one) */
export function useLive<T = any>(name: string, handler: (data: T) => void): void {
  const ref = useRef(handler);
  ref.current = handler;
  useEffect(() => {
    let set = handlers.get(name);
    if (!set) handlers.set(name, (set = new Set()));
    const f: Handler = (d) => ref.current(d as T);
    set.add(f);
    if (latest.has(name)) f(latest.get(name));
    return () => void set.delete(f);
  }, [name]);
}

/** the newest `name` event's data, kept as state */
export function useLiveValue<T = any>(name: string): T | null {
  const [v, setV] = useState<T | null>((latest.get(name) as T) ?? null);
  useLive<T>(name, setV);
  return v;
}

export function useLiveStatus(): LiveStatus {
  const [s, setS] = useState(status);
  useEffect(() => {
    statusListeners.add(setS);
    setS(status);
    return () => void statusListeners.delete(setS);
  }, []);
  return s;
}
