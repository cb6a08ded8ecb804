// A minimal WebSocket client over raw TCP (RFC 6455), for load generation.
// - no per-message event objects: complete frames are handed to `onFrame(buf, start, end, opcode)`
//   as offsets into the received chunk;
// - client frames are masked with the all-zero key (legal framing; the payload bytes stay as-is);
// - a frame split across TCP chunks is reassembled by concatenating the tail with the next chunk.
import * as net from "node:net"

const CRLFCRLF = Buffer.from("\r\n\r\n")

/** Header of a masked (zero key) client frame with `opcode` and payload length `len`. */
export const frameHeader = (len, opcode = 0x1) => {
  if (len < 126) {
    const h = Buffer.alloc(6)
    h[0] = 0x80 | opcode
    h[1] = 0x80 | len
    return h
  }
  if (len < 65536) {
    const h = Buffer.alloc(8)
    h[0] = 0x80 | opcode
    h[1] = 0x80 | 126
    h.writeUInt16BE(len, 2)
    return h
  }
  const h = Buffer.alloc(14)
  h[0] = 0x80 | opcode
  h[1] = 0x80 | 127
  h.writeUInt32BE(Math.floor(len / 2 ** 32), 2)
  h.writeUInt32BE(len >>> 0, 6)
  return h
}

/** One complete masked text frame holding `payload` (string or Buffer). */
export const textFrame = (payload) => {
  const body = typeof payload === "string" ? Buffer.from(payload, "utf8") : payload
  return Buffer.concat([frameHeader(body.length, 0x1), body])
}

/** Receive clock: performance.now() in µs, refreshed once per received TCP chunk. */
export const clock = { nowUs: 0 }

const CLOSE_FRAME = Buffer.concat([frameHeader(2, 0x8), Buffer.from([0x03, 0xe8])])

export class RawWs {
  /**
   * @param {{ host: string, port: number, hostHeader?: string, path?: string, localAddress?: string,
   *           timeoutMs?: number }} opts
   */
  constructor(opts) {
    this.opts = opts
    this.socket = null
    this.carry = null
    this.open = false
    this.closed = false
    this.upgradeHeaders = ""
    this.onFrame = null // (buf, start, end, opcode) => void
    this.onClose = null // (reason) => void
    this.fragments = 0
  }

  /** Connect and upgrade; resolves once the 101 response is read. */
  connect() {
    return new Promise((resolve, reject) => {
      const { host, port, localAddress } = this.opts
      const hostHeader = this.opts.hostHeader ?? `${host}:${port}`
      const path = this.opts.path ?? "/"
      let settled = false
      const fail = (err) => {
        if (settled) return
        settled = true
        clearTimeout(timer)
        this.closed = true
        this.socket?.destroy()
        reject(err)
      }
      const timer = setTimeout(() => fail(new Error("connect/upgrade timed out")), this.opts.timeoutMs ?? 15000)
      const socket = net.connect(localAddress ? { host, port, localAddress } : { host, port })
      this.socket = socket
      socket.setNoDelay(true)
      let head = null
      socket.on("connect", () => {
        socket.write(
          `GET ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
      })
      const onHttp = (chunk) => {
        head = head === null ? chunk : Buffer.concat([head, chunk])
        const i = head.indexOf(CRLFCRLF)
        if (i === -1) {
          if (head.length > 65536) fail(new Error("upgrade response too large"))
          return
        }
        const text = head.toString("latin1", 0, i)
        if (!text.startsWith("HTTP/1.1 101")) {
          fail(new Error(`upgrade refused: ${text.split("\r\n")[0]}`))
          return
        }
        this.upgradeHeaders = text
        socket.removeListener("data", onHttp)
        socket.on("data", (c) => this.onData(c))
        this.open = true
        settled = true
        clearTimeout(timer)
        resolve(this)
        const rest = head.subarray(i + 4)
        head = null
        if (rest.length > 0) this.onData(rest)
      }
      socket.on("data", onHttp)
      socket.on("error", (err) => {
        if (!settled) fail(err)
      })
      socket.on("close", () => {
        const wasOpen = this.open
        this.open = false
        this.closed = true
        if (!settled) fail(new Error("socket closed during upgrade"))
        else if (wasOpen && this.onClose) this.onClose("socket closed")
      })
    })
  }

  onData(chunk) {
    clock.nowUs = performance.now() * 1000
    let buf = chunk
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, chunk])
      this.carry = null
    }
    const n = buf.length
    let off = 0
    while (n - off >= 2) {
      const b0 = buf[off]
      const b1 = buf[off + 1]
      let len = b1 & 0x7f
      let hdr = 2
      if (len === 126) {
        if (n - off < 4) break
        len = buf.readUInt16BE(off + 2)
        hdr = 4
      } else if (len === 127) {
        if (n - off < 10) break
        len = buf.readUInt32BE(off + 2) * 4294967296 + buf.readUInt32BE(off + 6)
        hdr = 10
      }
      if (b1 & 0x80) hdr += 4 // servers never mask; tolerate it anyway (payload would be masked)
      if (n - off < hdr + len) break
      const start = off + hdr
      const end = start + len
      off = end
      const opcode = b0 & 0x0f
      if ((b0 & 0x80) === 0 || opcode === 0) this.fragments++
      if (opcode === 0x8) {
        const wasOpen = this.open
        this.close()
        if (wasOpen && this.onClose) this.onClose("close frame")
        continue
      }
      if (opcode === 0x9) {
        // ping → pong with the same payload
        if (this.open) this.socket.write(Buffer.concat([frameHeader(len, 0xa), buf.subarray(start, end)]))
        continue
      }
      if (opcode === 0xa) continue
      if (this.onFrame !== null) this.onFrame(buf, start, end, opcode)
    }
    if (off < n) this.carry = buf.subarray(off)
  }

  /** Write raw bytes (already framed). Returns socket.write's result. */
  write(buf) {
    if (!this.open) return false
    return this.socket.write(buf)
  }

  sendText(payload) {
    return this.write(textFrame(payload))
  }

  get writableLength() {
    return this.socket === null ? 0 : this.socket.writableLength
  }

  /** Send a close frame and end the socket (the server closes its side). */
  close() {
    if (this.closed) return
    if (this.open) {
      this.socket.write(CLOSE_FRAME)
      this.socket.end()
    }
    this.open = false
    this.closed = true
    setTimeout(() => this.socket?.destroy(), 2000).unref()
  }

  /** Drop the TCP connection at once (no close frame): the abrupt disconnect of a reconnect storm. */
  destroy() {
    this.open = false
    this.closed = true
    this.socket?.destroy()
  }
}
