import { AddressInfo } from 'node:net';
import http from 'node:http';
import { FerryClient } from './client';

/** A server that answers /v1/events with `body`, written in `chunks` pieces, then ends. */
async function eventServer(body: string, chunks = 1): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    const size = Math.ceil(body.length / chunks);
    for (let i = 0; i < body.length; i += size) res.write(body.slice(i, i + size));
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, close: () => new Promise((r) => server.close(() => r())) };
}

async function received(body: string, chunks = 1): Promise<[string, string][]> {
  const server = await eventServer(body, chunks);
  const events: [string, string][] = [];
  try {
    await new FerryClient(server.url, 'token').events(
      '/v1/events',
      {},
      (type, data) => events.push([type, data]),
      new AbortController().signal,
    );
    return events;
  } finally {
    await server.close();
  }
}

describe('FerryClient.events (server-sent events)', () => {
  it('reads LF, CRLF and CR line ends, comments, multi-line data and events split across chunks', async () => {
    const body =
      ': keep-alive\n\nevent: rollout.updated\ndata: {"a":1}\n\n' +
      'event: device.state\r\ndata: line one\r\ndata:line two\r\n\r\n' +
      'data: plain\r\r: end\n';
    const expected = [
      ['rollout.updated', '{"a":1}'],
      ['device.state', 'line one\nline two'],
      ['message', 'plain'],
    ];
    expect(await received(body)).toEqual(expected);
    expect(await received(body, 17)).toEqual(expected);
  });

  it('gives up a stream whose event never ends, with a clear error, instead of buffering it', async () => {
    const endless = `event: x\ndata: ${'a'.repeat(2 * 1024 * 1024)}`;
    await expect(received(endless, 64)).rejects.toThrow(/sent an event over 1048576 bytes/);
  });
});
