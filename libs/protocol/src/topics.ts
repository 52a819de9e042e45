/**
 * MQTT topic layout (docs/protocol.md). Every device topic lives under its own prefix; a device may
 * touch nothing else.
 */
export const TOPIC_ROOT = 'ferry/v1/devices';

/**
 * `target` and `variables`: server → device notices (retained); `state` and `presence`: device → server.
 */
export const DEVICE_TOPIC_KINDS = ['target', 'variables', 'state', 'presence'] as const;
export type DeviceTopicKind = (typeof DEVICE_TOPIC_KINDS)[number];
/** What the server tells a device: the only topics a device may receive. */
const NOTICE_KINDS: readonly string[] = ['target', 'variables'];

/** `ferry/v1/devices/{uuid}/{kind}` */
export function deviceTopic(uuid: string, kind: DeviceTopicKind): string {
  return `${TOPIC_ROOT}/${uuid}/${kind}`;
}

/** The prefix under which one device's topics live: `ferry/v1/devices/{uuid}`. */
export function devicePrefix(uuid: string): string {
  return `${TOPIC_ROOT}/${uuid}`;
}

/** Splits a device topic into uuid and kind, or returns null for anything else. */
export function parseDeviceTopic(topic: string): { uuid: string; kind: DeviceTopicKind } | null {
  const parts = topic.split('/');
  if (parts.length !== 5 || `${parts[0]}/${parts[1]}/${parts[2]}` !== TOPIC_ROOT) return null;
  const uuid = parts[3];
  const kind = parts[4];
  if (!uuid || !kind || !(DEVICE_TOPIC_KINDS as readonly string[]).includes(kind)) return null;
  return { uuid, kind: kind as DeviceTopicKind };
}

/**
 * May device `uuid` publish on `topic`? Only on its own `state` and `presence` (deny by default).
 * `uuid` must already be a validated device UUID (no `+`, `#` or `/`).
 */
export function deviceMayPublish(uuid: string, topic: string): boolean {
  return topic === deviceTopic(uuid, 'state') || topic === deviceTopic(uuid, 'presence');
}

/**
 * May device `uuid` subscribe with `filter`? Only inside its own subtree: its `target` or `variables`
 * topic, or `+`/`#`
 * directly under its prefix. Never `$SYS` or any other `$` topic, never a wildcard above its prefix.
 * What a granted wildcard delivers is narrowed further by {@link deviceMayReceive}.
 */
export function deviceMaySubscribe(uuid: string, filter: string): boolean {
  const prefix = `${devicePrefix(uuid)}/`;
  if (!filter.startsWith(prefix)) return false;
  const rest = filter.slice(prefix.length);
  return NOTICE_KINDS.includes(rest) || rest === '+' || rest === '#';
}

/** May a message on `topic` be delivered to device `uuid`? Only its own `target` and `variables`. */
export function deviceMayReceive(uuid: string, topic: string): boolean {
  return topic === deviceTopic(uuid, 'target') || topic === deviceTopic(uuid, 'variables');
}
