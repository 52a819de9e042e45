import { Socket, createConnection } from 'node:net';

/**
 * MQTT 3.1.1 packets built by hand, for tests that must send what a well-behaved client library
 * never would (QoS 2 publishes never released, floods, malformed packets).
 */

function lengthPrefixed(value: string | Buffer): Buffer {
  const b = typeof value === 'string' ? Buffer.from(value) : value;
  return Buffer.concat([Buffer.from([b.length >> 8, b.length & 0xff]), b]);
}

/** The remaining-length varint of MQTT 3.1.1 §2.2.3. */
function remainingLength(n: number): Buffer {
  const bytes: number[] = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    bytes.push(byte);
  } while (n > 0);
  return Buffer.from(bytes);
}

function packet(firstByte: number, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from([firstByte]), remainingLength(body.length), body]);
}

/** A CONNECT with username and password (keep-alive 30 s). */
export function connectPacket(
  clientId: string,
  username: string,
  password: string,
  options: { clean?: boolean } = {},
): Buffer {
  const flags = 0xc0 | (options.clean === false ? 0 : 0x02);
  return packet(
    0x10,
    Buffer.concat([
      lengthPrefixed('MQTT'),
      Buffer.from([4, flags, 0, 30]),
      lengthPrefixed(clientId),
      lengthPrefixed(username),
      lengthPrefixed(password),
    ]),
  );
}

/** A PUBLISH; QoS 1 and 2 carry `messageId`. */
export function publishPacket(topic: string, payload: Buffer, qos: 0 | 1 | 2, messageId = 1): Buffer {
  const id = qos > 0 ? Buffer.from([messageId >> 8, messageId & 0xff]) : Buffer.alloc(0);
  return packet(0x30 | (qos << 1), Buffer.concat([lengthPrefixed(topic), id, payload]));
}

/** A raw TCP connection to a broker that counts what comes back. */
export interface RawConnection {
  socket: Socket;
  /** Bytes received so far. */
  received: () => Buffer;
  /** Resolves when the broker closed the connection (or it failed). */
  closed: Promise<void>;
  /** Resolves once `n` bytes have arrived, or the connection closed first (then false). */
  receivedAtLeast: (n: number, ms?: number) => Promise<boolean>;
}

export function rawConnection(port: number): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let size = 0;
    const waiters: (() => void)[] = [];
    const wake = (): void => {
      for (const w of waiters.splice(0)) w();
    };
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      wake();
    });
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    void closed.then(wake);
    socket.on('error', () => undefined);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve({
        socket,
        received: () => Buffer.concat(chunks),
        closed,
        receivedAtLeast: async (n, ms = 10_000) => {
          const deadline = Date.now() + ms;
          while (size < n) {
            if (socket.destroyed || Date.now() > deadline) return false;
            await new Promise<void>((r) => {
              waiters.push(r);
              setTimeout(r, 50);
            });
          }
          return true;
        },
      });
    });
  });
}
