// A client of the console's live stream (GET /api/v1/events) for tests: read with fetch() and the
// key in the Authorization header, as the console does (web/src/live.ts), the events parsed into
// `events` as they arrive, so a test waits for one (waitFor) instead of sleeping.
export interface SseEvent {
  name: string;
  data: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

export interface SseClient {
  status: number;
  events: SseEvent[];
  /** comment lines (heartbeats) seen */
  comments: number;
  /** true once the server ended the stream */
  ended(): boolean;
  close(): void;
}

export async function openSse(url: string, key?: string): Promise<SseClient> {
  const ctl = new AbortController();
  const res = await fetch(url, { headers: key ? { authorization: `Bearer ${key}` } : {}, signal: ctl.signal });
  const events: SseEvent[] = [];
  let ended = !res.ok;
  const client: SseClient = { status: res.status, events, comments: 0, ended: () => ended, close: () => ctl.abort() };
  if (!res.ok || !res.body) {
    await res.text().catch(() => '');
    return client;
  }
  void (async () => {
    let buf = '';
    try {
      for await (const chunk of res.body!.pipeThrough(new TextDecoderStream())) {
        buf += chunk;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let name = 'message';
          const data: string[] = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) client.comments++;
            else if (line.startsWith('event: ')) name = line.slice(7);
            else if (line.startsWith('data: ')) data.push(line.slice(6));
          }
          if (data.length) events.push({ name, data: JSON.parse(data.join('\n')) });
        }
      }
    } catch {
      /* aborted */
    }
    ended = true;
  })();
  return client;
}
