/**
 * Run the real server Layer on 127.0.0.1:0 over a real SQLite file in a temp dir.
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
  const { broker = Broker.layerMemory, store = "file", tracing = false, ...config } = options
  return Effect.gen(function*() {
    const base = dir ?? (yield* tempDir)
    const dbFile = Path.join(base, "conclave.db")
    const context = yield* Layer.build(
      layerWithoutBroker.pipe(
        Layer.provide(broker),
        Layer.provide(ServerConfig.layer({ host: "127.0.0.1", port: 0, ...config })),
        Layer.provide(
          store === "file"
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
