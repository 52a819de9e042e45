import { generateKeyPairSync } from 'node:crypto';
import { Kysely, sql } from 'kysely';
import {
  Fleet,
  Release,
  ReleaseSignature,
  ReleaseTrust,
  releaseKeyId,
  signCanonical,
  signRelease,
} from '@ferry/protocol';
import { DATABASE } from '../apps/server/src/database/database.token';
import { pushRelease, registerDevice } from './support/mqtt-devices';
import { TestServer, DATABASE_KINDS, startTestServer } from './support/test-server';

function releaseKey(): { publicPem: string; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return {
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    privatePem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  };
}

/** Fleets whose releases are signed by their owners' offline keys, not by the server (issue 16 items 3-4, 7). */
describe.each(DATABASE_KINDS)('release keys pinned on a fleet (%s)', (kind) => {
  let server: TestServer;
  const a = releaseKey();
  const b = releaseKey();
  const c = releaseKey();
  let fleet: Fleet & { provisioningKey: string };

  const createFleet = async (body: object): Promise<Response> =>
    server.api('/v1/fleets', { method: 'POST', json: { arch: 'amd64', ...body } });
  const sign = (release: Release, signatures: ReleaseSignature[]): Promise<Response> =>
    server.api(`/v1/releases/${release.id}/signatures`, { method: 'POST', json: { signatures } });
  const rollout = (release: Release): Promise<Response> =>
    server.api(`/v1/fleets/${fleet.slug}/rollouts`, { method: 'POST', json: { releaseId: release.id } });

  beforeAll(async () => {
    server = await startTestServer(kind);
    const created = await createFleet({
      name: 'Owned',
      releaseKeys: [a.publicPem, b.publicPem],
      releaseThreshold: 2,
    });
    expect(created.status).toBe(201);
    const body = (await created.json()) as Fleet;
    const key = (await (
      await server.api(`/v1/fleets/${body.slug}/provisioning-keys`, { method: 'POST', json: {} })
    ).json()) as { key: string };
    fleet = { ...body, provisioningKey: key.key };
  });
  afterAll(async () => server.close());

  it('pins the keys at creation, shows the mode, and refuses unusable keys with the reason', async () => {
    expect(fleet.releaseTrust).toEqual({ version: 1, keys: [a.publicPem, b.publicPem], threshold: 2 });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 })
      .publicKey.export({ type: 'spki', format: 'pem' })
      .toString();
    for (const [body, reason] of [
      [{ name: 'x', releaseKeys: ['not a key'] }, /releaseKeys.0: not a public key/],
      [{ name: 'x', releaseKeys: [rsa] }, /not an ed25519 public key/],
      [{ name: 'x', releaseKeys: [a.publicPem, a.publicPem] }, /the same key twice/],
      [{ name: 'x', releaseKeys: [a.publicPem], releaseThreshold: 2 }, /threshold 2 is more than the 1/],
      [{ name: 'x', releaseThreshold: 1 }, /give releaseKeys too/],
      [{ name: 'x', releaseKeys: [] }, /releaseKeys/],
    ] as const) {
      const response = await createFleet(body);
      expect([response.status, ((await response.json()) as { message: string }).message]).toEqual([
        400,
        expect.stringMatching(reason),
      ]);
    }
    const plain = (await (await createFleet({ name: 'Server signed' })).json()) as Fleet;
    expect(plain.releaseTrust).toBeNull();
    // Devices learn the root of trust when they register, and pin it.
    const registered = await server.api('/v1/device/register', {
      method: 'POST',
      json: { provisioningKey: fleet.provisioningKey },
      token: null,
    });
    expect(
      ((await registered.json()) as { fleet: { releaseTrust: ReleaseTrust } }).fleet.releaseTrust,
    ).toEqual(fleet.releaseTrust);
  });

  it('keeps a pushed release from devices until the threshold of owners signed it', async () => {
    const device = await registerDevice(server, fleet);
    const release = await pushRelease(server, fleet, 'owned v1');
    expect(release.ownerSignatures).toEqual([]);
    const refused = await rollout(release);
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { message: string }).message).toMatch(
      /0 valid signature\(s\).*2 needed.*sign it first/,
    );
    expect(
      (
        await server.api(`/v1/devices/${device.uuid}/target`, {
          method: 'PUT',
          json: { releaseId: release.id },
        })
      ).status,
    ).toBe(409);

    const byA = signRelease(release.manifest, a.privatePem);
    const byB = signRelease(release.manifest, b.privatePem);
    const byC = signRelease(release.manifest, c.privatePem);
    // One key, a key twice, an outsider, a signature of another text: all short of 2 of {a, b}.
    for (const signatures of [
      [byA],
      [byA, byA],
      [byA, byC],
      [byA, { keyId: byB.keyId, signature: byA.signature }],
    ]) {
      const response = await sign(release, signatures);
      expect(response.status).toBe(403);
      expect(((await response.json()) as { message: string }).message).toMatch(
        /1 valid signature\(s\).*2 needed/,
      );
    }
    expect(
      ((await (await server.api(`/v1/releases/${release.id}`)).json()) as Release).ownerSignatures,
    ).toEqual([]);
    for (const body of [
      { signatures: [] },
      { signatures: [{ keyId: 'x', signature: 'y' }] },
      { sigs: [byA] },
    ]) {
      expect(
        (await server.api(`/v1/releases/${release.id}/signatures`, { method: 'POST', json: body })).status,
      ).toBe(400);
    }
    const signed = await sign(release, [byA, byB]);
    expect(signed.status).toBe(200);
    expect(((await signed.json()) as Release).ownerSignatures).toEqual([byA, byB]);
    expect((await rollout(release)).status).toBe(201);
    expect(
      (
        await server.api(`/v1/devices/${device.uuid}/target`, {
          method: 'PUT',
          json: { releaseId: release.id },
        })
      ).status,
    ).toBe(200);
    // The device's target carries the owners' signatures, which the agent checks against its pinned keys.
    const target = await server.api('/v1/device/target', { token: device.apiKey });
    const answer = (await target.json()) as { release: { ownerSignatures: ReleaseSignature[] } };
    expect(answer.release.ownerSignatures).toEqual([byA, byB]);
  });

  it('rotates keys only with the signatures of the current threshold, never by the server alone', async () => {
    const next: ReleaseTrust = { version: 2, keys: [b.publicPem, c.publicPem], threshold: 1 };
    const put = (body: unknown): Promise<Response> =>
      server.api(`/v1/fleets/${fleet.slug}/release-trust`, { method: 'PUT', json: body });
    const onlyA = await put({ trust: next, signatures: [signCanonical(next, a.privatePem)] });
    expect(onlyA.status).toBe(403);
    const byNewKey = await put({ trust: next, signatures: [signCanonical(next, c.privatePem)] });
    expect(byNewKey.status).toBe(403);
    const skipped = { ...next, version: 3 };
    expect(
      (
        await put({
          trust: skipped,
          signatures: [signCanonical(skipped, a.privatePem), signCanonical(skipped, b.privatePem)],
        })
      ).status,
    ).toBe(409);
    const rotated = await put({
      trust: next,
      signatures: [signCanonical(next, a.privatePem), signCanonical(next, b.privatePem)],
    });
    expect(rotated.status).toBe(200);
    expect(((await rotated.json()) as Fleet).releaseTrust).toEqual(next);
    // A replay of the same rotation is refused: the keys are at version 2 now.
    expect(
      (
        await put({
          trust: next,
          signatures: [signCanonical(next, a.privatePem), signCanonical(next, b.privatePem)],
        })
      ).status,
    ).toBe(409);

    // Key a is gone: its signature no longer counts; c alone now meets the threshold of 1.
    const v2 = await pushRelease(server, fleet, 'owned v2');
    expect((await sign(v2, [signRelease(v2.manifest, a.privatePem)])).status).toBe(403);
    expect((await sign(v2, [signRelease(v2.manifest, c.privatePem)])).status).toBe(200);
    expect(releaseKeyId(c.publicPem)).toBe(signRelease(v2.manifest, c.privatePem).keyId);
  });

  it('refuses a release that a server owner forged into the database', async () => {
    // What an attacker who owns the server can do: write a release row with its own manifest, signed
    // by the server's fleet key, and owner signatures made up.
    const base = await pushRelease(server, fleet, 'forgery base');
    // Owner signatures that are real, by a key the fleet pinned at creation, but over another manifest.
    const madeUp = [
      { keyId: releaseKeyId(a.publicPem), signature: signRelease(base.manifest, a.privatePem).signature },
    ];
    const forged = { ...base.manifest, releaseId: '00000000-0000-4000-8000-00000000f0f0', version: 99 };
    const db = server.app.get<Kysely<unknown>>(DATABASE);
    await sql`insert into releases (id, fleet_id, version, note, total_size, manifest, signature, created_at, owner_signatures)
      values (${forged.releaseId}, ${fleet.id}, 99, null, 1, ${JSON.stringify(forged)}, ${base.signature}, ${base.createdAt},
      ${JSON.stringify(madeUp)})`.execute(db);
    const response = await rollout({ ...base, id: forged.releaseId });
    expect(response.status).toBe(409);
    expect(((await response.json()) as { message: string }).message).toMatch(/0 valid signature/);
    // The same forgery with no owner signatures at all (NULL) is refused alike.
    const bare = { ...forged, releaseId: '00000000-0000-4000-8000-00000000f0f1', version: 98 };
    await sql`insert into releases (id, fleet_id, version, note, total_size, manifest, signature, created_at, owner_signatures)
      values (${bare.releaseId}, ${fleet.id}, 98, null, 1, ${JSON.stringify(bare)}, ${base.signature}, ${base.createdAt}, null)`.execute(
      db,
    );
    const unsigned = await rollout({ ...base, id: bare.releaseId });
    expect(unsigned.status).toBe(409);
    expect(((await unsigned.json()) as { message: string }).message).toMatch(/0 valid signature/);
  });

  it('keeps release versions growing per fleet', async () => {
    await pushRelease(server, fleet, 'versions 1');
    const latest = await pushRelease(server, fleet, 'versions 2');
    const response = await server.api(`/v1/fleets/${fleet.slug}/releases?version=${latest.version - 1}`, {
      method: 'POST',
      body: 'x',
      headers: { 'content-type': 'application/x-tar' },
    });
    expect(response.status).toBe(409);
    expect(((await response.json()) as { message: string }).message).toMatch(/versions only grow/);
  });
});
