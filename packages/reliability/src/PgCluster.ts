/**
 * A PostgreSQL cluster of a test's own (issue 17's "stop and start PostgreSQL under load"): made
 * with Debian's `pg_createcluster` on a free port with trust authentication, stopped and started
 * with `pg_ctlcluster`, dropped with its scope. The machine's shared cluster is never touched, so
 * other suites running at the same time keep their database.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as crypto from "node:crypto"
import * as Fs from "node:fs"
import { freePort } from "./Backends.js"
import { ProcessError } from "./Processes.js"

const tools = ["/usr/bin/pg_createcluster", "/usr/bin/pg_ctlcluster", "/usr/bin/pg_dropcluster"]

/** The installed PostgreSQL major versions (`/etc/postgresql/<version>`), newest first. */
const versions = (): Array<string> =>
  Fs.existsSync("/etc/postgresql")
    ? Fs.readdirSync("/etc/postgresql").filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a))
    : []

/**
 * Why a private cluster cannot be made here (empty when it can): the tools, a server version, and
 * root (the clusters belong to the `postgres` user).
 *
 * @since 0.1.0
 * @category checks
 */
export const missing = (): Array<string> => [
  ...tools.filter((t) => !Fs.existsSync(t)).map((t) => `no ${t} (Debian's postgresql-common)`),
  ...(versions().length === 0 ? ["no PostgreSQL server version under /etc/postgresql"] : []),
  ...(process.getuid?.() === 0 ? [] : ["not root (pg_createcluster needs it)"])
]

/** A private cluster: its URL (database `postgres`), and how to stop and start it. @since 0.1.0 @category models */
export interface PgCluster {
  readonly url: string
  readonly stop: Effect.Effect<void, ProcessError>
  readonly start: Effect.Effect<void, ProcessError>
}

const run = (command: string, args: ReadonlyArray<string>): Effect.Effect<void, ProcessError> =>
  Effect.async<void, ProcessError>((resume) => {
    const child = ChildProcess.spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk
    })
    child.on("error", (e) => resume(Effect.fail(new ProcessError({ message: `${command}: ${e.message}` }))))
    child.on("exit", (code) =>
      resume(
        code === 0
          ? Effect.void
          : Effect.fail(new ProcessError({ message: `${command} ${args.join(" ")} exited ${code}: ${stderr.trim()}` }))
      ))
  })

/**
 * A new cluster on a free port, started; stopped and dropped when the scope closes.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make: Effect.Effect<PgCluster, ProcessError, Scope.Scope> = Effect.gen(function*() {
  const version = versions()[0]!
  const name = `conclave_faults_${crypto.randomBytes(4).toString("hex")}`
  const port = yield* freePort
  const ctl = (action: "stop" | "start") =>
    run("/usr/bin/pg_ctlcluster", ["--skip-systemctl-redirect", version, name, action])
  yield* Effect.acquireRelease(
    run("/usr/bin/pg_createcluster", [version, name, "-p", String(port), "--start", "--", "--auth=trust"]),
    () => Effect.ignore(run("/usr/bin/pg_dropcluster", ["--stop", version, name]))
  )
  return { url: `postgres://postgres@127.0.0.1:${port}/postgres`, stop: ctl("stop"), start: ctl("start") }
})
