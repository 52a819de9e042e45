import { Server, Socket, connect, createServer } from 'node:net';
import { pipeline } from 'node:stream';
import { AddressInfo } from 'node:net';
import { Simulator } from '../devices/simulator/src';
import { createFleet, eventually } from './support/mqtt-devices';
import { TestServer, startTestServer } from './support/test-server';

/**
 * A simulator whose devices cannot reach the broker fails its start and leaves nothing behind: no
 * client keeps a socket open or reconnects after the caller got the error.
 */
describe('Simulator.start when devices cannot connect', () => {
  let server: TestServer;
  let silent: Server;
  const sockets = new Set<Socket>();
  let accepted = 0;

  beforeAll(async () => {
    server = await startTestServer();
    // Accepts TCP and never answers a CONNECT: a broker that hangs.
    silent = createServer((socket) => {
      accepted += 1;
      sockets.add(socket);
      socket.resume(); // read and drop the CONNECT, so a client's close is seen
      socket.on('error', () => undefined);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  }, 60_000);
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => silent.close(resolve));
    await server.close();
  });

  it('rejects naming the device and the wait, and stops every device it made', async () => {
    const fleet = await createFleet(server, 'Unreachable');
    const port = (silent.address() as AddressInfo).port;
    await expect(
      Simulator.start({
        url: server.url,
        mqttUrl: `mqtt://127.0.0.1:${port}`,
        provisioningKey: fleet.provisioningKey,
        count: 3,
        concurrency: 3,
        connectTimeoutMs: 1500,
      }),
    ).rejects.toMatchObject({
      message: expect.stringMatching(
        /^device [0-9a-f]{32} could not connect to mqtt:\/\/127\.0\.0\.1:\d+ within 1500 ms$/,
      ),
    });
    expect(accepted).toBe(3);
    // Every client closed its socket at once (mqtt.js alone would hold it for its own 5 s timeout)…
    await eventually(async () => (sockets.size === 0 ? true : undefined), 2_000, 'sockets closed');
    // …and none reconnects later (mqtt.js would, every 500 ms, after its timeout).
    await new Promise((resolve) => setTimeout(resolve, 6_500));
    expect(accepted).toBe(3);
  }, 60_000);

  it('stops a device that did connect when another could not', async () => {
    const fleet = await createFleet(server, 'Half reachable');
    let seen = 0;
    const open = new Set<Socket>();
    // The first connection reaches the real broker; the others hang.
    const half = createServer((socket) => {
      seen += 1;
      open.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => open.delete(socket));
      if (seen > 1) return void socket.resume();
      const upstream = connect(server.mqttPort ?? 0, '127.0.0.1');
      pipeline(socket, upstream, () => socket.destroy());
      pipeline(upstream, socket, () => upstream.destroy());
    });
    await new Promise<void>((resolve) => half.listen(0, '127.0.0.1', resolve));
    try {
      await expect(
        Simulator.start({
          url: server.url,
          mqttUrl: `mqtt://127.0.0.1:${(half.address() as AddressInfo).port}`,
          provisioningKey: fleet.provisioningKey,
          count: 3,
          concurrency: 3,
          connectTimeoutMs: 1500,
        }),
      ).rejects.toThrow(/could not connect/);
      expect(seen).toBe(3);
      // The device that connected was stopped too: its connection is closed.
      await eventually(async () => (open.size === 0 ? true : undefined), 2_000, 'sockets closed');
    } finally {
      for (const socket of open) socket.destroy();
      await new Promise((resolve) => half.close(resolve));
    }
  }, 60_000);
});
