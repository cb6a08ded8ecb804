/**
 * The one server recipe of the tests: the real server Layer on 127.0.0.1:0 over a real SQLite file in
 * a temp dir — or, for a test that names no store, on the deployment `CONCLAVE_TEST_DEPLOYMENT`
 * selects (issue 17, "one conformance suite, three deployments"):
 *
 * - `sqlite` (default): one node, SQLite in a temp dir, the in-process broker;
 * - `postgres`: one node on a scratch PostgreSQL database and NATS (a subject prefix of its own);
 * - `cluster`: three nodes on one scratch database and NATS, behind a round-robin TCP load
 *   balancer, so each test's clients are spread over the nodes (`url` is the balancer's).
 *
 * Logs are silenced unless `CONCLAVE_TEST_LOG` names a level (`debug`, `info`, …).
 *
 * @since 0.1.0
 */
import { Broker, type Store } from "@conclave/server"
import * as ServerConfig from "@conclave/server/ServerConfig"
import { layerWithoutBroker, ServerAddress } from "@conclave/server/ServerLive"
import * as SqliteStore from "@conclave/server/SqliteStore"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Logger from "effect/Logger"
import * as LogLevel from "effect/LogLevel"
import type * as Scope from "effect/Scope"
import * as Path from "node:path"
import { tempDir } from "./TempDir.js"

/** @since 0.1.0 @category models */
export type Deployment = "sqlite" | "postgres" | "cluster"

/** The deployment the behaviour tests run against (`CONCLAVE_TEST_DEPLOYMENT`). @since 0.1.0 @category deployments */
export const DEPLOYMENT: Deployment = (() => {
  const chosen = process.env["CONCLAVE_TEST_DEPLOYMENT"] ?? "sqlite"
  if (chosen === "sqlite" || chosen === "postgres" || chosen === "cluster") return chosen
  throw new Error(`CONCLAVE_TEST_DEPLOYMENT=${chosen}: expected sqlite, postgres or cluster`)
})()

const logLevel: LogLevel.LogLevel = (() => {
  const chosen = process.env["CONCLAVE_TEST_LOG"]
  if (chosen === undefined || chosen === "") return LogLevel.None
  const level = LogLevel.allLevels.find((l) => l.label.toLowerCase() === chosen.toLowerCase())
  if (level === undefined) throw new Error(`CONCLAVE_TEST_LOG=${chosen}: expected a log level such as debug`)
  return level
})()

/** Rate limits off (for load and abuse suites that are not about the limits). @since 0.1.0 @category config */
export const noLimits: Partial<ServerConfig.ServerConfigShape> = { ratePerSecond: 0, registerLimitPerMinute: 0 }

/** @since 0.1.0 @category models */
export interface Running {
  readonly url: string
  readonly port: number
  /** The dir the server's files are in (a temp dir unless given). */
  readonly dir: string
  /** The SQLite file (used unless another store was chosen). */
  readonly dbFile: string
}

/** @since 0.1.0 @category models */
export interface StartOptions extends Partial<ServerConfig.ServerConfigShape> {
  /** Whether the server makes spans (default off, as `conclave serve` runs without an OTLP exporter). */
  readonly tracing?: boolean
  /** `file` (default): SQLite in `dbFile`; `memory`: an in-memory store; or a store layer (e.g. PostgreSQL). */
  readonly store?: "file" | "memory" | Layer.Layer<Store.Store, unknown>
  /** The broker (default: in-process). */
  readonly broker?: Layer.Layer<Broker.Broker, unknown>
}

/**
 * Build the server in the current scope (closing it drains the server), in `dir` or a temp dir of
 * its own. The options are `ServerConfig` fields (host 127.0.0.1 and port 0 unless given) and the
 * choice of store, broker and tracing.
 *
 * @since 0.1.0
 * @category constructors
 */
export const startServer = (options: StartOptions = {}, dir?: string): Effect.Effect<Running, unknown, Scope.Scope> => {
  const { broker = Broker.layerMemory, store, tracing = false, ...config } = options
  return Effect.gen(function*() {
    const base = dir ?? (yield* tempDir("conclave-server-"))
    const dbFile = Path.join(base, "conclave.db")
    if (store === undefined && DEPLOYMENT !== "sqlite") {
      return { ...(yield* startDeployment(DEPLOYMENT, config)), dir: base, dbFile }
    }
    const context = yield* Layer.build(
      layerWithoutBroker.pipe(
        Layer.provide(broker),
        Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0, ...config })),
        Layer.provide(
          store === undefined || store === "file"
            ? SqliteStore.layer({ filename: dbFile })
            : store === "memory"
            ? SqliteStore.layerMemory
            : store
        )
      )
    )
    const address = Context.get(context, ServerAddress)
    return { url: address.url, port: address.port, dir: base, dbFile }
  }).pipe(Logger.withMinimumLogLevel(logLevel), Effect.withTracerEnabled(tracing))
}

/** One node (`postgres`) or three behind a load balancer (`cluster`) on PostgreSQL and NATS. */
const startDeployment = (
  deployment: "postgres" | "cluster",
  config: Partial<ServerConfig.ServerConfigShape>
): Effect.Effect<{ readonly url: string; readonly port: number }, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    // loaded only here: importing it probes PostgreSQL and NATS
    const Backends = yield* Effect.promise(() => import("./Backends.js"))
    const { layer: pg } = yield* Effect.promise(() => import("@conclave/server/PgStore"))
    const { layer: nats } = yield* Effect.promise(() => import("@conclave/server/NatsBroker"))
    if (!Backends.postgresReachable || !Backends.natsReachable) {
      return yield* Effect.dieMessage(`CONCLAVE_TEST_DEPLOYMENT=${deployment} needs PostgreSQL and NATS`)
    }
    const database = yield* Backends.scratchDatabase
    const prefix = Backends.subjectPrefix()
    const node = (nodeId: string, publicUrls: ReadonlyArray<string>) =>
      Layer.build(
        layerWithoutBroker.pipe(
          Layer.provide(nats({ url: Backends.NATS, prefix })),
          Layer.provide(
            ServerConfig.layer({
              host: "127.0.0.1",
              port: 0,
              nodeId,
              ...config,
              publicUrls: [...(config.publicUrls ?? []), ...publicUrls]
            })
          ),
          Layer.provide(pg({ url: database }))
        )
      ).pipe(Effect.map((context) => Context.get(context, ServerAddress)))
    if (deployment === "postgres") return yield* node("node-1", [])
    const front = yield* Backends.balancer
    const url = `ws://127.0.0.1:${front.port}`
    const ports: Array<number> = []
    for (const id of ["node-1", "node-2", "node-3"]) ports.push((yield* node(id, [url])).port)
    yield* front.route(ports)
    return { url, port: front.port }
  })
