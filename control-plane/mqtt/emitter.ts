// The broker's message emitter: mqemitter, as Aedes would make it, with its two waiting queues
// made deques. mqemitter 7 keeps the messages waiting for a free slot (past `concurrency` in
// flight) in plain arrays and takes each with Array.prototype.shift(), which moves every element
// after it: with thousands waiting (a fleet of 5,000 agents reporting while the control plane is
// busy) each message cost a copy of the whole queue, 19 % of the thread in one profile
// (`released`, mqemitter.js). Denque's shift is O(1). The queues are mqemitter's own fields
// (`_messageQueue`, `_messageCallbacks`: push, shift and length are all it uses); the pinned
// version is checked at start, so an upgrade that moves them fails loudly, not slowly.
import { createRequire } from 'node:module';
import Denque from 'denque';
import mqemitter, { type MQEmitter } from 'mqemitter';

const require = createRequire(import.meta.url);

export function createEmitter(concurrency = 100): MQEmitter {
  const mq = mqemitter({ concurrency, matchEmptyLevels: true }) as MQEmitter & { _messageQueue?: unknown; _messageCallbacks?: unknown };
  if (!Array.isArray(mq._messageQueue) || !Array.isArray(mq._messageCallbacks)) {
    const { version } = require('mqemitter/package.json') as { version: string };
    throw new Error(`mqemitter ${version} does not keep its queues where emitter.ts expects them`);
  }
  mq._messageQueue = new Denque();
  mq._messageCallbacks = new Denque();
  return mq;
}
