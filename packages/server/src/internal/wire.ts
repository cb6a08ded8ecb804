/**
 * Server→client WebSocket text frames built whole (RFC 6455 §5.2): FIN set, opcode 1 (text), the
 * payload length in its shortest form, no mask (a server never masks), then the payload. A frame
 * fanned out to many sockets is built once and the same bytes are written to each, instead of
 * letting `ws` frame it once per recipient.
 *
 * @internal
 */

const headerLength = (length: number): number => (length < 126 ? 2 : length < 65536 ? 4 : 10)

const writeHeader = (out: Buffer, length: number): void => {
  out[0] = 0x81
  if (length < 126) {
    out[1] = length
  } else if (length < 65536) {
    out[1] = 126
    out.writeUInt16BE(length, 2)
  } else {
    out[1] = 127
    out.writeUInt32BE(Math.floor(length / 0x1_0000_0000), 2)
    out.writeUInt32BE(length >>> 0, 6)
  }
}

/** The whole frame for a payload given as text (encoded to UTF-8 here) or as its UTF-8 bytes. */
export const textFrame = (payload: string | Buffer): Buffer => {
  if (typeof payload === "string") {
    const length = Buffer.byteLength(payload, "utf8")
    const start = headerLength(length)
    const out = Buffer.allocUnsafe(start + length)
    writeHeader(out, length)
    out.write(payload, start, "utf8")
    return out
  }
  const start = headerLength(payload.length)
  const out = Buffer.allocUnsafe(start + payload.length)
  writeHeader(out, payload.length)
  payload.copy(out, start)
  return out
}

/**
 * A frame fanned out to many sockets: its UTF-8 bytes, and the whole WebSocket frame built from them
 * the first time a socket asks (then shared by every other recipient).
 */
export class Shared {
  private frame: Buffer | undefined
  readonly payload: Buffer
  constructor(text: string) {
    this.payload = Buffer.from(text, "utf8")
  }
  get wire(): Buffer {
    return (this.frame ??= textFrame(this.payload))
  }
}
