// Client-side adapters for the three targets: bare `ws`, NATS (WebSocket listener) and conclave.
// Each adapter opens ready sessions (handshake, subscriptions), builds publish/whisper frame
// templates with a 12-digit µs timestamp at a known offset, and switches a session into "count
// mode", where deliveries are counted and timed straight from the received bytes.
import * as crypto from "node:crypto"
import { Histogram } from "./hist.mjs"
import { clock, frameHeader, RawWs, textFrame } from "./rawws.mjs"

export const TS_DIGITS = 12
export const BODY_BYTES = 200

/** The 200-byte message body: a 12-digit µs timestamp, a space, then filler. */
export const makeBody = () => Buffer.from("0".repeat(TS_DIGITS) + " " + "x".repeat(BODY_BYTES - TS_DIGITS - 1))

export const writeTs = (buf, off, ts) => {
  for (let k = TS_DIGITS - 1; k >= 0; k--) {
    buf[off + k] = 48 + (ts % 10)
    ts = Math.floor(ts / 10)
  }
}

const parseTs = (buf, p) => {
  let v = 0
  for (let k = 0; k < TS_DIGITS; k++) {
    const c = buf[p + k] - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v
}

/** Shared counters of one load-generator process. */
export const stats = {
  win0: Infinity,
  win1: -Infinity,
  delivered: 0,
  outside: 0,
  frames: 0,
  acks: 0,
  errors: 0,
  firstError: null,
  badFrames: 0,
  hist: new Histogram(),
  resetStep(win0, win1) {
    this.win0 = win0
    this.win1 = win1
    this.delivered = 0
    this.outside = 0
    this.frames = 0
    this.acks = 0
    this.errors = 0
    this.firstError = null
    this.badFrames = 0
    this.hist.reset()
  }
}

const record = (ts) => {
  stats.frames++
  if (ts < 0) {
    stats.badFrames++
    return
  }
  if (ts >= stats.win0 && ts < stats.win1) {
    stats.delivered++
    stats.hist.record(clock.nowUs - ts)
  } else stats.outside++
}

const recordError = (text) => {
  stats.errors++
  if (stats.firstError === null) stats.firstError = text.slice(0, 300)
}

/** Waits for control-mode messages on a session during setup. */
class Inbox {
  constructor() {
    this.items = []
    this.waiters = []
  }
  push(m) {
    for (let i = 0; i < this.waiters.length; i++) {
      const w = this.waiters[i]
      if (w.pred(m)) {
        this.waiters.splice(i, 1)
        clearTimeout(w.timer)
        w.resolve(m)
        return
      }
    }
    this.items.push(m)
    if (this.items.length > 1000) this.items.shift()
  }
  next(pred, timeoutMs = 15000, what = "reply") {
    const i = this.items.findIndex(pred)
    if (i !== -1) return Promise.resolve(this.items.splice(i, 1)[0])
    return new Promise((resolve, reject) => {
      const w = { pred, resolve, timer: null }
      w.timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1)
        reject(new Error(`timed out waiting for ${what}`))
      }, timeoutMs)
      this.waiters.push(w)
    })
  }
  failAll(err) {
    for (const w of this.waiters.splice(0)) {
      clearTimeout(w.timer)
      w.resolve({ __closed: err })
    }
  }
}

const connectRaw = async (ctx, hostHeader) => {
  const conn = new RawWs({
    host: ctx.host,
    port: ctx.port,
    hostHeader,
    localAddress: ctx.localAddress,
    timeoutMs: ctx.timeoutMs ?? 15000
  })
  await conn.connect()
  return conn
}

// ---------------------------------------------------------------------------------------------
// bare ws
// ---------------------------------------------------------------------------------------------

export class BareAdapter {
  constructor(ctx) {
    this.ctx = ctx
    this.name = "bare"
  }
  async prepare() {}
  async ensureChannels() {}

  /** Upgrade, subscribe to `channels`, optionally name the connection, then sync (Q → A). */
  async open(index, { channels = [], whisperName = null } = {}) {
    const conn = await connectRaw(this.ctx)
    const inbox = new Inbox()
    conn.onFrame = (buf, s, e) => inbox.push(buf.toString("latin1", s, e))
    conn.onClose = () => inbox.failAll("closed")
    const parts = channels.map((c) => textFrame(`S ${c}`))
    if (whisperName !== null) parts.push(textFrame(`N ${whisperName}`))
    parts.push(textFrame("Q"))
    conn.write(Buffer.concat(parts))
    const m = await inbox.next((x) => x === "A" || typeof x === "object", 15000, "sync")
    if (typeof m === "object") throw new Error("connection closed during setup")
    return { conn, index, whisperName }
  }

  pubFrame(_session, channel) {
    const prefix = Buffer.from(`P ${channel} `)
    const payload = Buffer.concat([prefix, makeBody()])
    const frame = textFrame(payload)
    return { frame, tsOff: frame.length - payload.length + prefix.length }
  }

  whisperFrame(_session, target) {
    const prefix = Buffer.from(`W ${target.whisperName} `)
    const payload = Buffer.concat([prefix, makeBody()])
    const frame = textFrame(payload)
    return { frame, tsOff: frame.length - payload.length + prefix.length }
  }

  startCounting(session) {
    session.conn.onFrame = (buf, s, e) => {
      if (e - s >= TS_DIGITS) record(parseTs(buf, s))
    }
  }
}

// ---------------------------------------------------------------------------------------------
// NATS over its WebSocket listener
// ---------------------------------------------------------------------------------------------

const CRLF = Buffer.from("\r\n")
const PONG = textFrame("PONG\r\n")

/** Parses the NATS protocol stream carried in WebSocket payloads (records may span frames). */
class NatsStream {
  constructor(conn) {
    this.conn = conn
    this.carry = null
    this.counting = false
    this.inbox = new Inbox()
  }
  feed(buf, s, e) {
    if (this.carry !== null) {
      buf = Buffer.concat([this.carry, buf.subarray(s, e)])
      s = 0
      e = buf.length
      this.carry = null
    }
    let p = s
    while (p < e) {
      const nl = buf.indexOf(CRLF, p)
      if (nl === -1 || nl + 2 > e) break
      const c0 = buf[p]
      if (c0 === 0x4d /* MSG subject sid [reply] len */) {
        let len = 0
        let mul = 1
        for (let q = nl - 1; q > p; q--) {
          const d = buf[q] - 48
          if (d < 0 || d > 9) break
          len += d * mul
          mul *= 10
        }
        const ps = nl + 2
        if (ps + len + 2 > e) break
        if (this.counting) record(len >= TS_DIGITS ? parseTs(buf, ps) : -1)
        else this.inbox.push("MSG")
        p = ps + len + 2
        continue
      }
      if (c0 === 0x50 /* PING / PONG */) {
        if (buf[p + 1] === 0x49) this.conn.write(PONG)
        else this.inbox.push("PONG")
      } else if (c0 === 0x2d /* -ERR */) {
        const t = buf.toString("latin1", p, nl)
        if (this.counting) recordError(t)
        else this.inbox.push(t)
      } else if (c0 === 0x49 /* INFO */) this.inbox.push("INFO")
      p = nl + 2
    }
    if (p < e) this.carry = Buffer.from(buf.subarray(p, e))
  }
}

export class NatsAdapter {
  constructor(ctx) {
    this.ctx = ctx
    this.name = "nats"
  }
  async prepare() {}
  async ensureChannels() {}

  async open(index, { channels = [], whisperName = null } = {}) {
    const conn = await connectRaw(this.ctx)
    const stream = new NatsStream(conn)
    conn.onFrame = (buf, s, e) => stream.feed(buf, s, e)
    conn.onClose = () => stream.inbox.failAll("closed")
    let cmd = `CONNECT {"verbose":false,"pedantic":false,"echo":false,"protocol":1,"name":"b${index}"}\r\n`
    let sid = 1
    for (const c of channels) cmd += `SUB ${c} ${sid++}\r\n`
    if (whisperName !== null) cmd += `SUB w.${whisperName} ${sid++}\r\n`
    cmd += "PING\r\n"
    conn.sendText(cmd)
    const m = await stream.inbox.next(
      (x) => x === "PONG" || typeof x === "object" || x.startsWith("-ERR"),
      15000,
      "PONG"
    )
    if (m !== "PONG") throw new Error(`nats setup failed: ${typeof m === "object" ? "closed" : m}`)
    return { conn, index, whisperName, stream }
  }

  pubFrame(_session, channel) {
    const body = makeBody()
    const prefix = Buffer.from(`PUB ${channel} ${body.length}\r\n`)
    const payload = Buffer.concat([prefix, body, CRLF])
    const frame = textFrame(payload)
    return { frame, tsOff: frame.length - payload.length + prefix.length }
  }

  whisperFrame(session, target) {
    return this.pubFrame(session, `w.${target.whisperName}`)
  }

  startCounting(session) {
    session.stream.counting = true
  }
}

// ---------------------------------------------------------------------------------------------
// conclave
// ---------------------------------------------------------------------------------------------

const SPKI_ED25519_PREFIX_LEN = 12

/** The D-3 signed message; mirrors `Auth.authMessage` of @conclave/protocol. */
export const authMessage = (host, handle, nonceB64) => Buffer.from(`conclave-auth-v1\n${host}\n${handle}\n${nonceB64}`)

const newKey = (user) => {
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ed25519")
  const spki = publicKey.export({ format: "der", type: "spki" })
  return {
    user,
    privateKey,
    pub: spki.subarray(SPKI_ED25519_PREFIX_LEN).toString("base64url")
  }
}

// Keepalive (SPEC §2.10): conclave reaps sessions silent for 60 s, so every open session sends an
// application `ping` every 20 s, as the bridge does. Pongs are ignored by the counters.
const PING_FRAME = textFrame("{\"type\":\"ping\"}")
const live = new Set()
setInterval(() => {
  for (const conn of live) {
    if (conn.open) conn.write(PING_FRAME)
    else live.delete(conn)
  }
}, 20_000).unref()

const TEXT_NEEDLE = Buffer.from("\"text\":\"")
const TYPE_PREFIX = Buffer.from("{\"type\":\"")

export class ConclaveAdapter {
  constructor(ctx) {
    this.ctx = ctx
    this.name = "conclave"
    this.authority = `${ctx.host}:${ctx.port}`.toLowerCase()
    this.keys = []
  }

  /** Register `n` users (one machine key each) up front, `concurrency` at a time. */
  async prepare(n, concurrency = 32) {
    const tag = crypto.randomBytes(3).toString("hex")
    for (let i = 0; i < n; i++) this.keys.push(newKey(`bench${tag}u${i}`))
    let next = 0
    const worker = async () => {
      while (next < n) {
        const k = this.keys[next++]
        const s = await this.handshake(k, `reg${k.user}`, true)
        s.conn.close()
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker))
  }

  async handshake(key, handle, register, port = this.ctx.port) {
    const ctx = port === this.ctx.port ? this.ctx : { ...this.ctx, port }
    const authority = `${ctx.host}:${port}`.toLowerCase()
    const conn = await connectRaw(ctx, authority)
    const inbox = new Inbox()
    conn.onFrame = (buf, s, e) => {
      try {
        inbox.push(JSON.parse(buf.toString("utf8", s, e)))
      } catch {
        inbox.push({ type: "__undecodable" })
      }
    }
    conn.onClose = () => inbox.failAll("closed")
    const expect = async (types, what) => {
      const m = await inbox.next(
        (x) => x.__closed !== undefined || types.includes(x.type) || x.type === "error",
        15000,
        what
      )
      if (m.__closed !== undefined) throw new Error(`connection closed while waiting for ${what}`)
      if (m.type === "error") throw new Error(`${what}: ${m.error.kind}: ${m.error.message ?? ""}`)
      return m
    }
    conn.sendText(
      JSON.stringify({ type: "hello", protocol_version: 1, session: handle, host: authority, client: "bridge" })
    )
    const ch = await expect(["challenge"], "challenge")
    const signature = crypto.sign(null, authMessage(authority, handle, ch.nonce), key.privateKey).toString(
      "base64url"
    )
    const frames = []
    if (register) {
      frames.push(textFrame(JSON.stringify({ type: "register", username: key.user, machine: "m", pubkey: key.pub })))
    }
    frames.push(textFrame(JSON.stringify({ type: "auth", pubkey: key.pub, signature })))
    conn.write(Buffer.concat(frames))
    const est = await expect(["established"], register ? "register" : "auth")
    live.add(conn)
    return { conn, inbox, expect, path: est.path }
  }

  /** Create channels (public) from a throwaway session of the first key; `conflict` is fine. */
  async ensureChannels(names) {
    if (names.length === 0) return
    const s = await this.handshake(this.keys[0], "chanadmin", false)
    let id = 0
    for (const name of names) {
      s.conn.sendText(
        JSON.stringify({ type: "admin", id: `c${id++}`, op: { kind: "create_channel", name, visibility: "public" } })
      )
      const m = await s.inbox.next(
        (x) => x.type === "ack" || x.type === "error" || x.__closed !== undefined,
        15000,
        "create"
      )
      if (m.type === "error" && m.error.kind !== "conflict") {
        throw new Error(`create_channel ${name}: ${m.error.message}`)
      }
      if (m.__closed !== undefined) throw new Error("closed during create_channel")
    }
    s.conn.close()
  }

  /** Authenticate as key `index % keys` with handle `h<index>`, join `channels` (pipelined). */
  async open(index, { channels = [], port } = {}) {
    const key = this.keys[index % this.keys.length]
    const s = await this.handshake(key, `h${index}`, false, port)
    if (channels.length > 0) {
      s.conn.write(
        Buffer.concat(
          channels.map((c, i) => textFrame(JSON.stringify({ type: "join", id: `j${i}`, channel: c, token: null })))
        )
      )
      for (let i = 0; i < channels.length; i++) await s.expect(["joined"], `join ${channels[i]}`)
    }
    return { conn: s.conn, index, path: s.path, inbox: s.inbox, expect: s.expect, whisperName: null }
  }

  pubFrame(_session, channel) {
    const head = `{"type":"channel_msg","channel":${JSON.stringify(channel)},"payload":{"kind":"plain","text":"`
    const payload = Buffer.concat([Buffer.from(head), makeBody(), Buffer.from("\"}}")])
    const frame = textFrame(payload)
    return { frame, tsOff: frame.length - payload.length + Buffer.byteLength(head) }
  }

  whisperFrame(_session, target) {
    const head = `{"type":"whisper","target":${JSON.stringify(target.path)},"payload":{"kind":"plain","text":"`
    const payload = Buffer.concat([Buffer.from(head), makeBody(), Buffer.from("\"}}")])
    const frame = textFrame(payload)
    return { frame, tsOff: frame.length - payload.length + Buffer.byteLength(head) }
  }

  startCounting(session) {
    session.conn.onFrame = (buf, s, e) => {
      // Frames are JSON.stringify output with `type` first: classify by its first letter.
      if (buf.compare(TYPE_PREFIX, 0, TYPE_PREFIX.length, s, s + TYPE_PREFIX.length) === 0) {
        const t = buf[s + TYPE_PREFIX.length]
        if (t === 0x61 /* ack */ || t === 0x70 /* pong */ || t === 0x73 /* server_info */) {
          if (t === 0x61) stats.acks++
          return
        }
        if (t === 0x65 /* error */) {
          recordError(buf.toString("utf8", s, e))
          return
        }
      }
      const i = buf.indexOf(TEXT_NEEDLE, s)
      if (i !== -1 && i + TEXT_NEEDLE.length + TS_DIGITS <= e) record(parseTs(buf, i + TEXT_NEEDLE.length))
      else {
        stats.badFrames++
        if (stats.firstError === null) {
          stats.firstError = `unexpected frame: ${buf.toString("utf8", s, Math.min(e, s + 200))}`
        }
      }
    }
  }
}

/** bare-ws in "json" mode: bare setup commands, conclave-shaped posts/whispers/deliveries/acks. */
export class BareJsonAdapter extends BareAdapter {
  constructor(ctx) {
    super(ctx)
    this.name = "bare-json"
    this.json = new ConclaveAdapter(ctx)
  }
  async open(index, opts = {}) {
    const s = await super.open(index, { ...opts, whisperName: opts.whisperName ?? `n${index}` })
    return { ...s, path: { user: "u", machine: "m", session: s.whisperName } }
  }
  pubFrame(session, channel) {
    return this.json.pubFrame(session, channel)
  }
  whisperFrame(session, target) {
    return this.json.whisperFrame(session, target)
  }
  startCounting(session) {
    this.json.startCounting(session)
  }
}

export const adapterFor = (target, ctx) =>
  target === "bare"
    ? new BareAdapter(ctx)
    : target === "bare-json"
    ? new BareJsonAdapter(ctx)
    : target === "nats"
    ? new NatsAdapter(ctx)
    : new ConclaveAdapter(ctx)

export { frameHeader }
