// Aedes' in-memory persistence (aedes-persistence 11), with a bounded outgoing queue per session
// and a way to forget a session. Upstream keeps every QoS>0 message for a persistent session
// (clean=false, MQTT 3.1.1 §3.1.2.4) in an unbounded array until it is acknowledged: one offline
// reader subscribed to telemetry would grow the control plane without limit. Only the outgoing
// queue is replaced (its five methods); subscriptions, retained messages, wills and the inbound
// QoS 2 store stay upstream's, but for one filter: Aedes stores every filter of a SUBSCRIBE
// packet once any of them is granted (handlers/subscribe.js storeSubscriptions), so the ones the
// ACL refused are left out here, or they would fill the session's queue.
import { createRequire } from 'node:module';
import { Readable } from 'node:stream';

const require = createRequire(import.meta.url);

/** the fields of an aedes-packet this store reads */
interface QueuedPacket {
  brokerId?: string;
  brokerCounter?: number;
  messageId?: number;
  topic?: string;
}
type ClientRef = { id: string };
interface MemoryPersistence {
  addSubscriptions(client: ClientRef, subs: object[]): Promise<void>;
  cleanSubscriptions(client: ClientRef): Promise<void>;
  cleanIncoming(client: ClientRef): Promise<void>;
  subscriptionsByClient(client: ClientRef): Promise<Array<{ topic: string; qos: number }>>;
}
// CommonJS modules without usable typings for these paths
const MemoryPersistenceBase = require('aedes-persistence/asyncPersistence.js') as new () => MemoryPersistence;
const Packet = require('aedes-packet') as new (p: QueuedPacket) => QueuedPacket;

export type DropReason = 'queue_full' | 'session_expired' | 'revoked';

export class SessionStore extends MemoryPersistenceBase {
  // insertion-ordered, so the oldest message is the first key and is dropped in O(1)
  readonly #queues = new Map<string, Map<number, QueuedPacket>>();
  #seq = 0;

  readonly #maxQueued: number;
  readonly #refused: WeakSet<object>;
  readonly #onDropped: (clientId: string, count: number, reason: DropReason) => void;

  constructor(o: { maxQueued: number; refused: WeakSet<object>; onDropped: (clientId: string, count: number, reason: DropReason) => void }) {
    super();
    this.#maxQueued = o.maxQueued;
    this.#refused = o.refused;
    this.#onDropped = o.onDropped;
  }

  override async addSubscriptions(client: ClientRef, subs: object[]): Promise<void> {
    const granted = subs.filter((s) => !this.#refused.has(s));
    if (granted.length > 0) await super.addSubscriptions(client, granted);
  }

  #enqueue(clientId: string, packet: QueuedPacket): void {
    let q = this.#queues.get(clientId);
    if (!q) this.#queues.set(clientId, (q = new Map()));
    q.set(++this.#seq, new Packet(packet));
    // The cap counts what is in flight to an online client too: a client that stops
    // acknowledging is as much a sink as one that is away.
    let dropped = 0;
    while (q.size > this.#maxQueued) {
      q.delete(q.keys().next().value!);
      dropped++;
    }
    if (dropped > 0) this.#onDropped(clientId, dropped, 'queue_full');
  }

  async outgoingEnqueue(sub: { clientId: string }, packet: QueuedPacket): Promise<void> {
    this.#enqueue(sub.clientId, packet);
  }

  async outgoingEnqueueCombi(subs: Array<{ clientId: string }>, packet: QueuedPacket): Promise<void> {
    for (const s of subs) this.#enqueue(s.clientId, packet);
  }

  /** records the packet id a queued message was sent with (or its PUBREL), as upstream does */
  async outgoingUpdate(client: ClientRef, packet: QueuedPacket): Promise<void> {
    const q = this.#queues.get(client.id);
    if (!q) return;
    for (const [k, queued] of q) {
      if (queued.brokerId === packet.brokerId) {
        if (queued.brokerCounter === packet.brokerCounter) {
          queued.messageId = packet.messageId;
          return;
        }
      } else if (queued.messageId === packet.messageId) {
        q.set(k, packet);
        return;
      }
    }
    // Upstream throws here, and Aedes then drops the connection. A message missing from the
    // queue was dropped by the cap while it waited to be sent: it is still sent, untracked.
  }

  async outgoingClearMessageId(client: ClientRef, packet: QueuedPacket): Promise<QueuedPacket | undefined> {
    const q = this.#queues.get(client.id);
    if (!q) return undefined;
    for (const [k, queued] of q) {
      if (queued.messageId === packet.messageId) {
        q.delete(k);
        if (q.size === 0) this.#queues.delete(client.id);
        return queued;
      }
    }
    return undefined;
  }

  outgoingStream(client: ClientRef): Readable {
    // a snapshot: the queue changes while Aedes resends it
    return Readable.from([...(this.#queues.get(client.id)?.values() ?? [])]);
  }

  /** messages queued for a session (tests, metrics) */
  queued(clientId: string): number {
    return this.#queues.get(clientId)?.size ?? 0;
  }

  /** forgets a session: its subscriptions, its queue and its inbound QoS 2 state */
  async forget(clientId: string, reason: DropReason): Promise<void> {
    const dropped = this.queued(clientId);
    this.#queues.delete(clientId);
    if (dropped > 0) this.#onDropped(clientId, dropped, reason);
    await this.cleanSubscriptions({ id: clientId });
    await this.cleanIncoming({ id: clientId });
  }
}
