/**
 * The console's state: channels with their messages (bounded), unread counts and presence; whisper
 * threads; the connection's status. Fed by the `Wire`; views subscribe and re-render at most once
 * per animation frame.
 */
import type * as Frames from "@conclave/protocol/Frames"
import { ChannelHistory } from "./history.js"
import { type Identity } from "./keys.js"
import {
  type ChannelState,
  emptyChannel,
  fromDelivery,
  MAX_MESSAGES,
  type Message,
  pathKey,
  textOf
} from "./messages.js"
import { Refused, type Reply, type SessionPath, type Status, Wire } from "./wire.js"

export {
  agentStreak,
  type ChannelState,
  DEFAULT_LOOP_LIMIT,
  findMessage,
  MAX_MESSAGES,
  type Message,
  pathKey
} from "./messages.js"

/** How often the open channel's presence is asked for. */
const PRESENCE_POLL_MS = 2000

export interface WhisperMessage {
  readonly key: number
  readonly from: SessionPath
  readonly mine: boolean
  readonly ts: number
  readonly text: string
  readonly origin: Frames.Origin
}

export interface ThreadState {
  readonly peer: SessionPath
  readonly key: string
  messages: Array<WhisperMessage>
  unread: number
}

/** A permission request relayed by one of this user's bridge sessions (SPEC §4.5.3). */
export interface PermissionRequest {
  /** `from` path + request id: unique among the pending ones. */
  readonly key: string
  readonly from: SessionPath
  readonly requestId: string
  readonly toolName: string
  readonly description: string
}

/** Pending permission requests kept (the oldest leave first). */
export const MAX_PERMISSION_REQUESTS = 100

export type View =
  | { readonly kind: "channel"; readonly name: string }
  | { readonly kind: "whisper"; readonly key: string }
  | { readonly kind: "none" }

export const parsePath = (text: string): SessionPath | undefined => {
  const parts = text.trim().split("/")
  if (parts.length !== 3 || parts.some((p) => p.length === 0)) return undefined
  return { user: parts[0]!, machine: parts[1]!, session: parts[2]! }
}

export class ConsoleState {
  status: Status = { tag: "connecting", attempt: 0 }
  me: SessionPath | undefined
  admin = false
  channels = new Map<string, ChannelState>()
  threads = new Map<string, ThreadState>()
  view: View = { kind: "none" }
  notice: string | undefined
  permissions: Array<PermissionRequest> = []
  private listeners = new Set<() => void>()
  private scheduled = false
  private wire: Wire
  private presenceTimer: number | undefined
  private whisperKeys = 0
  private history: ChannelHistory

  constructor(identity: Identity, handle: string, enroll: string | undefined) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:"
    this.wire = new Wire({
      url: `${scheme}//${location.host}/`,
      host: location.host.toLowerCase(),
      handle,
      identity,
      enroll,
      onStatus: (status) => {
        this.status = status
        this.changed()
      },
      onFrame: (frame) => this.onFrame(frame),
      onEstablished: (path, admin) => {
        this.me = path
        this.admin = admin
        void this.sync()
      }
    })
    this.history = new ChannelHistory({
      request: (frame) => this.wire.request(frame),
      isViewing: (channel) => this.isViewing(channel),
      isMine: (message) => this.isMine(message),
      lastRead: (channel) => this.lastRead(channel),
      markRead: (channel) => this.markRead(channel),
      fail: (what, error) => this.fail(what, error),
      changed: () => this.changed()
    })
  }

  start(): void {
    this.wire.start()
    this.presenceTimer = window.setInterval(() => void this.refreshPresence(), PRESENCE_POLL_MS)
  }

  stop(): void {
    window.clearInterval(this.presenceTimer)
    this.wire.stop()
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Views re-render once per animation frame, however many frames arrived. */
  changed(): void {
    if (this.scheduled) return
    this.scheduled = true
    requestAnimationFrame(() => {
      this.scheduled = false
      const start = performance.now()
      for (const listener of this.listeners) listener()
      // Preact renders in a microtask queued by the listeners: this one runs after it (User Timing,
      // read by the browser tests).
      queueMicrotask(() => performance.measure("conclave:render", { start }))
    })
  }

  private fail(what: string, error: unknown): void {
    this.notice = `${what}: ${error instanceof Error ? error.message : String(error)}`
    this.changed()
  }

  private readKey(channel: string): string {
    return `conclave.read.${this.me === undefined ? "" : this.me.user}.${channel}`
  }

  private lastRead(channel: string): number {
    const raw = localStorage.getItem(this.readKey(channel))
    const n = raw === null ? 0 : Number(raw)
    return Number.isSafeInteger(n) ? n : 0
  }

  private markRead(channel: ChannelState): void {
    channel.unread = 0
    localStorage.setItem(this.readKey(channel.name), String(channel.lastSeq))
  }

  /** After every (re)connection: the channels, joined, and each filled from its last seq. */
  private async sync(): Promise<void> {
    try {
      const reply = await this.wire.request({ type: "list_channels" })
      if (reply.type !== "channel_list") return
      for (const info of reply.channels) {
        const existing = this.channels.get(info.name)
        if (existing === undefined) {
          this.channels.set(info.name, emptyChannel(info.name, info.visibility))
        } else {
          existing.visibility = info.visibility
          existing.joined = false
        }
      }
      if (this.view.kind === "none" && reply.channels.length > 0) {
        this.view = { kind: "channel", name: reply.channels[0]!.name }
      }
      this.changed()
      await Promise.all([...this.channels.values()].map((channel) => this.joinAndFill(channel)))
      await this.refreshPresence()
    } catch (error) {
      this.fail("could not load channels", error)
    }
  }

  private isMine(message: Message): boolean {
    return this.me !== undefined && message.fromKey === pathKey(this.me)
  }

  /** Scroll-back: the page before the first message held of channel `name`. */
  loadOlder(name: string): Promise<void> {
    const channel = this.channels.get(name)
    return channel === undefined ? Promise.resolve() : this.history.loadOlder(channel)
  }

  /** Back to the live end of channel `name` after scrolling back past the bound. */
  loadNewest(name: string): Promise<void> {
    const channel = this.channels.get(name)
    return channel === undefined ? Promise.resolve() : this.history.loadNewest(channel)
  }

  private async joinAndFill(channel: ChannelState): Promise<void> {
    try {
      await this.wire.request({ type: "join", channel: channel.name, token: null })
      channel.joined = true
      channel.problem = undefined
      await this.history.fill(channel)
    } catch (error) {
      channel.problem = error instanceof Error ? error.message : String(error)
    }
    this.changed()
  }

  private isViewing(channel: string): boolean {
    return this.view.kind === "channel" && this.view.name === channel && document.visibilityState === "visible"
  }

  private onFrame(frame: Frames.ServerFrame): void {
    switch (frame.type) {
      case "channel_msg": {
        const channel = this.channels.get(frame.channel)
        if (channel === undefined) return
        this.history.append(channel, fromDelivery(frame, Date.now()))
        if (this.isViewing(channel.name)) this.markRead(channel)
        break
      }
      case "whisper": {
        const mine = this.me !== undefined && pathKey(frame.from) === pathKey(this.me)
        const thread = this.thread(mine ? frame.target : frame.from)
        thread.messages.push({
          key: ++this.whisperKeys,
          from: frame.from,
          mine,
          ts: Date.now(),
          text: textOf(frame.payload),
          origin: frame.origin
        })
        if (thread.messages.length > MAX_MESSAGES) thread.messages.splice(0, thread.messages.length - MAX_MESSAGES)
        if (!(this.view.kind === "whisper" && this.view.key === thread.key)) thread.unread++
        break
      }
      case "permission_request": {
        const key = `${pathKey(frame.from)}#${frame.request_id}`
        if (this.permissions.some((p) => p.key === key)) return
        this.permissions.push({
          key,
          from: frame.from,
          requestId: frame.request_id,
          toolName: frame.tool_name,
          description: frame.description
        })
        if (this.permissions.length > MAX_PERMISSION_REQUESTS) this.permissions.shift()
        break
      }
      case "unsubscribed": {
        const channel = this.channels.get(frame.channel)
        if (channel !== undefined) {
          channel.joined = false
          channel.problem = frame.reason === "renamed" && frame.new_name !== null
            ? `renamed to #${frame.new_name}`
            : `you were ${frame.reason === "deleted" ? "removed: the channel was deleted" : frame.reason}`
        }
        if (frame.reason === "renamed") void this.sync()
        break
      }
      default:
        return
    }
    this.changed()
  }

  thread(peer: SessionPath): ThreadState {
    const key = pathKey(peer)
    let thread = this.threads.get(key)
    if (thread === undefined) {
      thread = { peer, key, messages: [], unread: 0 }
      this.threads.set(key, thread)
    }
    return thread
  }

  select(view: View): void {
    const left = this.view
    this.view = view
    // a channel left while scrolled back past the bound is back at its live end when next opened
    if (left.kind === "channel" && (view.kind !== "channel" || view.name !== left.name)) {
      const channel = this.channels.get(left.name)
      if (channel?.newer === true) void this.history.loadNewest(channel)
    }
    if (view.kind === "channel") {
      const channel = this.channels.get(view.name)
      if (channel !== undefined) this.markRead(channel)
      void this.refreshPresence()
    } else if (view.kind === "whisper") {
      const thread = this.threads.get(view.key)
      if (thread !== undefined) thread.unread = 0
    }
    this.changed()
  }

  private async refreshPresence(): Promise<void> {
    if (this.view.kind !== "channel" || this.status.tag !== "open") return
    const channel = this.channels.get(this.view.name)
    if (channel === undefined || !channel.joined) return
    try {
      const reply = await this.wire.request({ type: "who", channel: channel.name })
      if (reply.type === "presence") {
        channel.presence = reply.sessions
        this.changed()
      }
    } catch {
      // the next poll tries again
    }
  }

  /** Answer a relayed permission request; it leaves the list once answered (or when its session is gone). */
  async answerPermission(request: PermissionRequest, behavior: Frames.PermissionBehavior): Promise<void> {
    try {
      await this.wire.request({
        type: "permission_verdict",
        target: request.from,
        request_id: request.requestId,
        behavior
      })
      this.permissions = this.permissions.filter((p) => p.key !== request.key)
      this.changed()
    } catch (error) {
      if (error instanceof Refused && error.error.kind === "not_found") {
        this.permissions = this.permissions.filter((p) => p.key !== request.key)
      }
      this.fail(`could not answer ${request.toolName}`, error)
    }
  }

  /** Post; the server does not echo a post to its sender, so the acked message is shown from here. */
  async post(channel: string, text: string, replyTo: number | null): Promise<void> {
    const ack = await this.wire.request({
      type: "channel_msg",
      channel,
      payload: { kind: "plain", text },
      reply_to: replyTo
    })
    const state = this.channels.get(channel)
    if (ack.type !== "ack" || ack.seq === null || state === undefined || this.me === undefined) return
    this.history.append(state, {
      seq: ack.seq,
      from: this.me,
      fromKey: pathKey(this.me),
      ts: Date.now(),
      text,
      encrypted: false,
      origin: "human",
      replyTo
    })
    if (this.isViewing(channel)) this.markRead(state)
    // posted while scrolled back past the bound: show it where it is, at the live end
    if (state.newer) void this.history.loadNewest(state)
    this.changed()
  }

  async whisper(peer: SessionPath, text: string): Promise<void> {
    await this.wire.request({ type: "whisper", target: peer, payload: { kind: "plain", text } })
    const thread = this.thread(peer)
    if (this.me !== undefined) {
      thread.messages.push({
        key: ++this.whisperKeys,
        from: this.me,
        mine: true,
        ts: Date.now(),
        text,
        origin: "human"
      })
    }
    this.changed()
  }

  /** An admin operation; its reply (ack, invite token, lists). */
  admin_(op: Frames.AdminOp): Promise<Reply> {
    return this.wire.request({ type: "admin", op })
  }

  async createChannel(name: string, visibility: Frames.Visibility): Promise<void> {
    await this.admin_({ kind: "create_channel", name, visibility })
    await this.sync()
    this.select({ kind: "channel", name })
  }

  /** Sign-out (D-51): remove this browser's machine from the server, then forget the key. */
  async signOut(forget: () => Promise<unknown>): Promise<void> {
    if (this.me !== undefined) {
      try {
        await this.admin_({ kind: "machine_remove", name: this.me.machine })
      } catch (error) {
        if (!(error instanceof Refused)) throw error
      }
    }
    this.stop()
    await forget()
  }
}
