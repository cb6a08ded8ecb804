/**
 * The HTTP origin (SPEC §2.1, §3.2, §3.19, DECISIONS D-9, D-10, D-19): `GET /` upgrades to a
 * WebSocket (frame cap enforced by `ws` before buffering; the 101 carries `x-conclave-server-id`),
 * handed to the `Acceptor`; `GET /` without an upgrade is 426, `GET /health` is 200 `ok`,
 * `GET /status` the node's state (D-41), `/console/` the web console (D-51, when configured),
 * anything else 404.
 *
 * Closing the layer's scope drains: stop accepting, then the acceptor's drain.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as FiberSet from "effect/FiberSet"
import * as Layer from "effect/Layer"
import * as Http from "node:http"
import type * as Net from "node:net"
import type { Duplex } from "node:stream"
import { type Acceptor, makeAcceptor, mount, pathOf, rejectUpgrade, type SessionEnv } from "./Acceptor.js"
import { Broker } from "./Broker.js"
import * as ConsoleAssets from "./ConsoleAssets.js"
import { Hub } from "./Hub.js"
import { isLocalOnly } from "./internal/authorities.js"
import { VERSION } from "./internal/version.js"
import { ServerConfig } from "./ServerConfig.js"
import { Store, type StoreError } from "./Store.js"

/** Where the server actually listens (port 0 resolved). @since 0.1.0 @category models */
export interface ServerAddressShape {
  /** The bound interface as given (`0.0.0.0`, `127.0.0.1`, `::` …). */
  readonly host: string
  /** The actual bound port. */
  readonly port: number
  /** A dialable URL, `ws://<host>:<port>` (wildcard interfaces become loopback). */
  readonly url: string
}

/** @since 0.1.0 @category tags */
export class ServerAddress extends Context.Tag("@conclave/server/ServerAddress")<ServerAddress, ServerAddressShape>() {}

/** The listener could not be bound. @since 0.1.0 @category errors */
export class BindError extends Data.TaggedError("BindError")<{ readonly address: string; readonly cause: unknown }> {
  override get message() {
    return `failed to bind \`${this.address}\`: ${
      this.cause instanceof Error ? this.cause.message : String(this.cause)
    }`
  }
}

const formatHostPort = (host: string, port: number) => (host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`)

const dialHost = (host: string) => (host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host)

const text = { "content-type": "text/plain; charset=utf-8" } as const

const make = Effect.gen(function*() {
  const config = yield* ServerConfig
  const acceptor = yield* makeAcceptor
  const store = yield* Store
  const broker = yield* Broker
  const hub = yield* Hub
  const clock = yield* Effect.clock
  const startedMs = clock.unsafeCurrentTimeMillis()
  // The HTTP endpoints that ask the backends run in fibers owned by this scope.
  const requests = yield* FiberSet.make<void, never>()
  const runRequest = yield* FiberSet.runtime(requests)<never>()
  // D-51: the web console at /console/ (unless the configuration names no console)
  const consoleAssets = config.consoleDir === null ? undefined : yield* ConsoleAssets.load(config.consoleDir)

  /** D-41: the node, each backend's kind and health, the sessions, the uptime and the version. */
  const status = Effect.all({ store: store.status, broker: broker.status, sessions: hub.size }).pipe(
    Effect.map(({ broker, sessions, store }) => ({
      node: config.nodeId,
      store,
      broker,
      sessions,
      uptime_s: Math.floor((clock.unsafeCurrentTimeMillis() - startedMs) / 1000),
      version: VERSION
    }))
  )
  const answer = (res: Http.ServerResponse, respond: Effect.Effect<void>) =>
    runRequest(
      respond.pipe(
        Effect.catchAllCause(() => Effect.sync(() => res.writeHead(500, text).end("internal error"))),
        Effect.onInterrupt(() => Effect.sync(() => res.destroy()))
      )
    )

  // Slowloris (partial upgrade headers): Node's defaults wait 60 s for headers and check only every
  // 30 s. Bound the headers by the handshake deadline and check often enough to honour it.
  const headersTimeoutMs = Math.max(1, Math.round(Duration.toMillis(config.handshakeTimeout)))
  const server = Http.createServer({
    headersTimeout: headersTimeoutMs,
    requestTimeout: headersTimeoutMs,
    connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor(headersTimeoutMs / 4)))
  }, (req, res) => {
    const path = pathOf(req.url)
    if (req.method === "GET" && path === "/health") {
      // 200 `ok` while the store and the broker are usable, 503 otherwise (D-41)
      answer(
        res,
        Effect.map(status, (s) => {
          const ok = s.store.ok && s.broker.ok
          res.writeHead(ok ? 200 : 503, text).end(ok ? "ok" : "unavailable")
        })
      )
    } else if (req.method === "GET" && path === "/status") {
      answer(
        res,
        Effect.map(status, (s) => {
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(s))
        })
      )
    } else if (req.method === "GET" && path === "/") {
      res.writeHead(426, { ...text, upgrade: "websocket" }).end("upgrade required")
    } else if (consoleAssets !== undefined && ConsoleAssets.isConsolePath(path)) {
      consoleAssets.serve(req, res, path)
    } else {
      res.writeHead(404, text).end("not found")
    }
  })
  server.on("clientError", (_err, socket) => socket.destroy())
  server.on("upgrade", (req: Http.IncomingMessage, socket: Duplex, head: Buffer) => {
    if (pathOf(req.url) !== "/") {
      socket.on("error", () => {})
      return rejectUpgrade(socket, "404 Not Found")
    }
    acceptor.handleUpgrade(req, socket, head)
  })

  const requested = formatHostPort(config.host, config.port)
  yield* Effect.acquireRelease(
    Effect.async<void, BindError>((resume) => {
      const onError = (cause: Error) => resume(Effect.fail(new BindError({ address: requested, cause })))
      server.once("error", onError)
      server.listen(config.port, config.host, () => {
        server.off("error", onError)
        resume(Effect.void)
      })
    }),
    () =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  )
  const bound = server.address() as Net.AddressInfo
  acceptor.authorities.bind(config.host, bound.port)
  if (config.publicUrls.length === 0 && !isLocalOnly(config.host)) {
    yield* Effect.logWarning(
      "no --public-url: signed handshakes must name this machine's own addresses; behind a proxy or load balancer, set --public-url to the URL clients dial"
    )
  }
  const address: ServerAddressShape = {
    host: config.host,
    port: bound.port,
    url: `ws://${formatHostPort(dialHost(config.host), bound.port)}`
  }
  yield* Effect.logInfo("conclave server listening").pipe(
    Effect.annotateLogs({ address: formatHostPort(config.host, bound.port) })
  )

  // Registered last, so it runs first when the scope closes (D-19): stop listening, then drain.
  yield* Effect.addFinalizer(() => Effect.zipRight(Effect.sync(() => server.close()), acceptor.drain))
  return address
})

/** The listening server; requires the hub services, the store and the config. @since 0.1.0 @category layers */
export const TransportLive: Layer.Layer<ServerAddress, BindError | StoreError, SessionEnv | Broker> = Layer.scoped(
  ServerAddress,
  make
)

export {
  /** @since 0.1.0 */
  type Acceptor,
  /** @since 0.1.0 */
  makeAcceptor,
  /** @since 0.1.0 */
  mount
}
