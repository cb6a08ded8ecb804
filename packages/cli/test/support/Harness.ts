// Test support: a real server in this process (port 0, loopback), the real `conclave` binary as a
// child process, temp dirs. Requires `npx tsc -b packages/cli` first (the binary runs from dist/).
import * as Admins from "@conclave/server/Admins"
import type * as ServerConfig from "@conclave/server/ServerConfig"
import * as SqliteStore from "@conclave/server/SqliteStore"
import * as Kit from "@conclave/testkit"
import { Context, Effect, Either, Exit, Layer, Option, Queue, Scope } from "effect"
import { type ChildProcess, execFile, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const here = Path.dirname(fileURLToPath(import.meta.url))
/**
 * The binary under test: this checkout's, or `CONCLAVE_TEST_BIN` (the `bin/conclave.js` of another
 * built checkout, e.g. an old commit, to show that a test fails without its fix).
 */
export const BIN = process.env["CONCLAVE_TEST_BIN"] ?? Path.resolve(here, "../../bin/conclave.js")
const DIST_BIN = Path.resolve(Path.dirname(BIN), "../dist/bin.js")

export const assertBuilt = () => {
  if (!Fs.existsSync(DIST_BIN)) {
    throw new Error(`${DIST_BIN} is missing: run \`npx tsc -b packages/cli\` before the CLI tests`)
  }
}

export interface Result {
  readonly stdout: string
  readonly stderr: string
  readonly code: number
}

export interface RunOptions {
  readonly configDir?: string
  readonly env?: Readonly<Record<string, string>>
  readonly timeoutMs?: number
  /** Working directory of the child (default: this process's). */
  readonly cwd?: string
}

const baseEnv = (extra: Readonly<Record<string, string>> | undefined): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" }
  delete env["CONCLAVE_LOG_LEVEL"]
  delete env["CONCLAVE_LOG_FORMAT"]
  delete env["CONCLAVE_LOG"]
  return { ...env, ...extra }
}

const argvFor = (args: ReadonlyArray<string>, options: RunOptions) => [
  BIN,
  ...(options.configDir === undefined ? [] : ["--config-dir", options.configDir]),
  ...args
]

/** Run the binary to completion. */
export const cli = (args: ReadonlyArray<string>, options: RunOptions = {}): Effect.Effect<Result> =>
  Effect.async<Result>((resume) => {
    const child = execFile(
      process.execPath,
      argvFor(args, options),
      {
        env: baseEnv(options.env),
        timeout: options.timeoutMs ?? 25_000,
        maxBuffer: 16 * 1024 * 1024,
        ...(options.cwd === undefined ? {} : { cwd: options.cwd })
      },
      (error, stdout, stderr) => {
        const code = child.exitCode ?? (error !== null && typeof error.code === "number" ? error.code : -1)
        resume(Effect.succeed({ stdout, stderr, code }))
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/** Run and require exit 0, failing with both streams otherwise. */
export const ok = (args: ReadonlyArray<string>, options: RunOptions = {}) =>
  cli(args, options).pipe(
    Effect.flatMap((r) =>
      r.code === 0
        ? Effect.succeed(r)
        : Effect.dieMessage(`conclave ${args.join(" ")} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`)
    )
  )

/** Run and require a non-zero exit. */
export const ko = (args: ReadonlyArray<string>, options: RunOptions = {}) =>
  cli(args, options).pipe(
    Effect.flatMap((r) =>
      r.code !== 0
        ? Effect.succeed(r)
        : Effect.dieMessage(
          `conclave ${args.join(" ")} unexpectedly succeeded\nstdout: ${r.stdout}\nstderr: ${r.stderr}`
        )
    )
  )

export interface Running {
  readonly child: ChildProcess
  /** The next stdout line, or a failure naming what was awaited (with stderr so far). */
  readonly nextLine: (what: string, timeoutMs?: number) => Effect.Effect<string>
  readonly stderr: () => string
  /** Resolves with the exit code. */
  readonly exit: Effect.Effect<number>
}

/** Start a long-running binary (e.g. `tail`); killed with the scope. */
export const spawnCli = (args: ReadonlyArray<string>, options: RunOptions = {}) =>
  Effect.gen(function*() {
    const lines = yield* Queue.unbounded<string>()
    let err = ""
    let exitCode: number | undefined
    const exitWaiters: Array<(code: number) => void> = []
    const child = yield* Effect.acquireRelease(
      Effect.sync(() => {
        const c = spawn(process.execPath, argvFor(args, options), {
          env: baseEnv(options.env),
          stdio: ["ignore", "pipe", "pipe"]
        })
        let buffered = ""
        c.stdout.setEncoding("utf8")
        c.stdout.on("data", (chunk: string) => {
          buffered += chunk
          let i: number
          while ((i = buffered.indexOf("\n")) >= 0) {
            Queue.unsafeOffer(lines, buffered.slice(0, i))
            buffered = buffered.slice(i + 1)
          }
        })
        c.stderr.setEncoding("utf8")
        c.stderr.on("data", (chunk: string) => (err += chunk))
        c.on("exit", (code, signal) => {
          exitCode = code ?? (signal === null ? -1 : 128)
          for (const w of exitWaiters) w(exitCode)
        })
        return c
      }),
      (c) => Effect.sync(() => c.exitCode === null && c.signalCode === null && c.kill("SIGKILL"))
    )
    const running: Running = {
      child,
      nextLine: (what, timeoutMs = 15_000) =>
        Queue.take(lines).pipe(
          Effect.timeoutFail({ duration: timeoutMs, onTimeout: () => new Error("timeout") }),
          Effect.orDieWith(() => new Error(`timed out waiting for ${what}; stderr so far:\n${err}`))
        ),
      stderr: () => err,
      exit: Effect.async<number>((resume) => {
        if (exitCode !== undefined) return resume(Effect.succeed(exitCode))
        exitWaiters.push((code) => resume(Effect.succeed(code)))
      })
    }
    return running
  })

/** A directory `name` under `root`, made if missing. */
export const subdir = (root: string, name: string): string => {
  const d = Path.join(root, name)
  Fs.mkdirSync(d, { recursive: true })
  return d
}

/**
 * The real `conclave serve --ephemeral --bind 127.0.0.1:0` as a child process, its bound address read
 * from its JSON "listening" log line: the process and its `ws://` and `http://` URLs.
 */
export const spawnServe = (args: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const server = yield* spawnCli(["serve", "--ephemeral", "--bind", "127.0.0.1:0", ...args], {
      env: { CONCLAVE_LOG_FORMAT: "json" }
    })
    const address = yield* Kit.eventually(
      "the `conclave server listening` log line",
      Effect.sync(() => {
        for (const line of server.stderr().split("\n")) {
          if (!line.includes("listening")) continue
          const parsed = JSON.parse(line) as { fields?: { address?: string }; address?: string }
          const address = parsed.address ?? parsed.fields?.address
          if (address !== undefined) return Option.some(address)
        }
        return Option.none<string>()
      }),
      "15 seconds"
    )
    return { server, url: `ws://${address}`, http: `http://${address}` } as const
  })

// ---- in-process server ----------------------------------------------------------------------

export interface ServerOptions {
  readonly admins?: ReadonlyArray<string>
  readonly port?: number
  /** SQLite file; in-memory when absent. */
  readonly filename?: string
  /** Other server settings (limits). */
  readonly config?: Partial<ServerConfig.ServerConfigShape>
}

/** Start a server (the kit's recipe, rate limits off) in its own scope; `stop` drains it. */
export const startServer = (options: ServerOptions = {}) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const running = yield* Kit.startServer({
      ...Kit.noLimits,
      admins: Either.getOrThrow(Admins.parse(options.admins ?? [])),
      port: options.port ?? 0,
      store: options.filename === undefined ? "memory" : SqliteStore.layer({ filename: options.filename }),
      ...options.config
    }).pipe(Scope.extend(scope), Effect.orDie)
    return { url: running.url, port: running.port, stop: Scope.close(scope, Exit.void) } as const
  })

export class TestServer extends Context.Tag("cli-test/TestServer")<TestServer, { readonly url: string }>() {
  static layer = (options: ServerOptions = {}) =>
    Layer.scoped(
      TestServer,
      Effect.acquireRelease(startServer(options), (s) => s.stop).pipe(Effect.map((s) => ({ url: s.url })))
    )
}
