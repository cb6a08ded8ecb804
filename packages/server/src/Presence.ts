/**
 * This node's presence: its established sessions by rendered path, their channel subscriptions and
 * the in-memory ban mirror, changed only in plain synchronous steps (SPEC §3.3–§3.10, DECISIONS D-7,
 * D-20). Every live-state change an admin op makes is a method here that the `Hub` calls for its own
 * requests and again when another node announces the same change; delivery is a synchronous loop
 * over the sessions' connections with the frame encoded once.
 *
 * @since 0.1.0
 */
import { Codec, Errors, type Frames, type Names } from "@conclave/protocol"
import type * as Broker from "./Broker.js"
import * as Wire from "./internal/wire.js"

/**
 * What the hub needs of a live connection. Both methods are synchronous and never throw.
 *
 * @since 0.1.0
 * @category models
 */
export interface Conn {
  /**
   * Hand an encoded frame to the transport as a text frame: its text, or a frame shared by every
   * recipient of a fan-out (built once). `false` when the outbox is full (the session is then dropped).
   */
  readonly send: (frame: string | Wire.Shared) => boolean
  /** Force-drop the connection with a reason (the first reason wins). */
  readonly kill: (reason: string) => void
}

/** One established session in presence. @since 0.1.0 @category models */
export interface SessionEntry {
  readonly path: Names.SessionPath
  /** The rendered path `user/machine/session`, the presence key. */
  readonly key: string
  readonly origin: Frames.Origin
  /** A web console session (`hello.client` `"console"`): it receives relayed permission requests. */
  readonly console: boolean
  readonly conn: Conn
  /** Epoch ms of the last inbound frame. */
  lastSeen: number
  /**
   * When it attached, as a logical clock over the deployment (never below any attach this node has
   * heard of): of two sessions on one path, the later attach wins on every node.
   */
  readonly attachedAt: number
  /** Channels this session is subscribed to. */
  readonly channels: Set<string>
}

const encodeNotice = (channel: string, reason: Frames.UnsubscribeReason, newName: string | null): string =>
  Codec.encodeFrame({ type: "unsubscribed", channel, reason, new_name: newName })

/**
 * The sessions this node holds. `onRemoved` is told of every session that leaves presence (the hub
 * announces it to the other nodes).
 *
 * @since 0.1.0
 * @category models
 */
export class LocalPresence {
  readonly sessions = new Map<string, SessionEntry>()
  readonly subscribers = new Map<string, Map<string, SessionEntry>>()
  readonly bans = new Map<string, Set<string>>()

  constructor(private readonly onRemoved: (entry: SessionEntry) => void) {}

  unsubscribeEntry(entry: SessionEntry, channel: string): boolean {
    if (!entry.channels.delete(channel)) return false
    const subs = this.subscribers.get(channel)
    if (subs !== undefined && subs.get(entry.key) === entry) {
      subs.delete(entry.key)
      if (subs.size === 0) this.subscribers.delete(channel)
    }
    return true
  }

  /** Remove the session, only if presence still holds this very entry (identity-guarded; idempotent). */
  removeEntry(entry: SessionEntry): boolean {
    if (this.sessions.get(entry.key) !== entry) return false
    this.sessions.delete(entry.key)
    for (const channel of [...entry.channels]) this.unsubscribeEntry(entry, channel)
    this.onRemoved(entry)
    return true
  }

  killEntry(entry: SessionEntry, reason: string): void {
    this.removeEntry(entry)
    entry.conn.kill(reason)
  }

  /**
   * The hot path: a plain synchronous loop, no Effect per delivery (STACK.md "Fan-out speed"); the
   * frame is encoded to UTF-8 and framed once, not once per recipient.
   */
  deliver(envelope: Exclude<Broker.Envelope, { readonly _tag: "Control" }>): void {
    let overflow: Array<SessionEntry> | undefined
    if (envelope._tag === "Channel") {
      const subs = this.subscribers.get(envelope.channel)
      if (subs === undefined) return
      const shared = new Wire.Shared(envelope.frame)
      for (const entry of subs.values()) {
        if (entry.key !== envelope.exclude && !entry.conn.send(shared)) (overflow ??= []).push(entry)
      }
    } else {
      const entry = this.sessions.get(envelope.path)
      if (entry !== undefined && !entry.conn.send(envelope.frame)) overflow = [entry]
    }
    if (overflow !== undefined) { for (const entry of overflow) this.killEntry(entry, Errors.KillReasons.slowConsumer) }
  }

  sessionsOfUser(user: string, machine?: string): Array<SessionEntry> {
    return [...this.sessions.values()].filter((e) =>
      e.path.user === user && (machine === undefined || e.path.machine === machine)
    )
  }

  /** Send a notice to each of `targets`; one whose outbox is full is dropped as a slow consumer. */
  tell(targets: ReadonlyArray<SessionEntry>, frame: string): void {
    for (const entry of targets) {
      if (!entry.conn.send(frame)) this.killEntry(entry, Errors.KillReasons.slowConsumer)
    }
  }

  /** Unsubscribe one session from a channel and tell it why (D-7); how many (0 or 1). */
  unsubscribePath(channel: string, key: string, reason: Frames.UnsubscribeReason): number {
    const entry = this.sessions.get(key)
    const hit = entry !== undefined && this.unsubscribeEntry(entry, channel) ? [entry] : []
    this.tell(hit, encodeNotice(channel, reason, null))
    return hit.length
  }

  /** Unsubscribe every session of `user` from a channel and tell each (D-7); how many. */
  unsubscribeUser(channel: string, user: string, reason: Frames.UnsubscribeReason): number {
    const hit = this.sessionsOfUser(user).filter((e) => this.unsubscribeEntry(e, channel))
    this.tell(hit, encodeNotice(channel, reason, null))
    return hit.length
  }

  /** The channel is gone: drop every subscription (notice `deleted`) and its ban mirror. */
  dropChannel(channel: string): void {
    this.bans.delete(channel)
    const hit = [...(this.subscribers.get(channel)?.values() ?? [])]
    for (const entry of hit) this.unsubscribeEntry(entry, channel)
    this.tell(hit, encodeNotice(channel, "deleted", null))
  }

  /** Move subscriptions and bans to the new name and tell subscribers (notice `renamed`, D-7). */
  renameChannel(from: string, to: string): void {
    const banned = this.bans.get(from)
    this.bans.delete(from)
    if (banned !== undefined) this.bans.set(to, banned)
    const hit = [...(this.subscribers.get(from)?.values() ?? [])]
    this.subscribers.delete(from)
    if (hit.length > 0) {
      const moved = this.subscribers.get(to) ?? new Map<string, SessionEntry>()
      for (const entry of hit) {
        entry.channels.delete(from)
        entry.channels.add(to)
        moved.set(entry.key, entry)
      }
      this.subscribers.set(to, moved)
    }
    this.tell(hit, encodeNotice(from, "renamed", to))
  }

  addBan(channel: string, user: string): void {
    const set = this.bans.get(channel) ?? new Set<string>()
    set.add(user)
    this.bans.set(channel, set)
  }

  removeBan(channel: string, user: string): void {
    const set = this.bans.get(channel)
    set?.delete(user)
    if (set?.size === 0) this.bans.delete(channel)
  }

  /** Force-drop every session of a user (or of one of its machines); how many. */
  killUser(user: string, reason: string, machine?: string): number {
    const hit = this.sessionsOfUser(user, machine)
    for (const entry of hit) this.killEntry(entry, reason)
    return hit.length
  }
}
