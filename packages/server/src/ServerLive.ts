/**
 * The whole conclave server as one Layer, embeddable in any Effect program.
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
 *     Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0 })),
 *     Layer.provide(SqliteStore.layer({ filename: "/var/lib/conclave/conclave.db" }))
 *   )),
 *   NodeRuntime.runMain
 * )
 * ```
 *
 * Startup order (SPEC §3.1): retention sweep, ban mirror, reaper, then bind. Closing the scope
 * drains (D-19) and then closes the store (which the caller provides, so it outlives the server).
 *
 * @since 0.1.0
 */
import * as Layer from "effect/Layer"
import * as Broker from "./Broker.js"
import { Hub } from "./Hub.js"
import { RegisterLimiter } from "./RateLimit.js"
import { ReaperLive } from "./Reaper.js"
import { Requests } from "./Requests.js"
import { RetentionLive } from "./Retention.js"
import type { ServerConfig } from "./ServerConfig.js"
import type { Store, StoreError } from "./Store.js"
import { type BindError, ServerAddress, TransportLive } from "./Transport.js"

export {
  /** @since 0.1.0 @category tags */
  ServerAddress
}

const Services = Layer.mergeAll(Requests.Default, RegisterLimiter.Default).pipe(Layer.provideMerge(Hub.Default))

/**
 * The server over a caller-supplied `Broker` (for a distributed fan-out, D-20).
 *
 * @since 0.1.0
 * @category layers
 */
export const layerWithoutBroker: Layer.Layer<
  ServerAddress,
  BindError | StoreError,
  Store | ServerConfig | Broker.Broker
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
export const ServerLive: Layer.Layer<ServerAddress, BindError | StoreError, Store | ServerConfig> = layerWithoutBroker
  .pipe(
    Layer.provide(Broker.layerMemory)
  )
