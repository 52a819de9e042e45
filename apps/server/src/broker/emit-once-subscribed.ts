import { Redis } from 'ioredis';

/** The part of mqemitter(-redis) this wraps: `emit` publishes a packet to every process. */
export interface PacketEmitter {
  emit(message: object, done?: (error?: Error) => void): unknown;
  close(done?: () => void): unknown;
}

type Held = [message: object, done: ((error?: Error) => void) | undefined];

/**
 * mqemitter-redis publishes on one Redis connection and receives on another. After a reconnect
 * (Redis restarted, a Sentinel failover) the publishing connection can be back, and flush what it
 * queued meanwhile, before the receiving one has subscribed again: Redis then hands those messages to
 * no subscriber of this process — a device's target notice among them — and still answers the
 * PUBLISH, so the broker reports them sent.
 *
 * Wrapped by this, `emit` holds messages while `subConn` is away and sends them, in order, once it has
 * subscribed again: ioredis writes its re-subscriptions as the connection becomes ready, so a PING
 * answered after that is answered after them. What is held is what the publishing connection's own
 * offline queue would have held over the same outage. Another process's receiving connection can
 * still be late; rollouts tell a silent device again for that (docs/rollouts.md).
 */
export function emitOnceSubscribed(mq: PacketEmitter, subConn: Redis): void {
  const emit = mq.emit.bind(mq);
  let held: Held[] | null = subConn.status === 'ready' ? null : [];
  let generation = 0;

  subConn.on('close', () => {
    generation += 1;
    held ??= [];
  });
  subConn.on('ready', () => {
    const mine = ++generation;
    subConn.ping().then(
      () => {
        // Closed again (and maybe ready again) before the answer: that newer connection decides.
        if (mine !== generation || !held) return;
        const waiting = held;
        held = null;
        for (const [message, done] of waiting) emit(message, done);
      },
      () => undefined,
    );
  });
  // The broker is closing: nothing held will ever be sent.
  const close = mq.close.bind(mq);
  mq.close = (done?: () => void) => {
    const waiting = held ?? [];
    held = [];
    for (const [, failed] of waiting) failed?.(new Error('the broker closed before the message was sent'));
    return close(done);
  };

  mq.emit = (message: object, done?: (error?: Error) => void) => {
    if (held) held.push([message, done]);
    else emit(message, done);
    return mq;
  };
}
