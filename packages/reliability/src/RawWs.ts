/**
 * Raw WebSocket frames over a plain TCP socket, for malformed-frame tests below the `ws` client
 * (which refuses to send invalid frames): the HTTP upgrade by hand, a frame builder that can break
 * every rule of RFC 6455, and a seeded generator of malformed frames with the close codes a
 * compliant server must answer them with.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Crypto from "node:crypto"
import * as Net from "node:net"
import type { Prng } from "./Prng.js"

/** @since 0.1.0 @category errors */
export class RawError extends Data.TaggedError("RawError")<{ readonly message: string }> {}

/** @since 0.1.0 @category models */
export interface FrameSpec {
  readonly fin?: boolean
  /** RSV1–3 as a 3-bit number. */
  readonly rsv?: number
  readonly opcode: number
  readonly masked?: boolean
  readonly payload?: Buffer
  /** Lie about the length: write this in the header instead (payload is still what is sent). */
  readonly declaredLength?: bigint
}

/** Encode one frame, breaking whatever the spec asks. @since 0.1.0 @category frames */
export const frame = (spec: FrameSpec): Buffer => {
  const payload = spec.payload ?? Buffer.alloc(0)
  const masked = spec.masked ?? true
  const length = spec.declaredLength ?? BigInt(payload.length)
  const b0 = ((spec.fin ?? true) ? 0x80 : 0) | (((spec.rsv ?? 0) & 7) << 4) | (spec.opcode & 0x0f)
  let header: Buffer
  if (length < 126n) header = Buffer.from([b0, (masked ? 0x80 : 0) | Number(length)])
  else if (length < 65536n) {
    header = Buffer.alloc(4)
    header[0] = b0
    header[1] = (masked ? 0x80 : 0) | 126
    header.writeUInt16BE(Number(length), 2)
  } else {
    header = Buffer.alloc(10)
    header[0] = b0
    header[1] = (masked ? 0x80 : 0) | 127
    header.writeBigUInt64BE(length, 2)
  }
  if (!masked) return Buffer.concat([header, payload])
  const mask = Crypto.randomBytes(4)
  const body = Buffer.from(payload)
  for (let i = 0; i < body.length; i++) body[i] = body[i]! ^ mask[i % 4]!
  return Buffer.concat([header, mask, body])
}

/** A close frame payload. @since 0.1.0 @category frames */
export const closePayload = (code: number, reason: Buffer = Buffer.alloc(0)): Buffer => {
  const b = Buffer.alloc(2)
  b.writeUInt16BE(code, 0)
  return Buffer.concat([b, reason])
}

/** @since 0.1.0 @category models */
export interface RawConn {
  readonly socket: Net.Socket
  /** Bytes the server sent after the 101 (frames). */
  readonly received: () => Buffer
  /** Resolves when the socket ends/closes. */
  readonly ended: Promise<void>
}

/**
 * Open a TCP connection and perform the upgrade by hand. `partial` stops after sending the
 * request line (for slowloris); otherwise it waits for the 101.
 *
 * @since 0.1.0
 * @category connections
 */
export const upgrade = (
  port: number,
  options: { readonly extraHeaders?: ReadonlyArray<string>; readonly timeoutMs?: number } = {}
): Effect.Effect<RawConn, RawError> =>
  Effect.async<RawConn, RawError>((resume) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    socket.setNoDelay(true)
    let buf = Buffer.alloc(0)
    let upgraded = false
    let frames = Buffer.alloc(0)
    let endResolve: () => void = () => {}
    const ended = new Promise<void>((r) => {
      endResolve = r
    })
    socket.on("error", () => {})
    socket.on("close", () => {
      endResolve()
      if (!upgraded) {
        resume(Effect.fail(new RawError({ message: `closed before 101: ${buf.toString("latin1").slice(0, 80)}` })))
      }
    })
    socket.on("data", (chunk: Buffer) => {
      if (upgraded) {
        frames = Buffer.concat([frames, chunk])
        return
      }
      buf = Buffer.concat([buf, chunk])
      const end = buf.indexOf("\r\n\r\n")
      if (end < 0) return
      const head = buf.subarray(0, end).toString("latin1")
      if (!head.startsWith("HTTP/1.1 101")) {
        socket.destroy()
        return resume(Effect.fail(new RawError({ message: `no 101: ${head.split("\r\n")[0]}` })))
      }
      upgraded = true
      frames = Buffer.from(buf.subarray(end + 4))
      resume(Effect.succeed({ socket, received: () => frames, ended }))
    })
    const key = Crypto.randomBytes(16).toString("base64")
    socket.write(
      [
        "GET / HTTP/1.1",
        `Host: 127.0.0.1:${port}`,
        "Upgrade: websocket",
        "Connection: Upgrade",
        `Sec-WebSocket-Key: ${key}`,
        "Sec-WebSocket-Version: 13",
        ...(options.extraHeaders ?? []),
        "",
        ""
      ].join("\r\n")
    )
    // Interrupted (the upgrade deadline below, or the caller): the socket goes.
    return Effect.sync(() => {
      socket.destroy()
    })
  }).pipe(
    Effect.timeoutFail({
      duration: options.timeoutMs ?? 5000,
      onTimeout: () => new RawError({ message: "upgrade timed out" })
    })
  )

/** The first server close frame's code in `bytes`, if any (undefined = none seen yet). @since 0.1.0 @category frames */
export const closeCodeIn = (bytes: Buffer): number | undefined => {
  let i = 0
  while (i + 2 <= bytes.length) {
    const opcode = bytes[i]! & 0x0f
    let len = bytes[i + 1]! & 0x7f
    let off = i + 2
    if (len === 126) {
      if (off + 2 > bytes.length) return undefined
      len = bytes.readUInt16BE(off)
      off += 2
    } else if (len === 127) {
      if (off + 8 > bytes.length) return undefined
      len = Number(bytes.readBigUInt64BE(off))
      off += 8
    }
    if (off + len > bytes.length) return undefined
    if (opcode === 8) return len >= 2 ? bytes.readUInt16BE(off) : 1005
    i = off + len
  }
  return undefined
}

/** @since 0.1.0 @category models */
export interface MalformedCase {
  readonly name: string
  readonly bytes: Buffer
  /** Close codes a compliant server answers with; empty = any outcome is fine as long as nothing crashes. */
  readonly expect: ReadonlyArray<number>
}

const invalidUtf8 = [
  Buffer.from([0xc0, 0xaf]),
  Buffer.from([0xed, 0xa0, 0x80]),
  Buffer.from([0xff]),
  Buffer.from([0xf4, 0x90, 0x80, 0x80]),
  Buffer.from([0xe2, 0x82]),
  Buffer.from([0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80])
]

/**
 * One seeded malformed frame (BENCH-AND-RELIABILITY §6.3 "malformed frames"), with the close
 * code(s) a server must answer it with.
 *
 * @since 0.1.0
 * @category generators
 */
export const malformed = (rng: Prng, maxPayload: number): MalformedCase => {
  const kind = rng.int(0, 13)
  const small = () => rng.bytes(rng.int(0, 40))
  switch (kind) {
    case 0: {
      const opcode = rng.pick([3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf])
      return { name: `reserved opcode ${opcode}`, bytes: frame({ opcode, payload: small() }), expect: [1002] }
    }
    case 1: {
      const rsv = rng.int(1, 7)
      return {
        name: `rsv ${rsv} without extension`,
        bytes: frame({ opcode: 1, rsv, payload: small() }),
        expect: [1002]
      }
    }
    case 2:
      return {
        name: "unmasked client frame",
        bytes: frame({ opcode: rng.pick([1, 2, 9]), masked: false, payload: small() }),
        expect: [1002]
      }
    case 3:
      return {
        name: "64-bit length with MSB set",
        bytes: frame({ opcode: rng.pick([1, 2]), declaredLength: (1n << 63n) + BigInt(rng.int(0, 1000)) }),
        expect: [1009]
      }
    case 4:
      return {
        name: "fragmented control frame",
        bytes: frame({ opcode: rng.pick([8, 9, 10]), fin: false, payload: rng.bytes(rng.int(0, 20)) }),
        expect: [1002]
      }
    case 5:
      return {
        name: "oversized control frame",
        bytes: frame({ opcode: rng.pick([9, 10]), payload: rng.bytes(rng.int(126, 400)) }),
        expect: [1002]
      }
    case 6:
      return {
        name: "continuation without a start",
        bytes: frame({ opcode: 0, payload: small() }),
        expect: [1002]
      }
    case 7:
      return {
        name: "interleaved data fragments",
        bytes: Buffer.concat([
          frame({ opcode: 1, fin: false, payload: Buffer.from("{\"type\":") }),
          frame({ opcode: rng.pick([1, 2]), payload: small() })
        ]),
        expect: [1002]
      }
    case 8:
      return {
        name: "invalid UTF-8 in a text frame",
        bytes: frame({
          opcode: 1,
          payload: Buffer.concat([Buffer.from("{\"type\":\""), rng.pick(invalidUtf8), Buffer.from("\"}")])
        }),
        expect: [1007]
      }
    case 9:
      return {
        name: "invalid UTF-8 in a close reason",
        bytes: frame({ opcode: 8, payload: closePayload(1000, rng.pick(invalidUtf8)) }),
        expect: [1007]
      }
    case 10: {
      const code = rng.pick([0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535])
      return { name: `close code ${code}`, bytes: frame({ opcode: 8, payload: closePayload(code) }), expect: [1002] }
    }
    case 11:
      return {
        name: "1-byte close payload",
        bytes: frame({ opcode: 8, payload: Buffer.from([rng.int(0, 255)]) }),
        expect: [1002]
      }
    case 12:
      return {
        name: "declared length over maxPayload",
        bytes: frame({ opcode: rng.pick([1, 2]), declaredLength: BigInt(maxPayload + 1 + rng.int(0, 1000)) }),
        expect: [1009]
      }
    default:
      return { name: "random bytes", bytes: rng.bytes(rng.int(1, 64)), expect: [] }
  }
}
