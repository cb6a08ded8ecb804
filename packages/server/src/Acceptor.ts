/**
 * The WebSocket side of the HTTP origin (SPEC §2.1, §2.6, DECISIONS D-9, D-10, D-19, D-51): what
 * takes an upgrade and makes it a session. An upgrade carrying a foreign `Origin` is refused 403. At
 * most `maxPendingPerIp` connections per remote address may be in the handshake at once: a newcomer
 * past it displaces the oldest silent one. The address is the peer's, or, from a `--trust-proxy`
 * peer, the client its `X-Forwarded-For` names. One sweeper fiber holds every handshake deadline.
 * Closing the acceptor's scope drains: send every session `shutdown`, close with 1001, wait (bounded)
 * for the sockets to close, then cut what is left. `Transport` listens and routes to it; `mount`
 * puts it on a Node `http.Server` the caller owns.
 *
 * @since 0.1.0
 */
import { Auth, Limits } from "@conclave/protocol"
import * as Cause from "effect/Cause"
import * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as FiberSet from "effect/FiberSet"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import type * as Http from "node:http"
import type * as Net from "node:net"
import type { Duplex } from "node:stream"
import { WebSocketServer } from "ws"
import * as Connection from "./Connection.js"
import * as ConsoleAssets from "./ConsoleAssets.js"
import type { Enrollments } from "./Enrollments.js"
import { Hub } from "./Hub.js"
import { Authorities } from "./internal/authorities.js"
import * as Lingering from "./internal/lingering.js"
import { parseCidr, TrustedProxies } from "./internal/proxies.js"
import { fail, Link } from "./Link.js"
import type { RegisterLimiter } from "./RateLimit.js"
import type { Requests } from "./Requests.js"
import { ServerConfig } from "./ServerConfig.js"
import { Store, type StoreError } from "./Store.js"

/** Answer an upgrade request with an HTTP error status and close. @internal */
export const rejectUpgrade = (socket: Duplex, status: string) => {
  socket.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`)
}

/** A socket in the handshake; `spoke` once it has sent anything past its upgrade request. */
interface PendingSlot {
  readonly socket: Net.Socket
  readonly spoke: () => boolean
}

/** The path of a request target, without its query. @internal */
export const pathOf = (url: string | undefined) => {
  const raw = url ?? "/"
  const q = raw.indexOf("?")
  return q < 0 ? raw : raw.slice(0, q)
}

/** What a session needs from the server. @since 0.1.0 @category models */
export type SessionEnv = Hub | Requests | Store | ServerConfig | RegisterLimiter | Enrollments

/**
 * What takes WebSocket upgrades: it answers each with a session (its connection fiber owned by the
 * scope the acceptor was built in) and drains them all when that scope closes (D-19).
 *
 * @since 0.1.0
 * @category models
 */
export interface Acceptor {
  /**
   * Take over an HTTP upgrade request for conclave (the caller has matched the path): refused with
   * 503 while draining, else upgraded (past the per-address cap of pending handshakes, the oldest
   * silent one of that address is closed to make room).
   */
  readonly handleUpgrade: (req: Http.IncomingMessage, socket: Duplex, head: Buffer) => void
  /** Stop taking upgrades, tell every session the server is going away, wait (bounded), then cut. Idempotent. */
  readonly drain: Effect.Effect<void>
  /** The authorities signed handshakes may name (filled in when the listener is bound). */
  readonly authorities: Authorities
}

/**
 * An `Acceptor` over the services in context, scoped: closing the scope drains.
 *
 * @since 0.1.0
 * @category constructors
 */
export const makeAcceptor: Effect.Effect<Acceptor, StoreError, SessionEnv | Scope.Scope> = Effect.gen(function*() {
  const config = yield* ServerConfig
  const store = yield* Store
  const instanceId = yield* store.instanceId
  const hub = yield* Hub
  const sessions = yield* FiberSet.make<void, never>()
  const runFork = yield* FiberSet.runtime(sessions)<never>()
  const authorities = new Authorities(
    config.publicUrls.map((url) => Auth.authorityOf(url)).filter((a): a is string => a !== undefined)
  )
  const serve = yield* Connection.make(authorities)
  const lingering = yield* Lingering.make

  const links = new Set<Link>()
  const proxies = new TrustedProxies(
    config.trustProxy.flatMap((block) => Either.getRight(parseCidr(block)).pipe(Option.toArray))
  )
  // D-10: at most `maxPendingPerIp` sockets per address in the handshake. At the cap a newcomer is
  // not refused (strangers' silent sockets would lock the address's users out, issue 22): the oldest
  // pending socket that has sent nothing yet — else the oldest — makes room for it.
  const pending = new Map<string, Set<PendingSlot>>()
  const admitPending = (address: string, socket: Duplex): () => void => {
    let slots = pending.get(address)
    if (slots === undefined) {
      slots = new Set()
      pending.set(address, slots)
    }
    if (config.maxPendingPerIp > 0 && slots.size >= config.maxPendingPerIp) {
      let victim: PendingSlot | undefined
      for (const slot of slots) {
        victim ??= slot
        if (!slot.spoke()) {
          victim = slot
          break
        }
      }
      if (victim !== undefined) {
        slots.delete(victim)
        victim.socket.destroy()
      }
    }
    const net = socket as Net.Socket
    const upgradeBytes = net.bytesRead
    const slot: PendingSlot = { socket: net, spoke: () => net.bytesRead > upgradeBytes }
    slots.add(slot)
    let released = false
    return () => {
      if (released) return
      released = true
      const own = pending.get(address)
      if (own === undefined) return
      own.delete(slot)
      if (own.size === 0) pending.delete(address)
    }
  }
  let draining = false

  // Handshake deadlines: one sweeper fiber for all connections instead of a timer fiber each. Every
  // deadline is `handshakeTimeout` after its arming, so insertion order is deadline order, and an
  // entry armed while the sweeper sleeps (at most one timeout) is due after it wakes: none is late.
  const clock = yield* Effect.clock
  const timeoutMs = Duration.toMillis(config.handshakeTimeout)
  const deadlines = new Set<{ readonly at: number; readonly expire: () => void }>()
  const armDeadline = (expire: () => void) => {
    const entry = { at: clock.unsafeCurrentTimeMillis() + timeoutMs, expire }
    deadlines.add(entry)
    return () => {
      deadlines.delete(entry)
    }
  }
  if (Number.isFinite(timeoutMs)) {
    yield* Effect.forkScoped(
      Effect.forever(Effect.flatMap(Clock.currentTimeMillis, (now) => {
        let wait = timeoutMs
        for (const entry of deadlines) {
          if (entry.at > now) {
            wait = entry.at - now
            break
          }
          deadlines.delete(entry)
          entry.expire()
        }
        return Effect.sleep(Duration.millis(Math.max(1, wait)))
        // interruptible even when the layer is built inside an uninterruptible region (e.g. an acquire)
      })).pipe(Effect.interruptible)
    )
  }

  // `links` tracks the sockets: `ws`'s own set of clients (and its close listener per socket) is not kept
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: config.maxFrameBytes,
    perMessageDeflate: false,
    clientTracking: false
  })
  wss.on("headers", (headers) => {
    headers.push(`${Limits.INSTANCE_ID_HEADER}: ${instanceId}`)
  })
  wss.on("error", () => {})
  yield* Effect.addFinalizer(() => Effect.sync(() => wss.close()))

  const handleUpgrade = (req: Http.IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on("error", () => {})
    if (draining) return rejectUpgrade(socket, "503 Service Unavailable")
    // A mounted server learns the address it answers at from its first connection (its own socket's).
    if (!authorities.isBound && req.socket.localAddress !== undefined && req.socket.localPort !== undefined) {
      authorities.bind(req.socket.localAddress.replace(/^::ffff:/, ""), req.socket.localPort)
    }
    // D-51: a browser may connect only from this server's own origin or a --console-origin entry
    if (!ConsoleAssets.originAllowed(req.headers.origin, authorities.all(), config.consoleOrigins)) {
      return rejectUpgrade(socket, "403 Forbidden")
    }
    const address = proxies.clientAddress(req.socket.remoteAddress ?? "unknown", req.headers["x-forwarded-for"])
    const handshakeDone = admitPending(address, socket)
    socket.once("close", handshakeDone)
    wss.handleUpgrade(req, socket, head, (ws) => {
      const link = new Link(ws, {
        inboxCapacity: config.inboxCapacity,
        outboxCapacity: config.outboxCapacity,
        outboxMaxBytes: config.outboxMaxBytes,
        socket: socket as Net.Socket,
        corking: hub.corking
      })
      links.add(link)
      ws.once("close", () => links.delete(link))
      // The handshake runs in the socket's callbacks up to its last step, which runs in a fiber owned
      // by the acceptor's scope; a defect in the callbacks costs the connection, not the process.
      const next = serve(link, {
        remoteAddress: address,
        handshakeDone,
        armDeadline,
        fork: (effect, options) => {
          runFork(effect, options)
        },
        lingering
      })
      const wake = () => {
        let completion: Effect.Effect<void> | undefined
        try {
          completion = next()
        } catch (defect) {
          link.onWake = undefined
          handshakeDone()
          completion = fail(link, Cause.die(defect))
        }
        if (completion !== undefined) runFork(completion)
      }
      link.onWake = wake
      wake()
    })
  }

  for (const admin of config.admins) {
    if (admin.pin === null) {
      yield* Effect.logWarning(
        `admin \`${admin.user}\` is unpinned: the name can be squatted by the first client to register it; pin it as ${admin.user}=<pubkey>`
      )
    }
  }

  const drain = Effect.suspend(() => {
    if (draining) return Effect.void
    draining = true
    return Effect.gen(function*() {
      yield* Effect.logInfo("draining sessions").pipe(Effect.annotateLogs({ sessions: links.size }))
      for (const link of links) link.shutdown()
      // Wait for the sockets, then for the connections' fibers to end on their own.
      yield* Effect.forEach([...links], (link) => Deferred.await(link.closed), { discard: true }).pipe(
        Effect.zipRight(FiberSet.awaitEmpty(sessions)),
        Effect.timeoutOption(config.drainTimeout)
      )
      for (const link of links) link.terminate()
    })
  })
  yield* Effect.addFinalizer(() => drain)
  return { handleUpgrade, drain, authorities }
})

/**
 * Mount conclave on a Node `http.Server` the caller owns and listens with: upgrades to `path` become
 * sessions (other upgrades are left to the server's other listeners), and a plain `GET path` is
 * answered 426 by the caller's own routes if it wants to. Closing the scope drains the sessions and
 * unmounts; the caller's server keeps running.
 *
 * @since 0.1.0
 * @category constructors
 */
export const mount = (
  server: Http.Server,
  path: string
): Effect.Effect<void, StoreError, SessionEnv | Scope.Scope> =>
  Effect.gen(function*() {
    const acceptor = yield* makeAcceptor
    const onUpgrade = (req: Http.IncomingMessage, socket: Duplex, head: Buffer) => {
      if (pathOf(req.url) === path) acceptor.handleUpgrade(req, socket, head)
    }
    yield* Effect.acquireRelease(
      Effect.sync(() => server.on("upgrade", onUpgrade)),
      () => Effect.sync(() => server.off("upgrade", onUpgrade))
    )
  })
