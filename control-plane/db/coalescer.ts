// Many callers' small writes as one statement: each call waits for its own outcome, but the
// calls that arrive while a batch is in flight go together in the next one. One batch runs at a
// time, so a burst (5,000 agents reconnecting after a restart) costs a handful of statements
// instead of one per caller per step, and the pool stays free for everything else.
//
// No timer: the first call of an idle coalescer starts its batch on the next turn of the event
// loop (so calls made in the same turn share it), and a busy one starts the next batch the
// moment the last one ends. Latency when idle is one turn; under load the batch grows instead
// of the queue of statements.

export interface CoalescerOptions<T, R> {
  /**
   * runs one batch; returns one outcome per item, in order: a value, or an Error for that item
   * alone (its caller's promise rejects with it). Throwing rejects every caller of the batch.
   */
  run(items: T[]): Promise<(R | Error)[]>;
  /** the most items in one batch; the rest wait for the next (default 5,000) */
  maxItems?: number;
  /**
   * what an item weighs (a Hello: its devices), and the most one batch may weigh: a batch takes
   * items while the sum stays within it, and always at least one
   */
  weight?(item: T): number;
  maxWeight?: number;
  /**
   * a batch not settled by then fails its callers with BatchTimeoutError and the next batch
   * starts (its late outcome is ignored): one statement that never returns must not hold up
   * every caller after it
   */
  timeoutMs?: number;
}

export class BatchTimeoutError extends Error {
  readonly code = 'batch_timeout';
  constructor(ms: number) {
    super(`the batch did not finish within ${ms} ms`);
    this.name = 'BatchTimeoutError';
  }
}

export type Coalescer<T, R> = (item: T) => Promise<R>;

export function createCoalescer<T, R>(o: CoalescerOptions<T, R>): Coalescer<T, R> {
  const maxItems = Math.max(1, o.maxItems ?? 5000);
  type Waiting = { item: T; resolve(r: R): void; reject(e: unknown): void };
  let queue: Waiting[] = [];
  let busy = false;

  const next = () => {
    if (queue.length === 0) {
      busy = false;
      return;
    }
    let take = Math.min(queue.length, maxItems);
    if (o.weight && o.maxWeight !== undefined) {
      let sum = 0;
      for (let i = 0; i < take; i++) {
        sum += o.weight(queue[i]!.item);
        if (sum > o.maxWeight && i > 0) {
          take = i;
          break;
        }
      }
    }
    const batch = take === queue.length ? queue : queue.slice(0, take);
    queue = take === queue.length ? [] : queue.slice(take);
    const items = batch.map((w) => w.item);
    let timer: NodeJS.Timeout | undefined;
    const ran = Promise.resolve().then(() => o.run(items));
    const bounded = o.timeoutMs === undefined ? ran : Promise.race([
      ran,
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new BatchTimeoutError(o.timeoutMs!)), o.timeoutMs))),
    ]);
    ran.catch(() => {});
    void bounded
      .finally(() => clearTimeout(timer))
      .then(
        (out) => {
          for (let i = 0; i < batch.length; i++) {
            const r = out[i];
            if (r instanceof Error) batch[i]!.reject(r);
            else if (i >= out.length) batch[i]!.reject(new Error('the batch gave no outcome for this item'));
            else batch[i]!.resolve(r as R);
          }
        },
        (err: unknown) => {
          for (const w of batch) w.reject(err);
        },
      )
      .finally(next);
  };

  return (item) =>
    new Promise<R>((resolve, reject) => {
      queue.push({ item, resolve, reject });
      if (!busy) {
        busy = true;
        setImmediate(next);
      }
    });
}
