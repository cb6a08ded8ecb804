/**
 * The hub: presence keyed by full session path, channel subscriptions, the in-memory ban mirror and
 * fan-out through the `Broker` (SPEC §3.3–§3.10, §3.14, §3.16, DECISIONS D-7, D-20, D-42).
 *
 * This node's sessions, subscriptions and ban mirror are a `LocalPresence` (`Presence.ts`): plain
 * maps mutated inside single synchronous steps, so "check the ban mirror and subscribe" and
 * "supersede and attach" are atomic without locks. Delivery is a synchronous loop over the
 * sessions' connections with the frame encoded once.
 *
 * One deployment, many nodes (D-42): the hub tells the other nodes through the broker what changes
 * in its presence (attach, detach, join, leave, and every heartbeat interval a lease listing all its
 * sessions) and replays there each live-state change an admin op makes here (kick, ban, rename,
 * delete, user and machine removal, `Cluster`). What the other nodes hold is kept in a `Roster`, so
 * `who`, the whisper target check and supersede cover every node. A lone node runs the same code:
 * its broker has no other node, so its roster stays empty.
 *
 * @since 0.1.0
 */
import { Auth, Errors, type Frames, Names } from "@conclave/protocol"
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Runtime from "effect/Runtime"
import * as Schedule from "effect/Schedule"
import * as Broker from "./Broker.js"
import * as Cluster from "./Cluster.js"
import { Corking } from "./internal/corking.js"
import { Roster } from "./internal/roster.js"
import { type Conn, LocalPresence, type SessionEntry } from "./Presence.js"
import { ServerConfig } from "./ServerConfig.js"
import { Store } from "./Store.js"

export type {
  /** @since 0.1.0 */
  Conn,
  /** @since 0.1.0 */
  SessionEntry
}

/** Why a subscription could not be made. @since 0.1.0 @category models */
export type SubscribeResult = "subscribed" | "banned" | "absent"

/** A session to register in presence. @since 0.1.0 @category models */
export interface AttachInput {
  readonly path: Names.SessionPath
  readonly origin: Frames.Origin
  /** `hello.client` was `"console"`. */
  readonly console?: boolean
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
    const config = yield* ServerConfig
    const clock = yield* Effect.clock
    const runtime = yield* Effect.runtime<never>()
    const runSync = Runtime.runSyncExit(runtime)
    /** This hub's id in control messages (its node name may be shared by mistake; this never is). */
    const instance = Auth.randomToken()
    const heartbeatMs = Math.max(1, Duration.toMillis(config.heartbeatInterval))
    const roster = new Roster(Math.ceil(heartbeatMs * Cluster.LEASE_INTERVALS))
    /** The highest attach time seen here, local or remote (`SessionEntry.attachedAt`). */
    let latestAttach = 0

    /**
     * Tell the other nodes (synchronous: both brokers' publish only queue). A live-state change is
     * made on this node's view of the others' sessions too, as each of them makes it on its own.
     */
    const announce = (body: Cluster.Op): void => {
      if (!Cluster.isPresence(body)) roster.apply(instance, config.nodeId, body, clock.unsafeCurrentTimeMillis())
      try {
        broker.publish({ _tag: "Control", instance, node: config.nodeId, body })
      } catch (defect) {
        runSync(Effect.logWarning("a control message could not be published", Cause.die(defect)))
      }
    }

    const local = new LocalPresence((entry) => announce({ op: "detach", path: entry.key }))
    const { bans, sessions, subscribers } = local
    const corking = new Corking()

    // A store that cannot load the bans stops startup with its typed StoreError (not a defect).
    for (const { channel, user } of yield* store.allBans) local.addBan(channel, user)

    const deliver: Broker.Deliver = (envelope) => {
      if (envelope._tag !== "Control") local.deliver(envelope)
      else if (envelope.instance !== instance) fromPeer(envelope)
    }

    /** Apply another node's control message: its presence to the roster, its admin ops to local state. */
    const fromPeer = ({ body, instance: from, node }: Cluster.Control): void => {
      const now = clock.unsafeCurrentTimeMillis()
      roster.apply(from, node, body, now)
      switch (body.op) {
        case "attach": {
          latestAttach = Math.max(latestAttach, body.at)
          const held = sessions.get(body.path)
          if (
            held !== undefined && (body.at > held.attachedAt || (body.at === held.attachedAt && from > instance))
          ) {
            local.killEntry(held, Errors.KillReasons.superseded)
          }
          return
        }
        case "unsubscribe_path":
          local.unsubscribePath(body.channel, body.path, body.reason)
          return
        case "unsubscribe_user":
          local.unsubscribeUser(body.channel, body.user, body.reason)
          return
        case "drop_channel":
          local.dropChannel(body.channel)
          return
        case "rename_channel":
          local.renameChannel(body.from, body.to)
          return
        case "add_ban":
          local.addBan(body.channel, body.user)
          return
        case "remove_ban":
          local.removeBan(body.channel, body.user)
          return
        case "kill_user":
          local.killUser(body.user, body.reason, body.machine ?? undefined)
          return
        default:
          return
      }
    }
    /**
     * Register an authenticated session, superseding (force-dropping) any live session on the same
     * path. The new session starts with no subscriptions. Returns the entry and whether it superseded.
     */
    const attachEntry = (input: AttachInput): Attached => {
      const key = Names.renderPath(input.path)
      const previous = sessions.get(key)
      if (previous !== undefined) local.killEntry(previous, Errors.KillReasons.superseded)
      const elsewhere = previous === undefined && roster.has(key, input.now)
      latestAttach = Math.max(input.now, latestAttach + 1)
      const entry: SessionEntry = {
        path: input.path,
        key,
        origin: input.origin,
        console: input.console === true,
        conn: input.conn,
        lastSeen: input.now,
        attachedAt: latestAttach,
        channels: new Set()
      }
      sessions.set(key, entry)
      // the node holding the path, if another, drops its session when this arrives
      announce(
        entry.console
          ? { op: "attach", path: key, at: entry.attachedAt, console: true }
          : { op: "attach", path: key, at: entry.attachedAt }
      )
      return { entry, superseded: previous !== undefined || elsewhere }
    }
    const attach = (input: AttachInput) => Effect.sync(() => attachEntry(input))

    /** Remove the session, only if presence still holds this very entry (identity-guarded; idempotent). */
    const detach = (entry: SessionEntry) => Effect.sync(() => local.removeEntry(entry))

    const touch = (entry: SessionEntry, now: number) =>
      Effect.sync(() => {
        entry.lastSeen = now
      })

    const isPresent = (entry: SessionEntry) => Effect.sync(() => sessions.get(entry.key) === entry)

    /** Check the ban mirror and subscribe, in one step; nothing changes unless `subscribed`. */
    const subscribeEntry = (entry: SessionEntry, channel: string): SubscribeResult => {
      if (sessions.get(entry.key) !== entry) return "absent"
      if (bans.get(channel)?.has(entry.path.user) === true) return "banned"
      if (!entry.channels.has(channel)) {
        entry.channels.add(channel)
        const subs = subscribers.get(channel) ?? new Map<string, SessionEntry>()
        subs.set(entry.key, entry)
        subscribers.set(channel, subs)
        announce({ op: "join", path: entry.key, channel })
      }
      return "subscribed"
    }
    const subscribe = (entry: SessionEntry, channel: string) => Effect.sync(() => subscribeEntry(entry, channel))

    const unsubscribe = (entry: SessionEntry, channel: string) =>
      Effect.sync(() => {
        const left = local.unsubscribeEntry(entry, channel)
        if (left) announce({ op: "leave", path: entry.key, channel })
        return left
      })

    // The queries below read the hub's in-memory state: plain calls, so a request that needs nothing
    // else (a whisper, `who` of the server) is answered without an effect step (Requests.Outcome).

    /** Whether this very session is subscribed to `channel`. */
    const isSubscribed = (entry: SessionEntry, channel: string): boolean =>
      sessions.get(entry.key) === entry && entry.channels.has(channel)

    /** The sessions of this node and the others, each path once (this node's first). */
    const everywhere = (
      local: Iterable<SessionEntry>,
      remote: (now: number) => Iterable<{
        readonly path: Names.SessionPath
        readonly key: string
      }>
    ): ReadonlyArray<Names.SessionPath> => {
      const seen = new Set<string>()
      const paths: Array<Names.SessionPath> = []
      for (const entry of local) {
        seen.add(entry.key)
        paths.push(entry.path)
      }
      for (const session of remote(clock.unsafeCurrentTimeMillis())) {
        if (seen.has(session.key)) continue
        seen.add(session.key)
        paths.push(session.path)
      }
      return paths
    }

    /** The channel's subscribers on every node. */
    const subscribersOf = (channel: string): ReadonlyArray<Names.SessionPath> =>
      everywhere(subscribers.get(channel)?.values() ?? [], function*(now) {
        for (const session of roster.sessions(now)) if (session.channels.has(channel)) yield session
      })

    /** Every session on every node (server-wide `who`). */
    const presence = (): ReadonlyArray<Names.SessionPath> =>
      everywhere(sessions.values(), (now) => roster.sessions(now))

    /** The rendered paths of `user`'s console sessions on every node (permission relay, SPEC §4.5.3). */
    const consolesOf = (user: string): ReadonlyArray<string> => {
      const keys = new Set<string>()
      for (const entry of sessions.values()) if (entry.console && entry.path.user === user) keys.add(entry.key)
      for (const session of roster.sessions(clock.unsafeCurrentTimeMillis())) {
        if (session.console && session.path.user === user) keys.add(session.key)
      }
      return [...keys]
    }

    /** Whether a session is online at `key` (a rendered path) on any node. */
    const online = (key: string): boolean => sessions.has(key) || roster.has(key, clock.unsafeCurrentTimeMillis())

    // Each live-state change below is made here and announced, so every other node makes it on the
    // sessions it holds; a notice goes straight to the local sessions it concerns.

    /** Unsubscribe one session (by rendered path, on whichever node) from a channel and tell it why (D-7). */
    const unsubscribePath = (channel: string, key: string, reason: Frames.UnsubscribeReason) =>
      Effect.sync(() => {
        announce({ op: "unsubscribe_path", channel, path: key, reason })
        return local.unsubscribePath(channel, key, reason)
      })

    /** Unsubscribe every live session of `user` (on every node) from a channel and tell each (D-7). */
    const unsubscribeUser = (channel: string, user: string, reason: Frames.UnsubscribeReason) =>
      Effect.sync(() => {
        announce({ op: "unsubscribe_user", channel, user, reason })
        return local.unsubscribeUser(channel, user, reason)
      })

    /** The channel is gone: drop every subscription (notice `deleted`) and its ban mirror, on every node. */
    const dropChannel = (channel: string) =>
      Effect.sync(() => {
        announce({ op: "drop_channel", channel })
        local.dropChannel(channel)
      })

    /** Move subscriptions and bans to the new name and tell subscribers (notice `renamed`, D-7), on every node. */
    const renameChannel = (from: string, to: string) =>
      Effect.sync(() => {
        announce({ op: "rename_channel", from, to })
        local.renameChannel(from, to)
      })

    const isBanned = (channel: string, user: string) => Effect.sync(() => bans.get(channel)?.has(user) === true)
    /** Add a ban to the mirror on every node. */
    const addBan = (channel: string, user: string) =>
      Effect.sync(() => {
        announce({ op: "add_ban", channel, user })
        local.addBan(channel, user)
      })
    /** Lift a ban from the mirror on every node. */
    const removeBan = (channel: string, user: string) =>
      Effect.sync(() => {
        announce({ op: "remove_ban", channel, user })
        local.removeBan(channel, user)
      })

    /** Force-drop every live session of a user (or of one of its machines), on every node. Returns how many here. */
    const killUser = (user: string, reason: string, machine?: string) =>
      Effect.sync(() => {
        announce({ op: "kill_user", user, machine: machine ?? null, reason })
        return local.killUser(user, reason, machine)
      })

    const kill = (entry: SessionEntry, reason: string) => Effect.sync(() => local.killEntry(entry, reason))

    /** Kill every session whose last inbound frame is at or before `cutoffMs`. Returns how many. */
    const reapIdle = (cutoffMs: number) =>
      Effect.sync(() => {
        const idle = [...sessions.values()].filter((e) => e.lastSeen <= cutoffMs)
        for (const entry of idle) local.killEntry(entry, Errors.KillReasons.idle)
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

    // Subscribed last: a message from another node may arrive at any yield from here on.
    yield* broker.subscribe(deliver)

    /** Renew this node's lease with every session it holds, and forget nodes whose lease ran out. */
    const heartbeat = Effect.sync(() => {
      const leased: Array<Cluster.LeasedSession> = []
      for (const entry of sessions.values()) {
        leased.push(
          entry.console
            ? { path: entry.key, channels: [...entry.channels], console: true }
            : { path: entry.key, channels: [...entry.channels] }
        )
      }
      for (const part of Cluster.leaseParts(leased)) announce(part)
      return roster.sweep(clock.unsafeCurrentTimeMillis())
    }).pipe(
      Effect.flatMap((gone) =>
        gone.length === 0
          ? Effect.void
          : Effect.logWarning("nodes stopped renewing their presence lease; their sessions left").pipe(
            Effect.annotateLogs({ nodes: gone.join(",") })
          )
      )
    )
    // A node that stops in good order says so (after its heartbeat stopped): the others forget its
    // sessions at once.
    yield* Effect.addFinalizer(() => Effect.sync(() => announce({ op: "gone" })))
    // Interruptible: a layer may be built in an uninterruptible region (inside an acquire), and a
    // fiber forked there would inherit that and never stop when the scope closes.
    yield* heartbeat.pipe(
      Effect.repeat(Schedule.spaced(config.heartbeatInterval)),
      Effect.interruptible,
      Effect.forkScoped
    )

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
      consolesOf,
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
