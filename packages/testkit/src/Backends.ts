/**
 * The scale-out backends for tests (issue 17): PostgreSQL at `CONCLAVE_TEST_POSTGRES` (default
 * postgres://postgres@127.0.0.1:5432/test) with a scratch database per test, NATS at
 * `CONCLAVE_TEST_NATS` (default nats://127.0.0.1:4222) under a subject prefix per file, and a
 * `nats-server` of a test's own on a free port. A suite whose backend is missing is skipped with one
 * line saying so, except under `CI=true`, where that is a failure (`describeWith`).
 */
import * as PgClient from "@effect/sql-pg/PgClient"
import { assert, describe, it } from "@effect/vitest"
import { connect } from "@nats-io/transport-node"
import { Context, Duration, Effect, Layer, Redacted, type Scope } from "effect"
import * as ChildProcess from "node:child_process"
import * as crypto from "node:crypto"
import * as net from "node:net"

export const POSTGRES = process.env["CONCLAVE_TEST_POSTGRES"] ?? "postgres://postgres@127.0.0.1:5432/test"
export const NATS = process.env["CONCLAVE_TEST_NATS"] ?? "nats://127.0.0.1:4222"
export const NATS_SERVER_BIN = process.env["CONCLAVE_NATS_SERVER_BIN"] ?? "/usr/sbin/nats-server"

/** The PostgreSQL URL with any password masked, for messages. */
export const postgresShown = (() => {
  try {
    const url = new URL(POSTGRES)
    if (url.password !== "") url.password = "***"
    return url.toString()
  } catch {
    return "(an unparseable URL)"
  }
})()

/** Fail with `message` unless `effect` completes within `duration` (a bounded wait, not a sleep). */
export const within =
  (duration: Duration.DurationInput, message: string) => <A, E, R>(effect: Effect.Effect<A, E, R>) =>
    Effect.timeoutFail(effect, {
      duration,
      onTimeout: () => new Error(`timed out after ${Duration.format(duration)}: ${message}`)
    })

const adminClient = (connectTimeout: Duration.DurationInput) =>
  Layer.build(PgClient.layer({ url: Redacted.make(POSTGRES), connectTimeout, maxConnections: 2 })).pipe(
    Effect.map((ctx) => Context.get(ctx, PgClient.PgClient))
  )

export const postgresReachable: boolean = await Effect.runPromise(
  Effect.scoped(adminClient("3 seconds")).pipe(Effect.as(true), Effect.orElseSucceed(() => false))
)

export const natsReachable: boolean = await connect({ servers: NATS, timeout: 3000 }).then(
  (nc) => nc.close().then(() => true),
  () => false
)

const databasePrefix = `conclave_test_${crypto.randomBytes(4).toString("hex")}`
let databases = 0

/** A new database on the PostgreSQL server (dropped when the scope closes), and its URL. */
export const scratchDatabase: Effect.Effect<string, unknown, Scope.Scope> = Effect.gen(function*() {
  const name = `${databasePrefix}_${++databases}`
  const admin = yield* adminClient("5 seconds")
  yield* Effect.acquireRelease(
    admin.unsafe(`CREATE DATABASE ${name}`),
    () => Effect.orDie(admin.unsafe(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`))
  )
  const url = new URL(POSTGRES)
  url.pathname = `/${name}`
  return url.toString()
})

/** Pipe `client` and `upstream` both ways, tracked in `sockets`; either closing closes both. */
const splice = (client: net.Socket, upstream: net.Socket, sockets: Set<net.Socket>): void => {
  for (const socket of [client, upstream]) {
    sockets.add(socket)
    socket.on("error", () => socket.destroy())
    socket.on("close", () => {
      sockets.delete(socket)
      client.destroy()
      upstream.destroy()
    })
  }
  client.pipe(upstream)
  upstream.pipe(client)
}

/**
 * A TCP relay to the server of `url` (its host and port) that the test can cut and restore: the
 * server "going down" or a node cut off from it, and coming back, without touching the real server.
 * Its port stays the same.
 */
export const relay = (url: string) =>
  Effect.gen(function*() {
    const target = new URL(url)
    const targetPort = Number(target.port || (target.protocol === "nats:" ? 4222 : 5432))
    const sockets = new Set<net.Socket>()
    const server = net.createServer((client) => {
      splice(client, net.connect(targetPort, target.hostname), sockets)
    })
    const listen = (port: number) =>
      Effect.async<number>((resume) => {
        server.listen(port, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
      })
    const cut = Effect.async<void>((resume) => {
      server.close(() => resume(Effect.void))
      for (const socket of sockets) socket.destroy()
    })
    const port = yield* Effect.acquireRelease(listen(0), () => server.listening ? cut : Effect.void)
    return { port, cut, restore: Effect.asVoid(listen(port)) }
  })

/**
 * A round-robin TCP load balancer on a free loopback port: each new connection goes to the next of
 * `targets` (set once the nodes listen), as an operator's load balancer in front of N nodes would.
 */
export const balancer = Effect.gen(function*() {
  let targets: ReadonlyArray<number> = []
  let next = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    if (targets.length === 0) return client.destroy()
    splice(client, net.connect(targets[next++ % targets.length]!, "127.0.0.1"), sockets)
  })
  const port = yield* Effect.acquireRelease(
    Effect.async<number>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as net.AddressInfo).port)))
    }),
    () =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        for (const socket of sockets) socket.destroy()
      })
  )
  return {
    port,
    route: (ports: ReadonlyArray<number>) =>
      Effect.sync(() => {
        targets = ports
      })
  }
})

let subjectPrefixes = 0
/** A NATS subject prefix no other test uses. */
export const subjectPrefix = (): string => `conclave_test_${crypto.randomBytes(4).toString("hex")}_${++subjectPrefixes}`

/** A free TCP port on 127.0.0.1 (free when probed). */
export const freePort: Effect.Effect<number> = Effect.async<number>((resume) => {
  const probe = net.createServer()
  probe.listen(0, "127.0.0.1", () => {
    const port = (probe.address() as net.AddressInfo).port
    probe.close(() => resume(Effect.succeed(port)))
  })
})

/** A `nats-server` of the test's own on `port`, ready when this returns; killed with the scope or by `kill`. */
export const natsServer = (port: number) =>
  Effect.gen(function*() {
    const child = ChildProcess.spawn(NATS_SERVER_BIN, ["-a", "127.0.0.1", "-p", String(port)], {
      stdio: ["ignore", "ignore", "pipe"]
    })
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
    const kill = Effect.suspend(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      return Effect.promise(() => exited)
    })
    yield* Effect.addFinalizer(() => kill)
    let output = ""
    yield* Effect.async<void, Error>((resume) => {
      child.stderr.on("data", (chunk: Buffer) => {
        output += chunk.toString("utf8")
        if (output.includes("Server is ready")) resume(Effect.void)
      })
      child.once("exit", (code) => resume(Effect.fail(new Error(`nats-server exited (${code}): ${output}`))))
      child.once("error", (e) => resume(Effect.fail(e)))
    }).pipe(within("10 seconds", `nats-server on port ${port} ready`))
    return { kill }
  })

/**
 * `describe(name, body)` when every backend in `needs` is reachable; otherwise one line saying
 * what is missing and a skipped suite — or, under `CI=true`, a failing test.
 */
export const describeWith = (
  name: string,
  needs: ReadonlyArray<"postgres" | "nats">,
  body: () => void
): void => {
  const missing = needs.flatMap((need) =>
    need === "postgres"
      ? (postgresReachable ? [] : [`no PostgreSQL at ${postgresShown}`])
      : (natsReachable ? [] : [`no NATS at ${NATS}`])
  )
  if (missing.length === 0) {
    describe(name, body)
  } else if (process.env["CI"] === "true") {
    describe(name, () => {
      it("its backends are reachable (required under CI=true)", () => {
        assert.fail(missing.join("; "))
      })
    })
  } else {
    console.log(`skipped: ${missing.join("; ")}`)
    describe.skip(name, () => {
      it("needs its backends", () => {})
    })
  }
}
