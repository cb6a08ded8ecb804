/**
 * The console's protocol client: one WebSocket to the server that served the page, the ordinary
 * handshake as `"client":"console"` (D-51, with `enroll` first when redeeming a code), requests
 * matched to replies by id, a keepalive, and reconnection with backoff. Every server frame is decoded
 * through `@conclave/protocol`'s Schema; a frame that does not decode is dropped.
 */
import type * as Frames from "@conclave/protocol/Frames"
import { ServerFrame } from "@conclave/protocol/Frames"
import { KEEPALIVE_INTERVAL_MS, PROTOCOL_VERSION, RESPONSE_TIMEOUT_MS } from "@conclave/protocol/Limits"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { type Identity, sign } from "./keys.js"

const decode = Schema.decodeUnknownEither(ServerFrame, { errors: "first", onExcessProperty: "ignore" })

/** The exact bytes D-3 signs: `conclave-auth-v1\n<host>\n<handle>\n<nonce>`. */
const authMessage = (host: string, handle: string, nonce: string): Uint8Array<ArrayBuffer> =>
  new TextEncoder().encode(`conclave-auth-v1\n${host}\n${handle}\n${nonce}`)

export type Status =
  | { readonly tag: "connecting"; readonly attempt: number }
  | { readonly tag: "open"; readonly path: SessionPath; readonly admin: boolean }
  | { readonly tag: "reconnecting"; readonly attempt: number; readonly inMs: number }
  | { readonly tag: "refused"; readonly error: Frames.ProtocolError }

export type SessionPath = Frames.ServerFrameOf<"established">["path"]

export type Reply = Exclude<Frames.Reply, { readonly type: "error" }>

/** A refusal's words: version mismatches carry numbers instead. */
export const describe = (error: Frames.ProtocolError): string =>
  error.kind === "version_mismatch"
    ? `protocol version mismatch: the server speaks ${error.ours}, this console ${error.theirs}`
    : error.message

export class Refused extends Error {
  constructor(readonly error: Frames.ProtocolError) {
    super(describe(error))
  }
}

type Outgoing = { readonly type: Frames.Request["type"] } & Record<string, unknown>

export interface WireOptions {
  readonly url: string
  readonly host: string
  readonly handle: string
  readonly identity: Identity
  /** Redeem this enrollment code in the first handshake. */
  readonly enroll?: string | undefined
  readonly onStatus: (status: Status) => void
  /** Unsolicited frames (deliveries, whispers, unsubscribed, shutdown). */
  readonly onFrame: (frame: Frames.ServerFrame) => void
  /** Called once per established connection (after a reconnect too), before `onStatus("open")`. */
  readonly onEstablished: (path: SessionPath, admin: boolean, reconnect: boolean) => void
}

const BACKOFF_BASE_MS = 250
const BACKOFF_CAP_MS = 8_000

/** Refusals after which trying again cannot help. */
const fatal = (error: Frames.ProtocolError) =>
  error.kind === "unauthorized" || error.kind === "malformed_frame" || error.kind === "version_mismatch"

export class Wire {
  private ws: WebSocket | undefined
  private pending = new Map<string, { resolve: (r: Reply) => void; reject: (e: Error) => void; timer: number }>()
  private nextId = 0
  private attempt = 0
  private stopped = false
  private keepalive: number | undefined
  private retry: number | undefined
  private established = false
  private everEstablished = false
  private enroll: string | undefined

  constructor(private readonly options: WireOptions) {
    this.enroll = options.enroll
  }

  start(): void {
    this.stopped = false
    this.connect()
  }

  stop(): void {
    this.stopped = true
    window.clearTimeout(this.retry)
    window.clearInterval(this.keepalive)
    this.ws?.close(1000)
  }

  /** Send a request and wait for the reply carrying its id; an `error` reply rejects with `Refused`. */
  request(frame: Outgoing): Promise<Reply> {
    const ws = this.ws
    if (ws === undefined || ws.readyState !== WebSocket.OPEN || !this.established) {
      return Promise.reject(new Error("not connected"))
    }
    const id = `c${++this.nextId}`
    return new Promise<Reply>((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this.pending.delete(id)
        reject(new Error(`no reply to ${frame.type} within ${RESPONSE_TIMEOUT_MS / 1000} s`))
      }, RESPONSE_TIMEOUT_MS)
      this.pending.set(id, { resolve, reject, timer })
      ws.send(JSON.stringify({ ...frame, id }))
    })
  }

  private connect(): void {
    this.options.onStatus({ tag: "connecting", attempt: this.attempt })
    const ws = new WebSocket(this.options.url)
    this.ws = ws
    this.established = false
    let nonceSeen = false
    ws.onopen = () => {
      ws.send(JSON.stringify({
        type: "hello",
        protocol_version: PROTOCOL_VERSION,
        session: this.options.handle,
        host: this.options.host,
        client: "console"
      }))
    }
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return
      let json: unknown
      try {
        json = JSON.parse(event.data)
      } catch {
        return
      }
      const decoded = decode(json)
      if (Either.isLeft(decoded)) return
      const frame = decoded.right
      if (!this.established) {
        if (frame.type === "challenge" && !nonceSeen) {
          nonceSeen = true
          void this.answer(ws, frame.nonce)
        } else if (frame.type === "established") {
          this.established = true
          this.enroll = undefined
          this.awaitInfo = frame.path
        } else if (frame.type === "error") {
          this.refusedWith = frame.error
        }
        return
      }
      if (frame.type === "server_info" && this.awaitInfo !== undefined) {
        const path = this.awaitInfo
        this.awaitInfo = undefined
        const reconnect = this.everEstablished
        this.everEstablished = true
        this.attempt = 0
        window.clearInterval(this.keepalive)
        this.keepalive = window.setInterval(() => {
          this.request({ type: "ping" }).catch(() => undefined)
        }, KEEPALIVE_INTERVAL_MS)
        this.options.onEstablished(path, frame.admin, reconnect)
        this.options.onStatus({ tag: "open", path, admin: frame.admin })
        return
      }
      const id = "id" in frame ? frame.id : undefined
      if (id !== undefined) {
        const waiter = this.pending.get(id)
        if (waiter !== undefined) {
          this.pending.delete(id)
          window.clearTimeout(waiter.timer)
          if (frame.type === "error") waiter.reject(new Refused(frame.error))
          else waiter.resolve(frame as Reply)
        }
        return
      }
      this.options.onFrame(frame)
    }
    ws.onclose = () => {
      window.clearInterval(this.keepalive)
      for (const waiter of this.pending.values()) {
        window.clearTimeout(waiter.timer)
        waiter.reject(new Error("connection lost"))
      }
      this.pending.clear()
      const refused = this.refusedWith
      this.refusedWith = undefined
      if (this.stopped) return
      if (refused !== undefined && (fatal(refused) || !this.everEstablished && this.enroll !== undefined)) {
        this.stopped = true
        this.options.onStatus({ tag: "refused", error: refused })
        return
      }
      this.attempt++
      const cap = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** Math.min(this.attempt - 1, 10))
      const inMs = Math.round(cap / 2 + Math.random() * cap / 2)
      this.options.onStatus({ tag: "reconnecting", attempt: this.attempt, inMs })
      this.retry = window.setTimeout(() => this.connect(), inMs)
    }
  }

  private awaitInfo: SessionPath | undefined
  private refusedWith: Frames.ProtocolError | undefined

  private async answer(ws: WebSocket, nonce: string): Promise<void> {
    const { handle, host, identity } = this.options
    const signature = await sign(identity, authMessage(host, handle, nonce))
    if (ws.readyState !== WebSocket.OPEN) return
    if (this.enroll !== undefined) {
      ws.send(JSON.stringify({ type: "enroll", code: this.enroll, pubkey: identity.pubkey }))
    }
    ws.send(JSON.stringify({ type: "auth", pubkey: identity.pubkey, signature }))
  }
}
