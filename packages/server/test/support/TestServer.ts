/**
 * Run the real server Layer on 127.0.0.1:0 over a real SQLite file in a temp dir — or, for a test
 * that names no store, on the deployment `CONCLAVE_TEST_DEPLOYMENT` selects (issue 17, "one
 * conformance suite, three deployments"):
 *
 * - `sqlite` (default): one node, SQLite in a temp dir, the in-process broker;
 * - `postgres`: one node on a scratch PostgreSQL database and NATS (a subject prefix of its own);
 * - `cluster`: three nodes on one scratch database and NATS, behind a round-robin TCP load
 *   balancer, so each test's clients are spread over the nodes (`url` is the balancer's).
 */
import { Context, Effect, Layer, Logger, LogLevel, type Scope } from "effect"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Broker from "../../src/Broker.js"
import * as ServerConfig from "../../src/ServerConfig.js"
import { layerWithoutBroker, ServerAddress } from "../../src/ServerLive.js"
import * as SqliteStore from "../../src/SqliteStore.js"
import type { Store } from "../../src/Store.js"

export const tempDir: Effect.Effect<string, never, Scope.Scope> = Effect.acquireRelease(
  Effect.sync(() => Fs.mkdtempSync(Path.join(Os.tmpdir(), "conclave-server-"))),
  (dir) => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true }))
)

/** The deployment the behaviour tests run against (`CONCLAVE_TEST_DEPLOYMENT`). */
export const DEPLOYMENT: "sqlite" | "postgres" | "cluster" = (() => {
  const chosen = process.env["CONCLAVE_TEST_DEPLOYMENT"] ?? "sqlite"
  if (chosen === "sqlite" || chosen === "postgres" || chosen === "cluster") return chosen
  throw new Error(`CONCLAVE_TEST_DEPLOYMENT=${chosen}: expected sqlite, postgres or cluster`)
})()

export interface Running {
  readonly url: string
  readonly port: number
  readonly dir: string
  readonly dbFile: string
}

/** Build the server in a child scope; closing that scope drains it. */
export const startServer = (
  options: Partial<ServerConfig.ServerConfigShape> & {
    /** Whether the server makes spans (default off, as `conclave serve` runs without an OTLP exporter). */
    readonly tracing?: boolean
    /** `file` (default): SQLite in `dbFile`; `memory`: an in-memory store; or a store layer (e.g. PostgreSQL). */
    readonly store?: "file" | "memory" | Layer.Layer<Store, unknown>
    /** The broker (default: in-process). */
    readonly broker?: Layer.Layer<Broker.Broker, unknown>
  } = {},
  dir?: string
): Effect.Effect<Running, unknown, Scope.Scope> => {
  const { broker = Broker.layerMemory, store, tracing = false, ...config } = options
  return Effect.gen(function*() {
    const base = dir ?? (yield* tempDir)
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
  }).pipe(Logger.withMinimumLogLevel(LogLevel.None), Effect.withTracerEnabled(tracing))
}

/** One node (`postgres`) or three behind a load balancer (`cluster`) on PostgreSQL and NATS. */
const startDeployment = (
  deployment: "postgres" | "cluster",
  config: Partial<ServerConfig.ServerConfigShape>
): Effect.Effect<{ readonly url: string; readonly port: number }, unknown, Scope.Scope> =>
  Effect.gen(function*() {
    const Backends = yield* Effect.promise(() => import("./Backends.js"))
    const { layer: pg } = yield* Effect.promise(() => import("../../src/PgStore.js"))
    const { layer: nats } = yield* Effect.promise(() => import("../../src/NatsBroker.js"))
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
