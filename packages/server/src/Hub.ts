/**
 * The hub: presence keyed by full session path, channel subscriptions, the in-memory ban mirror and
 * fan-out through the `Broker` (SPEC §3.3–§3.10, §3.14, §3.16, DECISIONS D-7, D-20).
 *
 * All state lives in plain maps mutated inside single synchronous steps, so "check the ban mirror
 * and subscribe" and "supersede and attach" are atomic without locks. Delivery is a synchronous loop
 * over the sessions' connections with the frame encoded once.
 *
 * @since 0.1.0
 */
import { Codec, Errors, type Frames, Names } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Broker from "./Broker.js"
import { Corking } from "./internal/corking.js"
import * as Wire from "./internal/wire.js"
import { Store } from "./Store.js"

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
  readonly conn: Conn
  /** Epoch ms of the last inbound frame. */
  lastSeen: number
  /** Channels this session is subscribed to. */
  readonly channels: Set<string>
}

/** Why a subscription could not be made. @since 0.1.0 @category models */
export type SubscribeResult = "subscribed" | "banned" | "absent"

const encodeNotice = (channel: string, reason: Frames.UnsubscribeReason, newName: string | null): string =>
  Codec.encodeFrame({ type: "unsubscribed", channel, reason, new_name: newName })

/** A session to register in presence. @since 0.1.0 @category models */
export interface AttachInput {
  readonly path: Names.SessionPath
  readonly origin: Frames.Origin
  readonly conn: Conn
  readonly now: number
}

/** The registered entry, and whether it superseded a live session on the same path. @since 0.1.0 @category models */
export interface Attached {
  readonly entry: SessionEntry
  readonly superseded: boolean
}

/** @since 0.1.0 @category services */
export class Hub extends Effect.Service<Hub>()("@conclave/server/Hub", {
  scoped: Effect.gen(function*() {
    const store = yield* Store
    const broker = yield* Broker.Broker

    const sessions = new Map<string, SessionEntry>()
    const subscribers = new Map<string, Map<string, SessionEntry>>()
    const bans = new Map<string, Set<string>>()
    const corking = new Corking()

    // A store that cannot load the bans stops startup with its typed StoreError (not a defect).
    for (const { channel, user } of yield* store.allBans) {
      const set = bans.get(channel) ?? new Set<string>()
      set.add(user)
      bans.set(channel, set)
    }

    const unsubscribeEntry = (entry: SessionEntry, channel: string): boolean => {
      if (!entry.channels.delete(channel)) return false
      const subs = subscribers.get(channel)
      if (subs !== undefined && subs.get(entry.key) === entry) {
        subs.delete(entry.key)
        if (subs.size === 0) subscribers.delete(channel)
      }
      return true
    }

    const removeEntry = (entry: SessionEntry): boolean => {
      if (sessions.get(entry.key) !== entry) return false
      sessions.delete(entry.key)
      for (const channel of [...entry.channels]) unsubscribeEntry(entry, channel)
      return true
    }

    const killEntry = (entry: SessionEntry, reason: string): void => {
      removeEntry(entry)
      entry.conn.kill(reason)
    }

    // The hot path: a plain synchronous loop, no Effect per delivery (STACK.md "Fan-out speed"); the
    // frame is encoded to UTF-8 and framed once, not once per recipient.
    const deliver: Broker.Deliver = (envelope) => {
      let overflow: Array<SessionEntry> | undefined
      if (envelope._tag === "Channel") {
        const subs = subscribers.get(envelope.channel)
        if (subs === undefined) return
        const shared = new Wire.Shared(envelope.frame)
        for (const entry of subs.values()) {
          if (entry.key !== envelope.exclude && !entry.conn.send(shared)) (overflow ??= []).push(entry)
        }
      } else {
        const entry = sessions.get(envelope.path)
        if (entry !== undefined && !entry.conn.send(envelope.frame)) overflow = [entry]
      }
      if (overflow !== undefined) { for (const entry of overflow) killEntry(entry, Errors.KillReasons.slowConsumer) }
    }
    yield* broker.subscribe(deliver)

    const notify = (targets: ReadonlyArray<SessionEntry>, frame: string) =>
      Effect.sync(() => {
        for (const entry of targets) broker.publish({ _tag: "Session", path: entry.key, frame })
      })

    const sessionsOfUser = (user: string, machine?: string): Array<SessionEntry> =>
      [...sessions.values()].filter((e) =>
        e.path.user === user && (machine === undefined || e.path.machine === machine)
      )

    /**
     * Register an authenticated session, superseding (force-dropping) any live session on the same
     * path. The new session starts with no subscriptions. Returns the entry and whether it superseded.
     */
    const attachEntry = (input: AttachInput): Attached => {
      const key = Names.renderPath(input.path)
      const previous = sessions.get(key)
      if (previous !== undefined) killEntry(previous, Errors.KillReasons.superseded)
      const entry: SessionEntry = {
        path: input.path,
        key,
        origin: input.origin,
        conn: input.conn,
        lastSeen: input.now,
        channels: new Set()
      }
      sessions.set(key, entry)
      return { entry, superseded: previous !== undefined }
    }
    const attach = (input: AttachInput) => Effect.sync(() => attachEntry(input))

    /** Remove the session, only if presence still holds this very entry (identity-guarded; idempotent). */
    const detach = (entry: SessionEntry) => Effect.sync(() => removeEntry(entry))

    const touch = (entry: SessionEntry, now: number) =>
      Effect.sync(() => {
        entry.lastSeen = now
      })

    const isPresent = (entry: SessionEntry) => Effect.sync(() => sessions.get(entry.key) === entry)

    /** Check the ban mirror and subscribe, in one step; nothing changes unless `subscribed`. */
    const subscribeEntry = (entry: SessionEntry, channel: string): SubscribeResult => {
      if (sessions.get(entry.key) !== entry) return "absent"
      if (bans.get(channel)?.has(entry.path.user) === true) return "banned"
      entry.channels.add(channel)
      const subs = subscribers.get(channel) ?? new Map<string, SessionEntry>()
      subs.set(entry.key, entry)
      subscribers.set(channel, subs)
      return "subscribed"
    }
    const subscribe = (entry: SessionEntry, channel: string) => Effect.sync(() => subscribeEntry(entry, channel))

    const unsubscribe = (entry: SessionEntry, channel: string) => Effect.sync(() => unsubscribeEntry(entry, channel))

    // The queries below read the hub's in-memory state: plain calls, so a request that needs nothing
    // else (a whisper, `who` of the server) is answered without an effect step (Requests.Outcome).

    /** Whether this very session is subscribed to `channel`. */
    const isSubscribed = (entry: SessionEntry, channel: string): boolean =>
      sessions.get(entry.key) === entry && entry.channels.has(channel)

    const subscribersOf = (channel: string): ReadonlyArray<Names.SessionPath> =>
      [...(subscribers.get(channel)?.values() ?? [])].map((e) => e.path)

    const presence = (): ReadonlyArray<Names.SessionPath> => [...sessions.values()].map((e) => e.path)

    /** Whether a session is online at `path` (rendered). */
    const online = (key: string): boolean => sessions.has(key)

    /** Unsubscribe one session (by rendered path) from a channel and tell it why (D-7). */
    const unsubscribePath = (channel: string, key: string, reason: Frames.UnsubscribeReason) =>
      Effect.suspend(() => {
        const entry = sessions.get(key)
        const hit = entry !== undefined && unsubscribeEntry(entry, channel) ? [entry] : []
        return notify(hit, encodeNotice(channel, reason, null)).pipe(Effect.as(hit.length))
      })

    /** Unsubscribe every live session of `user` from a channel and tell each (D-7). */
    const unsubscribeUser = (channel: string, user: string, reason: Frames.UnsubscribeReason) =>
      Effect.suspend(() => {
        const hit = sessionsOfUser(user).filter((e) => unsubscribeEntry(e, channel))
        return notify(hit, encodeNotice(channel, reason, null)).pipe(Effect.as(hit.length))
      })

    /** The channel is gone: drop every subscription (notice `deleted`) and its ban mirror. */
    const dropChannel = (channel: string) =>
      Effect.suspend(() => {
        bans.delete(channel)
        const hit = [...(subscribers.get(channel)?.values() ?? [])]
        for (const entry of hit) unsubscribeEntry(entry, channel)
        return notify(hit, encodeNotice(channel, "deleted", null))
      })

    /** Move subscriptions and bans to the new name and tell subscribers (notice `renamed`, D-7). */
    const renameChannel = (from: string, to: string) =>
      Effect.suspend(() => {
        const banned = bans.get(from)
        bans.delete(from)
        if (banned !== undefined) bans.set(to, banned)
        const hit = [...(subscribers.get(from)?.values() ?? [])]
        subscribers.delete(from)
        if (hit.length > 0) {
          const moved = subscribers.get(to) ?? new Map<string, SessionEntry>()
          for (const entry of hit) {
            entry.channels.delete(from)
            entry.channels.add(to)
            moved.set(entry.key, entry)
          }
          subscribers.set(to, moved)
        }
        return notify(hit, encodeNotice(from, "renamed", to))
      })

    const isBanned = (channel: string, user: string) => Effect.sync(() => bans.get(channel)?.has(user) === true)
    const addBan = (channel: string, user: string) =>
      Effect.sync(() => {
        const set = bans.get(channel) ?? new Set<string>()
        set.add(user)
        bans.set(channel, set)
      })
    const removeBan = (channel: string, user: string) =>
      Effect.sync(() => {
        const set = bans.get(channel)
        set?.delete(user)
        if (set?.size === 0) bans.delete(channel)
      })

    /** Force-drop every live session of a user (or of one of its machines). Returns how many. */
    const killUser = (user: string, reason: string, machine?: string) =>
      Effect.sync(() => {
        const hit = sessionsOfUser(user, machine)
        for (const entry of hit) killEntry(entry, reason)
        return hit.length
      })

    const kill = (entry: SessionEntry, reason: string) => Effect.sync(() => killEntry(entry, reason))

    /** Kill every session whose last inbound frame is at or before `cutoffMs`. Returns how many. */
    const reapIdle = (cutoffMs: number) =>
      Effect.sync(() => {
        const idle = [...sessions.values()].filter((e) => e.lastSeen <= cutoffMs)
        for (const entry of idle) killEntry(entry, Errors.KillReasons.idle)
        return idle.length
      })

    /** Fan an encoded frame out to a channel's subscribers except `exclude` (a rendered path). */
    const publish = (channel: string, frame: string, exclude: string | null): void =>
      broker.publish({ _tag: "Channel", channel, frame, exclude })

    /** Deliver an encoded frame to one session by rendered path. */
    const sendTo = (key: string, frame: string): void => broker.publish({ _tag: "Session", path: key, frame })

    /**
     * Flush the sockets written to by the code now running once it is done, not at the turn's end:
     * for a fan-out made when the store's writer resolved an append (see `Corking`).
     */
    const flushSoon = (): void => corking.flushSoon()

    return {
      attach,
      detach,
      touch,
      isPresent,
      subscribe,
      unsubscribe,
      isSubscribed,
      subscribersOf,
      presence,
      online,
      unsubscribePath,
      unsubscribeUser,
      dropChannel,
      renameChannel,
      isBanned,
      addBan,
      removeBan,
      killUser,
      kill,
      reapIdle,
      publish,
      sendTo,
      flushSoon,
      corking,
      size: Effect.sync(() => sessions.size)
    } as const
  })
}) {}
