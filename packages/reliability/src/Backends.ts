/**
 * The scale-out backends for spawned deployments (issue 17, D-41/D-42): a scratch PostgreSQL
 * database per use (dropped with its scope) on the machine's server (`CONCLAVE_TEST_POSTGRES`), and a
 * `nats-server` of the caller's own on a free port (so the machine's shared NATS is never disturbed
 * and no other deployment's traffic mixes in), plus `cluster`: N `conclave serve` nodes on both.
 *
 * @since 0.1.0
 */
import * as Kit from "@conclave/testkit"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Processes from "./Processes.js"

/** The PostgreSQL server scratch databases are made on. @since 0.1.0 @category config */
export const postgresUrl: string = process.env["CONCLAVE_TEST_POSTGRES"] ?? "postgres://postgres@127.0.0.1:5432/test"

/** The `nats-server` binary. @since 0.1.0 @category config */
export const natsServerBin: string = process.env["CONCLAVE_NATS_SERVER_BIN"] ?? "/usr/sbin/nats-server"

/** Run one SQL statement with `psql` against `postgresUrl`; whether it succeeded. @since 0.1.0 @category postgres */
export const psql = (sql: string): boolean =>
  ChildProcess.spawnSync("psql", [postgresUrl, "-v", "ON_ERROR_STOP=1", "-qc", sql], { stdio: "ignore" }).status === 0

/** What is missing for a spawned deployment on PostgreSQL + NATS (empty when all is there). @since 0.1.0 @category checks */
export const missing = (): Array<string> => [
  ...(Processes.conclaveBuilt() ? [] : ["the CLI is not built (npx tsc -b packages/cli)"]),
  ...(Fs.existsSync(natsServerBin) ? [] : [`no nats-server at ${natsServerBin}`]),
  ...(psql("SELECT 1") ? [] : [`no PostgreSQL reachable with psql at ${new URL(postgresUrl).host}`])
]

let databases = 0
const dbPrefix = `conclave_scale_${crypto.randomBytes(4).toString("hex")}`

/** A scratch database, dropped (with `FORCE`) when the scope closes; its URL. @since 0.1.0 @category postgres */
export const scratchDatabase: Effect.Effect<string, Processes.ProcessError, Scope.Scope> = Effect.acquireRelease(
  Effect.suspend(() => {
    const name = `${dbPrefix}_${++databases}`
    if (!psql(`CREATE DATABASE ${name}`)) {
      return Effect.fail(new Processes.ProcessError({ message: `could not create database ${name}` }))
    }
    const url = new URL(postgresUrl)
    url.pathname = `/${name}`
    return Effect.succeed({ name, url: url.toString() })
  }),
  ({ name }) => Effect.sync(() => psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
).pipe(Effect.map(({ url }) => url))

/** A TCP port free on 127.0.0.1 at the time of asking. @since 0.1.0 @category network */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const probe = Net.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const port = (probe.address() as Net.AddressInfo).port
    probe.close(() => resume(Effect.succeed(port)))
  })
})

/** A `nats-server` on `port`, ready when this returns; SIGKILLed with the scope. @since 0.1.0 @category nats */
export const natsServer = (port: number) =>
  Effect.gen(function*() {
    const child = yield* Processes.spawn(natsServerBin, ["-a", "127.0.0.1", "-p", String(port)])
    yield* Kit.eventually(
      "nats-server ready",
      Effect.sync(() => child.stderr().includes("Server is ready") ? Option.some(true) : Option.none()),
      "10 seconds"
    )
    return child
  })

/** Options for `cluster`'s nodes. @since 0.1.0 @category cluster */
export interface ClusterOptions {
  readonly nodes: number
  /** Flags for every node after `--store/--broker/--node-id`. */
  readonly extraArgs?: ReadonlyArray<string>
  /** Flags for the `node` running each server (given the node's index). */
  readonly nodeArgs?: (i: number) => ReadonlyArray<string>
  /** Environment of each server (given the node's index). */
  readonly env?: (i: number) => Record<string, string>
}

/**
 * A deployment: a scratch database, a `nats-server` of its own, and `nodes` spawned `conclave serve`
 * processes named `n1`…`nN` on both; everything is stopped and dropped with the scope.
 *
 * @since 0.1.0
 * @category cluster
 */
export const cluster = (options: ClusterOptions) =>
  Effect.gen(function*() {
    const store = yield* scratchDatabase
    const port = yield* freePort
    const nats = `nats://127.0.0.1:${port}`
    const natsProcess = yield* natsServer(port)
    const nodes: Array<Processes.ServerProcess> = []
    for (let i = 0; i < options.nodes; i++) {
      nodes.push(
        yield* Processes.spawnServer("", {
          store,
          extraArgs: ["--broker", nats, "--node-id", `n${i + 1}`, ...(options.extraArgs ?? [])],
          ...(options.nodeArgs === undefined ? {} : { nodeArgs: options.nodeArgs(i) }),
          ...(options.env === undefined ? {} : { env: options.env(i) })
        })
      )
    }
    return { store, nats, natsProcess, nodes }
  })
