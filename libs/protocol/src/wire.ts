/**
 * `@ferry/protocol/wire`: what a device or a browser needs to speak Ferry's protocol, without zod (zod
 * alone costs a device about 12 MB of RSS). Topics, canonical JSON, state names, the manifest signature
 * check, and the message types (type-only: they vanish from a bundle). The full entry point
 * (`@ferry/protocol`) adds the schemas that validate all of it on the server.
 * `test/agent-bundle.e2e.ts` fails if zod ever reaches the agent's bundle through here.
 */
export * from './topics';
export * from './canonical-json';
export * from './states';
export * from './rollout-defaults';
export * from './maintenance-window';
export * from './update-policy';
export * from './manifest-signature';
export * from './release-signing';
export * from './roles';
export * from './service-config';
export * from './target-signing';
export { FerryError, ManifestSignatureError, TargetRefusedError, type TargetRefusal } from './errors';
export type { DeviceStateMessage, PresenceMessage, ServiceState, TargetNotice } from './messages';
export type { DeviceTarget, TargetLayer } from './device-target';
export type { RegisteredDevice } from './device';
export type { ReleaseManifest, ReleaseService } from './release';
export * from './variable-levels';
export * from './signing-mode';
