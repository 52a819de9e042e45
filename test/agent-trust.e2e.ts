import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Kysely, sql } from 'kysely';
import { ReleaseManifest, ReleaseTrust, signCanonical, signManifest, signRelease } from '@ferry/protocol';
import { DATABASE } from '../apps/server/src/database/database.token';
import { AgentImages, buildAgentImages } from './support/agent-images';
import { AgentProcess, agentState, buildAgentBundle, until } from './support/agent-process';
import { AgentWorld, runningReleases, startAgentWorld } from './support/agent-harness';

/**
 * The real agent on the private Docker engine, for a fleet whose releases its owner signs offline:
 * it runs a release the owner signed, and refuses a release an attacker who owns the server wrote
 * straight into the database — even one carrying a valid signature by the server's own fleet key.
 */
describe('device agent: releases signed by their owner, not the server', () => {
  const owner = generateKeyPairSync('ed25519');
  const ownerPublic = owner.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const ownerPrivate = owner.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  let world: AgentWorld;
  let images: AgentImages;
  let agent: AgentProcess | undefined;
  let dataDir: string;
  let uuid: string;

  beforeAll(async () => {
    buildAgentBundle();
    world = await startAgentWorld('trust', { releaseKeys: [ownerPublic] });
    images = buildAgentImages(join(world.work, 'images'), [
      { name: '1', edits: 0 },
      { name: '2', edits: 3 },
    ]);
    dataDir = join(world.work, 'device');
  }, 180_000);
  afterAll(async () => {
    await agent?.kill();
    await world?.close();
  }, 60_000);

  it('pins the release key at registration, runs the signed release, refuses a forged one and stays', async () => {
    ({ agent, uuid } = await world.startAgent(dataDir));
    expect(agentState(dataDir).credentials).toMatchObject({
      releaseTrust: { version: 1, keys: [ownerPublic], threshold: 1 },
    });
    const v1 = await world.push(images.archive('1'), 1);
    const signed = await world.server.api(`/v1/releases/${v1.id}/signatures`, {
      method: 'POST',
      json: { signatures: [signRelease(v1.manifest, ownerPrivate)] },
    });
    expect(signed.status).toBe(200);
    await world.setTarget(uuid, v1.id);
    await world.reported(uuid, 'running', v1.id).catch((e: Error) => {
      throw new Error(`${e.message}\n${agent?.output().slice(-4000)}`);
    });

    // The attacker owns the server: a new release row (same images, so nothing else is needed),
    // signed with the fleet key the server holds, owner signatures made up, and the device pointed at it.
    const db = world.server.app.get<Kysely<unknown>>(DATABASE);
    const fleet = (
      await sql<{
        id: string;
        signing_private_key: string;
      }>`select id, signing_private_key from fleets`.execute(db)
    ).rows[0]!;
    const forgedId = randomUUID();
    const manifest: ReleaseManifest = { ...v1.manifest, releaseId: forgedId, version: 2 };
    const serverSignature = signManifest(manifest, fleet.signing_private_key);
    const madeUp = [{ keyId: signRelease(v1.manifest, ownerPrivate).keyId, signature: serverSignature }];
    await sql`insert into releases (id, fleet_id, version, note, total_size, manifest, signature, created_at, owner_signatures)
      values (${forgedId}, ${fleet.id}, 2, null, ${v1.totalSize}, ${JSON.stringify(manifest)}, ${serverSignature},
      ${v1.createdAt}, ${JSON.stringify(madeUp)})`.execute(db);
    await sql`update devices set target_release_id = ${forgedId} where uuid = ${uuid}`.execute(db);

    // The agent finds it by polling, refuses it, says why, and keeps running v1.
    const refused = await until(
      'the forged release refused',
      () => agent!.lines().find((l) => l.msg === 'release refused' && l.releaseId === forgedId),
      60_000,
      250,
    );
    expect(String(refused.error)).toMatch(/0 valid signature\(s\) by the fleet's release keys; 1 needed/);
    const device = await until(
      'the refusal reported',
      async () => {
        const d = await world.device(uuid);
        return d.report?.releaseId === forgedId && d.report.error ? d : undefined;
      },
      30_000,
      250,
    );
    expect(device.releaseId).toBe(v1.id);
    const { running } = await runningReleases(world.engine);
    expect(running).toEqual([v1.id]);
    expect(device.report?.error).toMatch(/valid signature/);
    expect(agentState(dataDir).journal?.current?.releaseId).toBe(v1.id);
  }, 240_000);

  it('follows a rotation of the release keys that the old key signed, and refuses a release signed only by the revoked key', async () => {
    const next = generateKeyPairSync('ed25519');
    const nextPublic = next.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    const nextPrivate = next.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const trust: ReleaseTrust = { version: 2, keys: [nextPublic], threshold: 1 };
    const rotated = await world.server.api(`/v1/fleets/${world.fleet.slug}/release-trust`, {
      method: 'PUT',
      json: { trust, signatures: [signCanonical(trust, ownerPrivate)] },
    });
    expect(rotated.status).toBe(200);

    // A release signed by the new key alone: the device learns the new key from its target and runs it.
    const v3 = await world.push(images.archive('2'), 3);
    const signed = await world.server.api(`/v1/releases/${v3.id}/signatures`, {
      method: 'POST',
      json: { signatures: [signRelease(v3.manifest, nextPrivate)] },
    });
    expect(signed.status).toBe(200);
    await world.setTarget(uuid, v3.id);
    await world.reported(uuid, 'running', v3.id).catch((e: Error) => {
      throw new Error(`${e.message}\n${agent?.output().slice(-4000)}`);
    });
    expect(agentState(dataDir).credentials).toMatchObject({ releaseTrust: trust });
    expect(agent!.lines().some((l) => l.msg === 'release keys rotated' && l.to === 2)).toBe(true);

    // A release signed only by the revoked key: the server refuses the signature…
    const v4 = await world.push(images.archive('1'), 4);
    const revoked = [signRelease(v4.manifest, ownerPrivate)];
    const refusedByServer = await world.server.api(`/v1/releases/${v4.id}/signatures`, {
      method: 'POST',
      json: { signatures: revoked },
    });
    expect(refusedByServer.status).toBe(403);
    // …so an attacker who owns the server writes it into the database, and the device refuses it.
    const db = world.server.app.get<Kysely<unknown>>(DATABASE);
    await sql`update releases set owner_signatures = ${JSON.stringify(revoked)} where id = ${v4.id}`.execute(
      db,
    );
    await sql`update devices set target_release_id = ${v4.id}, target_version = target_version + 1
      where uuid = ${uuid}`.execute(db);
    const refused = await until(
      'the release signed by the revoked key refused',
      () => agent!.lines().find((l) => l.msg === 'release refused' && l.releaseId === v4.id),
      60_000,
      250,
    );
    expect(String(refused.error)).toMatch(/0 valid signature\(s\) by the fleet's release keys; 1 needed/);
    await until(
      'the refusal reported',
      async () => {
        const d = await world.device(uuid);
        return d.report?.releaseId === v4.id && d.report.error ? d : undefined;
      },
      30_000,
      250,
    );
    expect(agentState(dataDir).journal?.current?.releaseId).toBe(v3.id);
    expect((await runningReleases(world.engine)).running).toEqual([v3.id]);
  }, 240_000);
});
