import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { MqttClient, connectAsync } from 'mqtt';
import { BrokerService } from '../apps/server/src/broker/broker.service';
import { Release, deviceTopic } from '@ferry/protocol';
import { DeviceStateService } from '../apps/server/src/device-state/device-state.service';
import {
  TestDevice,
  TestFleet,
  connectCode,
  connectDevice,
  createFleet,
  delay,
  eventually,
  getDevice,
  nextMessage,
  pushRelease,
  registerDevice,
  subscribeCodes,
} from './support/mqtt-devices';
import { ADMIN_TOKEN, DATABASE_KINDS, TestServer, startTestServer } from './support/test-server';

const run = promisify(execFile);

describe.each(DATABASE_KINDS)('MQTT push channel on the embedded broker, %s', (kind) => {
  let server: TestServer;
  let mqttUrl: string;
  let fleet: TestFleet;
  let other: TestFleet;
  let release: Release;
  const clients: MqttClient[] = [];
  const device = async (f: TestFleet = fleet): Promise<TestDevice> => registerDevice(server, f);
  const connect = async (d: TestDevice, options = {}): Promise<MqttClient> => {
    const client = await connectDevice(mqttUrl, d, options);
    clients.push(client);
    return client;
  };
  const stats = async (): Promise<{
    dropped: Record<string, number>;
    accepted: number;
    state: { flushes: number; rowsWritten: number };
  }> => (await (await server.api('/v1/mqtt/stats')).json()) as never;

  beforeAll(async () => {
    server = await startTestServer(kind, {
      MQTT_AUTH_FAILURES_PER_MINUTE: '1000',
      FERRY_STATE_FLUSH_MS: '300',
      FERRY_EVENTS_HEARTBEAT_SECONDS: '0.2',
    });
    mqttUrl = `mqtt://127.0.0.1:${server.mqttPort}`;
    fleet = await createFleet(server, 'Push');
    other = await createFleet(server, 'Other');
    release = await pushRelease(server, fleet, 'v1');
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true).catch(() => undefined)));
    await server.close();
  });

  it('listens on a port of its own when MQTT_PORT=0', () => {
    expect(server.mqttPort).toBeGreaterThan(0);
    expect(server.mqttPort).not.toBe(1883);
  });

  it('refuses a wrong key, an unknown username, anonymous clients and a borrowed client id with the right CONNACK code', async () => {
    const a = await device();
    const b = await device();
    const base = { clientId: a.uuid, username: a.uuid };
    expect(await connectCode(mqttUrl, { ...base, password: b.apiKey })).toBe(4);
    expect(
      await connectCode(mqttUrl, {
        ...base,
        username: '0'.repeat(32),
        clientId: '0'.repeat(32),
        password: a.apiKey,
      }),
    ).toBe(4);
    expect(await connectCode(mqttUrl, { ...base, username: 'admin', password: ADMIN_TOKEN })).toBe(4);
    expect(await connectCode(mqttUrl, { clientId: a.uuid })).toBe(5);
    expect(await connectCode(mqttUrl, { ...base, clientId: b.uuid, password: a.apiKey })).toBe(2);
    expect(await connectCode(mqttUrl, { ...base, password: a.apiKey })).toBe(0);
    // Debian's mosquitto_sub sees the same refusal.
    const refused = await run('mosquitto_sub', [
      '-h',
      '127.0.0.1',
      '-p',
      String(server.mqttPort),
      '-V',
      'mqttv311',
      '-i',
      a.uuid,
      '-u',
      a.uuid,
      '-P',
      'wrong-key',
      '-t',
      deviceTopic(a.uuid, 'target'),
      '-C',
      '1',
      '-W',
      '3',
    ]).then(
      () => null,
      (error: { stderr: string; code: number }) => error,
    );
    expect(refused?.stderr).toMatch(/bad user name or password|not authori[sz]ed/i);
  });

  it("keeps device A out of device B's topics, out of # and $SYS/#, and delivers nothing forbidden", async () => {
    const a = await device();
    const b = await device();
    const clientA = await connect(a);
    const clientB = await connect(b);
    const seenByA: string[] = [];
    clientA.on('message', (topic) => seenByA.push(topic));
    const granted = await subscribeCodes(clientA, [
      deviceTopic(b.uuid, 'target'),
      deviceTopic(b.uuid, 'state'),
      '#',
      '$SYS/#',
      'ferry/v1/devices/+/target',
      deviceTopic(a.uuid, 'presence'),
      `ferry/v1/devices/${a.uuid}/#`,
    ]);
    // [MQTT-3.9.3] 0x80 is the failure return code of a SUBSCRIBE. A device only publishes its presence.
    expect(granted).toEqual([128, 128, 128, 128, 128, 128, 1]);
    await clientB.subscribeAsync(deviceTopic(b.uuid, 'target'), { qos: 1 });
    const before = await stats();
    // A writes into B's topics: acknowledged, dropped, counted; A stays connected.
    await clientA.publishAsync(deviceTopic(b.uuid, 'state'), JSON.stringify({ status: 'failed' }), {
      qos: 1,
    });
    await clientA.publishAsync(deviceTopic(b.uuid, 'target'), JSON.stringify({ releaseId: 'evil' }), {
      qos: 1,
    });
    await clientA.publishAsync(deviceTopic(a.uuid, 'target'), 'self-made target', { qos: 1 });
    const bGotTarget = nextMessage(clientB, deviceTopic(b.uuid, 'target'), 500).then(
      () => true,
      () => false,
    );
    // B's own notice still reaches B, and only B.
    expect(
      (await server.api(`/v1/devices/${b.uuid}/target`, { method: 'PUT', json: { releaseId: release.id } }))
        .status,
    ).toBe(200);
    expect(await bGotTarget).toBe(true);
    await delay(200);
    const after = await stats();
    expect((after.dropped.forbidden_topic ?? 0) - (before.dropped.forbidden_topic ?? 0)).toBe(3);
    expect(seenByA.filter((t) => !t.startsWith(`ferry/v1/devices/${a.uuid}/`))).toEqual([]);
    expect(seenByA.filter((t) => t !== deviceTopic(a.uuid, 'target'))).toEqual([]);
    expect((await getDevice(server, b.uuid)).status).toBe('registered');
    expect(clientA.connected).toBe(true);
  });

  it('delivers a retained QoS 1 notice to a device that was offline when its target changed', async () => {
    const d = await device();
    const first = await connect(d);
    await first.subscribeAsync(deviceTopic(d.uuid, 'target'), { qos: 1 });
    await first.endAsync();
    const response = await server.api(`/v1/devices/${d.uuid}/target`, {
      method: 'PUT',
      json: { releaseId: release.id },
    });
    expect(response.status).toBe(200);
    expect(((await response.json()) as { targetReleaseId: string }).targetReleaseId).toBe(release.id);
    expect((await getDevice(server, d.uuid)).targetReleaseId).toBe(release.id);
    // Persistent session: no new SUBSCRIBE needed.
    const again = await connectDevice(mqttUrl, d);
    clients.push(again);
    const notice = JSON.parse((await nextMessage(again, deviceTopic(d.uuid, 'target'))).toString()) as Record<
      string,
      unknown
    >;
    expect(notice).toMatchObject({ releaseId: release.id, version: release.version, fleetId: fleet.id });
    expect(notice.signature).toBe(release.signature);
    expect(String(notice.blobsUrl)).toMatch(/\/v1\/blobs$/);
    // A fresh clean session gets the retained notice when it subscribes.
    const fresh = await connect(d, { clean: true });
    const retained = nextMessage(fresh, deviceTopic(d.uuid, 'target'));
    await fresh.subscribeAsync(deviceTopic(d.uuid, 'target'), { qos: 1 });
    expect(JSON.parse((await retained).toString())).toMatchObject({ releaseId: release.id });
  });

  it("answers 404 for an unknown device or release and 400 for another fleet's release or a bad body", async () => {
    const d = await device();
    const foreign = await pushRelease(server, other, 'other');
    const put = (uuid: string, json: unknown): Promise<Response> =>
      server.api(`/v1/devices/${uuid}/target`, { method: 'PUT', json });
    expect((await put('0'.repeat(32), { releaseId: release.id })).status).toBe(404);
    expect((await put(d.uuid, { releaseId: 'nope' })).status).toBe(404);
    expect((await put(d.uuid, { releaseId: foreign.id })).status).toBe(400);
    expect((await put(d.uuid, { release: release.id })).status).toBe(400);
    expect(
      (
        await server.api(`/v1/devices/${d.uuid}/target`, {
          method: 'PUT',
          json: { releaseId: release.id },
          token: null,
        })
      ).status,
    ).toBe(401);
    expect((await getDevice(server, d.uuid)).targetReleaseId).toBeNull();
  });

  it('drops and counts malformed, oversized and invalid payloads while other sessions keep working', async () => {
    const bad = await device();
    const good = await device();
    const badClient = await connect(bad);
    const goodClient = await connect(good);
    const before = await stats();
    const state = deviceTopic(bad.uuid, 'state');
    await badClient.publishAsync(state, '{"status":', { qos: 1 });
    await badClient.publishAsync(
      state,
      JSON.stringify({ status: 'downloading', pad: 'x'.repeat(20 * 1024) }),
      { qos: 1 },
    );
    await badClient.publishAsync(state, JSON.stringify({ status: 'exploded' }), { qos: 1 });
    await badClient.publishAsync(
      state,
      JSON.stringify({ status: 'downloading', bytesDone: 5, bytesTotal: 1 }),
      { qos: 0 },
    );
    await badClient.publishAsync('somewhere/else', 'hello', { qos: 1 });
    await goodClient.publishAsync(
      deviceTopic(good.uuid, 'state'),
      JSON.stringify({ status: 'downloading', releaseId: release.id, bytesDone: 10, bytesTotal: 100 }),
      { qos: 1 },
    );
    const stored = await eventually(async () => {
      const d = await getDevice(server, good.uuid);
      return d.status === 'downloading' ? d : undefined;
    });
    expect(stored.report).toMatchObject({ releaseId: release.id, bytesDone: 10, bytesTotal: 100 });
    const after = await stats();
    const delta = (reason: string): number => (after.dropped[reason] ?? 0) - (before.dropped[reason] ?? 0);
    expect(delta('malformed_json')).toBe(1);
    expect(delta('too_large')).toBe(1);
    expect(delta('invalid_message')).toBe(2);
    expect(delta('forbidden_topic')).toBe(1);
    expect((await getDevice(server, bad.uuid)).status).toBe('registered');
    // Both sessions survive: the bad device is not cut off for one bad report.
    expect(badClient.connected).toBe(true);
    expect(goodClient.connected).toBe(true);
    await goodClient.publishAsync(
      deviceTopic(good.uuid, 'state'),
      JSON.stringify({ status: 'downloaded', releaseId: release.id }),
      { qos: 1 },
    );
    await eventually(async () =>
      (await getDevice(server, good.uuid)).status === 'downloaded' ? true : undefined,
    );
  });

  it('cuts a connection that sends a packet far beyond the payload limit without harming others', async () => {
    const hog = await device();
    const other = await device();
    const hogClient = await connect(hog);
    const otherClient = await connect(other);
    const closed = new Promise<void>((resolve) => hogClient.once('close', () => resolve()));
    hogClient.publish(deviceTopic(hog.uuid, 'state'), Buffer.alloc(2 * 1024 * 1024, 0x20), { qos: 0 });
    await closed;
    expect((await stats()).dropped.packet_too_large).toBeGreaterThanOrEqual(1);
    await otherClient.publishAsync(deviceTopic(other.uuid, 'state'), JSON.stringify({ status: 'idle' }), {
      qos: 1,
    });
    await eventually(async () =>
      (await getDevice(server, other.uuid)).status === 'idle' ? true : undefined,
    );
  });

  it('kicks a deprovisioned device at once and refuses it afterwards', async () => {
    const d = await device();
    const client = await connect(d);
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    expect((await server.api(`/v1/devices/${d.uuid}`, { method: 'DELETE' })).status).toBe(204);
    await closed;
    expect(await connectCode(mqttUrl, { clientId: d.uuid, username: d.uuid, password: d.apiKey })).toBe(4);
  });

  it('records presence online and offline with last-seen, and publishes it retained', async () => {
    const d = await device();
    const client = await connect(d, {
      will: {
        topic: deviceTopic(d.uuid, 'presence'),
        payload: Buffer.from('{"status":"offline"}'),
        qos: 1,
        retain: true,
      },
    });
    const online = await eventually(async () => {
      const found = await getDevice(server, d.uuid);
      return found.online ? found : undefined;
    });
    expect(online.lastSeenAt).not.toBeNull();
    // A tool with the server's own credentials sees the retained presence.
    const { username, password } = server.app.get(BrokerService, { strict: false }).serverCredentials;
    const tool = await connectAsync(mqttUrl, {
      username,
      password,
      clientId: 'ops-tool',
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
    clients.push(tool);
    const retained = nextMessage(tool, deviceTopic(d.uuid, 'presence'));
    await tool.subscribeAsync(deviceTopic(d.uuid, 'presence'), { qos: 1 });
    expect(JSON.parse((await retained).toString())).toMatchObject({ status: 'online' });
    await client.endAsync(true);
    const offline = await eventually(async () => {
      const found = await getDevice(server, d.uuid);
      return found.online ? undefined : found;
    });
    expect(Date.parse(offline.lastSeenAt ?? '')).toBeGreaterThanOrEqual(Date.parse(online.lastSeenAt ?? ''));
  });

  it('streams state events over SSE, filtered by fleet, with heartbeats, to the admin token only', async () => {
    expect((await server.api('/v1/events', { token: null })).status).toBe(401);
    expect((await server.api('/v1/events?token=wrong-token-0123456789', { token: null })).status).toBe(401);
    expect(
      (await server.api(`/v1/events?token=${ADMIN_TOKEN}&fleet=no-such-fleet`, { token: null })).status,
    ).toBe(404);
    const mine = await device(fleet);
    const theirs = await device(other);
    const controller = new AbortController();
    const response = await fetch(`${server.url}/v1/events?fleet=${fleet.slug}&token=${ADMIN_TOKEN}`, {
      signal: controller.signal,
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/text\/event-stream/);
    const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = '';
    const read = async (until: (t: string) => boolean): Promise<void> => {
      const deadline = Date.now() + 5000;
      while (!until(text) && Date.now() < deadline) {
        const { value, done } = await reader.read();
        if (done) break;
        text += value;
      }
    };
    await read((t) => t.includes(': ferry events'));
    const theirClient = await connect(theirs);
    const myClient = await connect(mine);
    await theirClient.publishAsync(
      deviceTopic(theirs.uuid, 'state'),
      JSON.stringify({ status: 'installing' }),
      { qos: 1 },
    );
    await myClient.publishAsync(
      deviceTopic(mine.uuid, 'state'),
      JSON.stringify({ status: 'downloading', bytesDone: 1, bytesTotal: 2 }),
      { qos: 1 },
    );
    await read(
      (t) => t.includes(mine.uuid) && t.includes('event: device.state') && t.includes(': heartbeat'),
    );
    controller.abort();
    const events = text
      .split('\n\n')
      .filter((block) => block.includes('event: '))
      .map((block) => ({
        type: /event: (.*)/.exec(block)?.[1],
        data: JSON.parse(/data: (.*)/.exec(block)?.[1] ?? '{}') as {
          fleetId: string;
          data: { uuid: string; status?: string };
        },
      }));
    const state = events.find((e) => e.type === 'device.state');
    expect(state?.data).toMatchObject({
      fleetId: fleet.id,
      data: { uuid: mine.uuid, status: 'downloading' },
    });
    expect(events.every((e) => e.data.fleetId === fleet.id)).toBe(true);
    expect(text).not.toContain(theirs.uuid);
    expect(text).toContain(': heartbeat');
    // Bearer header works as well as ?token=.
    const byHeader = await server.api('/v1/events', { signal: AbortSignal.timeout(300) }).catch(() => null);
    expect(byHeader?.status).toBe(200);
  });

  it('coalesces many progress reports into few database writes and keeps the final state', async () => {
    const d = await device();
    const client = await connect(d);
    const statsBefore = server.app.get(DeviceStateService, { strict: false }).stats();
    const total = 1_000_000;
    await client.publishAsync(
      deviceTopic(d.uuid, 'state'),
      JSON.stringify({ status: 'downloading', releaseId: release.id, bytesDone: 0, bytesTotal: total }),
      { qos: 1 },
    );
    for (let i = 1; i <= 300; i += 1) {
      client.publish(
        deviceTopic(d.uuid, 'state'),
        JSON.stringify({
          status: 'downloading',
          releaseId: release.id,
          bytesDone: i * 3000,
          bytesTotal: total,
        }),
        { qos: 0 },
      );
    }
    await client.publishAsync(
      deviceTopic(d.uuid, 'state'),
      JSON.stringify({ status: 'downloading', releaseId: release.id, bytesDone: 999_999, bytesTotal: total }),
      { qos: 1 },
    );
    await delay(700);
    await client.publishAsync(
      deviceTopic(d.uuid, 'state'),
      JSON.stringify({ status: 'running', releaseId: release.id }),
      { qos: 1 },
    );
    const final = await eventually(async () => {
      const found = await getDevice(server, d.uuid);
      return found.status === 'running' ? found : undefined;
    });
    expect(final.releaseId).toBe(release.id);
    const statsAfter = server.app.get(DeviceStateService, { strict: false }).stats();
    expect(statsAfter.reports - statsBefore.reports).toBeGreaterThanOrEqual(303);
    // 303 reports: the first status, progress flushed every 300 ms, the final status.
    expect(statsAfter.rowsWritten - statsBefore.rowsWritten).toBeLessThanOrEqual(10);
  });

  it('never lets a late older report overwrite a newer one (replicas, moved devices)', async () => {
    const d = await device();
    const state = server.app.get(DeviceStateService, { strict: false });
    state.report(d.uuid, { status: 'running', releaseId: release.id }, '2026-11-30T02:00:02.000Z');
    await state.flush();
    state.report(d.uuid, { status: 'downloading', bytesDone: 1, bytesTotal: 2 }, '2026-11-30T02:00:01.000Z');
    await state.flush();
    const stored = await getDevice(server, d.uuid);
    expect(stored.status).toBe('running');
    expect(stored.releaseId).toBe(release.id);
    expect(stored.lastSeenAt).toBe('2026-11-30T02:00:02.000Z');
  });

  it("lets Debian's mosquitto_sub and mosquitto_pub act as a device", async () => {
    const d = await device();
    const port = String(server.mqttPort);
    const auth = ['-h', '127.0.0.1', '-p', port, '-V', 'mqttv311', '-u', d.uuid, '-P', d.apiKey];
    expect(
      (await server.api(`/v1/devices/${d.uuid}/target`, { method: 'PUT', json: { releaseId: release.id } }))
        .status,
    ).toBe(200);
    const { stdout } = await run('mosquitto_sub', [
      ...auth,
      '-i',
      d.uuid,
      '-t',
      deviceTopic(d.uuid, 'target'),
      '-q',
      '1',
      '-C',
      '1',
      '-W',
      '5',
    ]);
    expect(JSON.parse(stdout)).toMatchObject({ releaseId: release.id });
    await run('mosquitto_pub', [
      ...auth,
      '-i',
      d.uuid,
      '-t',
      deviceTopic(d.uuid, 'state'),
      '-q',
      '1',
      '-m',
      JSON.stringify({ status: 'installing', releaseId: release.id }),
    ]);
    await eventually(async () =>
      (await getDevice(server, d.uuid)).status === 'installing' ? true : undefined,
    );
    const denied = await run('mosquitto_sub', [...auth, '-i', d.uuid, '-t', '#', '-C', '1', '-W', '2']).then(
      (r) => r.stderr,
      (error: { stderr: string }) => error.stderr,
    );
    expect(denied).toMatch(/denied|fail|refused|Timed out/i);
  });
});
