/**
 * conclave embedded in a small Effect application: one `@effect/platform` HTTP server that answers
 * its own routes and hosts conclave at `/conclave`, configured from the environment (`CONCLAVE_*`).
 * Interrupting the program (Ctrl-C, SIGTERM) drains conclave's sessions before the HTTP server stops.
 *
 *   npx tsx packages/server/examples/embed.ts          # PORT=8080 by default
 *   npx conclave register --server ws://127.0.0.1:8080/conclave --username alice
 */
import { ServerConfig, ServerLive, SqliteStore, type Store } from "@conclave/server"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as HttpRouter from "@effect/platform/HttpRouter"
import * as HttpServer from "@effect/platform/HttpServer"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"

/** The application's routes, conclave among them. */
export const router = HttpRouter.empty.pipe(
  HttpRouter.get("/", HttpServerResponse.text("an application that hosts conclave at /conclave")),
  HttpRouter.get("/conclave", ServerLive.httpApp)
)

/** The whole application on `port` (0: a free one), over `store`; its `HttpServer` says where it listens. */
export const AppLive = (options: {
  readonly port: number
  readonly store: Layer.Layer<Store.Store, Store.StoreError>
}) =>
  HttpServer.serve(router).pipe(
    HttpServer.withLogAddress,
    Layer.provide(ServerLive.layerUpgrades),
    Layer.provide(ServerConfig.layerConfig()),
    Layer.provide(options.store),
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: options.port }))
  )

if (import.meta.url === `file://${process.argv[1]}`) {
  Effect.gen(function*() {
    const port = yield* Config.integer("PORT").pipe(Config.withDefault(8080))
    return yield* Layer.launch(AppLive({ port, store: SqliteStore.layerMemory }))
  }).pipe(NodeRuntime.runMain)
}
