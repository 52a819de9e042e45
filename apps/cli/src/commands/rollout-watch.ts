import type { RolloutState, RolloutView } from '@ferry/protocol';

import type { FerryClient } from '../support/client';

/** States a watch ends in: finished, or paused and waiting for a person. */
export const WATCH_ENDS: readonly RolloutState[] = ['completed', 'aborted', 'paused'];

/** Redraws a block of lines in place on a terminal (cursor up, clear to the end of the screen). */
export class LiveBlock {
  private lines = 0;

  constructor(private readonly stream: NodeJS.WriteStream) {}

  draw(text: string): void {
    const width = Math.max(20, this.stream.columns || 100);
    // Long lines would wrap and break the count of lines to move up over: cut them.
    const lines = text
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => (l.length > width ? `${l.slice(0, width - 1)}…` : l));
    const up = this.lines > 0 ? `\x1b[${this.lines}A\r\x1b[0J` : '';
    this.stream.write(`${up}${lines.join('\n')}\n`);
    this.lines = lines.length;
  }
}

/**
 * Follows a rollout until it completes, aborts or pauses. Server-sent events (`rollout.updated` of this
 * rollout, device state reports of its fleet) make it fetch the rollout at once; a poll every
 * `pollMs` keeps it going when the event stream is unavailable (a proxy that buffers, an older server).
 */
export async function watchRollout(
  client: FerryClient,
  id: string,
  onView: (view: RolloutView) => void,
  options: { pollMs?: number } = {},
): Promise<RolloutView> {
  const pollMs = options.pollMs ?? 2000;
  const path = `/v1/rollouts/${encodeURIComponent(id)}`;
  let view = await client.get<RolloutView>(path);
  onView(view);
  if (WATCH_ENDS.includes(view.state)) return view;

  const stop = new AbortController();
  let wake: (() => void) | undefined;
  const nudge = (): void => wake?.();
  const events = client
    .events(
      '/v1/events',
      { fleet: view.fleetId },
      (type, data) => {
        if (type === 'device.state' || type === 'device.presence') return nudge();
        if (type !== 'rollout.updated') return;
        try {
          if ((JSON.parse(data) as { data?: { id?: string } }).data?.id === id) nudge();
        } catch {
          // a malformed event is not worth ending the watch for; the poll carries on
        }
      },
      stop.signal,
    )
    .catch(() => undefined); // polling carries on without events
  try {
    for (;;) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, pollMs);
        wake = () => {
          clearTimeout(timer);
          // Let a burst of events settle into one fetch.
          setTimeout(resolve, 150);
          wake = undefined;
        };
      });
      view = await client.get<RolloutView>(path);
      onView(view);
      if (WATCH_ENDS.includes(view.state)) return view;
    }
  } finally {
    stop.abort();
    await events;
  }
}
