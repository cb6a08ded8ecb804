/**
 * The whole conclave server as Layers, embeddable in any Effect program (see `examples/embed.ts`).
 *
 * ```ts
 * import { NodeRuntime } from "@effect/platform-node"
 * import { ServerConfig, ServerLive, SqliteStore } from "@conclave/server"
 * import { Effect, Layer } from "effect"
 *
 * const program = Effect.gen(function*() {
 *   const { url } = yield* ServerLive.ServerAddress   // e.g. ws://127.0.0.1:54321
 *   yield* Effect.log(`conclave at ${url}`)
 *   yield* Effect.never                                 // serve until interrupted (drains on the way out)
 * })
 *
 * program.pipe(
 *   Effect.provide(ServerLive.ServerLive.pipe(
 *     Layer.provide(ServerConfig.layerConfig({ port: 0 })),   // CONCLAVE_* from the environment
 *     Layer.provide(SqliteStore.layer({ filename: "/var/lib/conclave/conclave.db" }))
 *   )),
 *   NodeRuntime.runMain
 * )
 * ```
 *
 * Three ways to serve: `ServerLive` listens on its own port (`ServerConfig.host`/`port`, with
 * `GET /health`); `layerMount` mounts conclave at a path of a Node `http.Server` the application
 * listens with; `httpApp` is a route for an `@effect/platform` `HttpRouter` served by
 * `NodeHttpServer`. `layerTest` is a server on a free loopback port over an in-memory store.
 *
 * Startup order (SPEC §3.1): retention sweep, ban mirror, reaper, then bind. Closing the scope
 * drains (D-19) and then closes the store (which the caller provides, so it outlives the server).
 *
 * @since 0.1.0
 */
import * as NodeHttpServerRequest from "@effect/platform-node/NodeHttpServerRequest"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as Http from "node:http"
import * as Broker from "./Broker.js"
import { Enrollments } from "./Enrollments.js"
import { Hub } from "./Hub.js"
import { RegisterLimiter } from "./RateLimit.js"
import { ReaperLive } from "./Reaper.js"
import { Requests } from "./Requests.js"
import { RetentionLive } from "./Retention.js"
import * as ServerConfig from "./ServerConfig.js"
import * as SqliteStore from "./SqliteStore.js"
import type { Store, StoreError } from "./Store.js"
import { type Acceptor, type BindError, makeAcceptor, mount, ServerAddress, TransportLive } from "./Transport.js"

export {
  /** @since 0.1.0 @category tags */
  ServerAddress
}

const Services = Layer.mergeAll(Requests.Default, RegisterLimiter.Default).pipe(
  Layer.provideMerge(Hub.Default),
  Layer.provideMerge(Enrollments.Default)
)

/**
 * The server over a caller-supplied `Broker` (for a distributed fan-out, D-20).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithoutBroker: Layer.Layer<
  ServerAddress,
  BindError | StoreError,
  Store | ServerConfig.ServerConfig | Broker.Broker
> = Layer
  .mergeAll(TransportLive, ReaperLive).pipe(
    Layer.provide(Services),
    Layer.provide(RetentionLive)
  )

/**
 * The server with the in-process broker: give it a `Store` and a `ServerConfig`, read the bound
 * address from `ServerAddress`.
 *
 * @since 0.1.0
 * @category layers
 */
export const ServerLive: Layer.Layer<ServerAddress, BindError | StoreError, Store | ServerConfig.ServerConfig> =
  layerWithoutBroker.pipe(Layer.provide(Broker.layerMemory))

/**
 * conclave mounted at `path` (e.g. `/conclave`) of a Node `http.Server` the application owns and
 * listens with: WebSocket upgrades to that path become sessions; everything else stays the
 * application's. Closing the layer's scope drains the sessions and unmounts.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerMount = (options: {
  readonly server: Http.Server
  readonly path: string
}): Layer.Layer<never, StoreError, Store | ServerConfig.ServerConfig> =>
  Layer.mergeAll(Layer.scopedDiscard(mount(options.server, options.path)), ReaperLive).pipe(
    Layer.provide(Services),
    Layer.provide(RetentionLive),
    Layer.provide(Broker.layerMemory)
  )

/**
 * The acceptor of WebSocket upgrades that `httpApp` hands its requests to.
 *
 * @since 0.1.0
 * @category tags
 */
export class Upgrades extends Context.Tag("@conclave/server/ServerLive/Upgrades")<Upgrades, Acceptor>() {}

/**
 * What `httpApp` needs: the sessions' services and their acceptor, draining when the layer's scope
 * closes.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerUpgrades: Layer.Layer<Upgrades, StoreError, Store | ServerConfig.ServerConfig> = Layer
  .mergeAll(Layer.scoped(Upgrades, makeAcceptor), ReaperLive).pipe(
    Layer.provide(Services),
    Layer.provide(RetentionLive),
    Layer.provide(Broker.layerMemory)
  )

/**
 * conclave as a route of an `@effect/platform` HTTP app served by `NodeHttpServer`
 * (`HttpRouter.get("/conclave", ServerLive.httpApp)`, with `layerUpgrades` provided): a WebSocket
 * upgrade becomes a session, handed to conclave's own WebSocket server (frame cap enforced before
 * buffering). The platform's response object for the request is detached from the socket and ended
 * first, so nothing the platform writes for this request can reach the upgraded socket. A plain GET
 * is answered 426.
 *
 * @since 0.1.0
 * @category http
 */
export const httpApp: Effect.Effect<
  HttpServerResponse.HttpServerResponse,
  never,
  HttpServerRequest.HttpServerRequest | Upgrades
> = Effect.gen(function*() {
  const request = yield* HttpServerRequest.HttpServerRequest
  const upgrades = yield* Upgrades
  const req = NodeHttpServerRequest.toIncomingMessage(request)
  if ((req.headers.upgrade ?? "").toLowerCase() !== "websocket") {
    return HttpServerResponse.text("upgrade required", { status: 426, headers: { upgrade: "websocket" } })
  }
  const res = NodeHttpServerRequest.toServerResponse(request)
  res.detachSocket(req.socket)
  res.end()
  upgrades.handleUpgrade(req, req.socket, Buffer.alloc(0))
  return HttpServerResponse.empty()
})

/**
 * A server for tests and examples: a free loopback port, rate limits off, an in-memory store (or a
 * SQLite file when `filename` is given); `overrides` adjust the configuration.
 *
 * @since 0.1.0
 * @category layers
 */
export const layerTest = (
  options: { readonly filename?: string; readonly overrides?: Partial<ServerConfig.ServerConfigShape> } = {}
): Layer.Layer<ServerAddress, BindError | StoreError> =>
  ServerLive.pipe(
    Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0, ratePerSecond: 0, ...options.overrides })),
    Layer.provide(
      options.filename === undefined ? SqliteStore.layerMemory : SqliteStore.layer({ filename: options.filename })
    )
  )
