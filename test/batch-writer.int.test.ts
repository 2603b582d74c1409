// control-plane/db/batch-writer.ts on real PostgreSQL: the bound holds while the database is
// unreachable (a closed pool: every write fails as postgres.js fails it), a refused row is
// dead-lettered while the others land, rows replacing each other by key, one write at a time,
// and close() drains, through a fault too, or gives up at its deadline and says so.
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBatchWriter, type BatchWriterOptions } from '../control-plane/db/batch-writer.js';
import { createDb, type Db } from '../control-plane/db/client.js';
import { usePgDatabase } from './harness/pg.js';
import { waitFor } from './harness/wait-for.js';

interface Row {
  id: number;
  v: string;
}

type Line = Record<string, unknown>;

function capture() {
  const lines: Line[] = [];
  const log = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as Line) });
  return { log, lines };
}

describe('batch writer', () => {
  const pg = usePgDatabase('hcp_batch');
  let live: Db;
  let down: Db;
  let table = 0;

  beforeAll(async () => {
    live = await createDb({ url: pg.url, dataDir: '' });
    down = await createDb({ url: pg.url, dataDir: '' });
    await down.close();
  });
  afterAll(async () => {
    await live?.close();
  });

  /** a fresh table whose CHECK refuses v = 'bad', and a writer of it through `target()` */
  async function setup(target: () => Db, over: Partial<BatchWriterOptions<Row>> = {}) {
    const name = `bw_${++table}`;
    await live.exec(`CREATE TABLE ${name} (id int PRIMARY KEY, v text NOT NULL CHECK (v <> 'bad'))`);
    const counts = { written: 0, rejected: 0, dropped: 0, closedDrops: 0, maxBuffered: 0, writes: 0, concurrent: 0, maxConcurrent: 0 };
    const { log, lines } = capture();
    const writer = createBatchWriter<Row>({
      name,
      log,
      write: async (rows) => {
        counts.writes++;
        counts.maxConcurrent = Math.max(counts.maxConcurrent, ++counts.concurrent);
        try {
          await target().query(
            `INSERT INTO ${name} (id, v) SELECT * FROM unnest($1::int[], $2::text[])
             ON CONFLICT (id) DO UPDATE SET v = excluded.v`,
            [rows.map((r) => r.id), rows.map((r) => r.v)],
          );
        } finally {
          counts.concurrent--;
        }
      },
      identify: (r) => ({ id: r.id }),
      flushIntervalMs: 60_000,
      maxBuffered: 1000,
      retryMinMs: 10,
      retryMaxMs: 40,
      metrics: {
        written: (n) => void (counts.written += n),
        rejected: (n) => void (counts.rejected += n),
        dropped: (n, why) => {
          counts.dropped += n;
          if (why === 'closed') counts.closedDrops += n;
        },
        buffered: (n) => void (counts.maxBuffered = Math.max(counts.maxBuffered, n)),
      },
      ...over,
    });
    const stored = async () => (await live.query<{ id: number; v: string }>(`SELECT id, v FROM ${name} ORDER BY id`)).map((r) => ({ id: r.id, v: r.v }));
    return { writer, counts, lines, stored };
  }

  const rows = (from: number, n: number, v = 'ok'): Row[] => Array.from({ length: n }, (_, i) => ({ id: from + i, v }));

  it('holds its bound while the database is unreachable, dropping the oldest, and writes the rest once it is back', async () => {
    let db = down;
    const { writer, counts, lines, stored } = await setup(() => db, { maxBuffered: 30, flushAtRows: 10, flushIntervalMs: 20 });
    for (let i = 0; i < 10; i++) {
      writer.addMany(rows(i * 10, 10));
      await writer.flush();
      expect(writer.size).toBeLessThanOrEqual(30);
    }
    expect(counts.maxBuffered).toBeLessThanOrEqual(30);
    expect(counts.dropped).toBe(70);
    expect(counts.written).toBe(0);
    expect(lines.some((l) => l.msg === 'write buffer full; oldest rows dropped' && l.writer)).toBe(true);
    expect(lines.some((l) => l.msg === 'batch write failed; will retry')).toBe(true);

    db = live;
    await waitFor(async () => (await stored()).length === 30, { message: 'the 30 newest rows written once the database is back' });
    expect((await stored()).map((r) => r.id)).toEqual(rows(70, 30).map((r) => r.id));
    expect(counts).toMatchObject({ written: 30, rejected: 0, dropped: 70 });
    await writer.close();
  });

  it('dead-letters the row the database refuses and writes the others', async () => {
    const { writer, counts, lines, stored } = await setup(() => live);
    const batch = rows(0, 50);
    batch[17] = { id: 17, v: 'bad' };
    writer.addMany(batch);
    await writer.flush();
    expect((await stored()).map((r) => r.id)).toEqual(batch.filter((r) => r.v !== 'bad').map((r) => r.id));
    expect(counts).toMatchObject({ written: 49, rejected: 1, dropped: 0 });
    const letter = lines.find((l) => l.reason === 'db_rejected');
    expect(letter).toMatchObject({ id: 17, code: '23514', rejected: 1 });
    // not retried: the next batch lands alone
    writer.add({ id: 100, v: 'after' });
    await writer.flush();
    expect((await stored()).map((r) => r.id)).toContain(100);
    expect(counts.rejected).toBe(1);
    await writer.close();
  });

  it('keeps one row per key, the latest, and writes one batch at a time', async () => {
    const { writer, counts, stored } = await setup(() => live, { key: (r) => String(r.id), flushAtRows: 5, flushIntervalMs: 5 });
    for (let round = 0; round < 20; round++) writer.addMany(rows(0, 10, `v${round}`));
    expect(writer.size).toBeLessThanOrEqual(10);
    await writer.flush();
    await waitFor(() => writer.size === 0, { message: 'buffer empty' });
    await writer.flush();
    expect(await stored()).toEqual(rows(0, 10, 'v19'));
    expect(counts.maxConcurrent).toBe(1);
    await writer.close();
  });

  it('drains on close, retrying a fault until the database answers', async () => {
    let failures = 2;
    const { writer, counts, stored } = await setup(() => (failures-- > 0 ? down : live));
    writer.addMany(rows(0, 500));
    await writer.close();
    expect((await stored()).length).toBe(500);
    expect(counts).toMatchObject({ written: 500, dropped: 0 });
    expect(counts.writes).toBe(3);
    // closed: intake stops
    writer.add({ id: 999, v: 'late' });
    expect(writer.size).toBe(0);
  });

  it('gives up at its close deadline with the database away, counting what it could not write', async () => {
    const { writer, counts, lines } = await setup(() => down, { closeTimeoutMs: 200 });
    writer.addMany(rows(0, 7));
    await writer.close();
    expect(counts).toMatchObject({ written: 0, dropped: 7, closedDrops: 7 });
    expect(lines.some((l) => l.msg === 'rows not written before close; dropped' && l.dropped === 7)).toBe(true);
  });
});
