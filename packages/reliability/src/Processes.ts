/**
 * Spawned processes for fault tests: the `conclave serve` binary over a data dir, Node fixture
 * scripts, and SIGKILL / SIGSTOP / SIGCONT helpers. Every child is killed when its scope closes.
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import * as ChildProcess from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

/** @since 0.1.0 @category errors */
export class ProcessError extends Data.TaggedError("ProcessError")<{ readonly message: string }> {}

/** The repository root (works from `src/` and `dist/`). @since 0.1.0 @category paths */
export const repoRoot: string = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..", "..")

/** The `conclave` launcher. @since 0.1.0 @category paths */
export const conclaveBin: string = Path.join(repoRoot, "packages", "cli", "bin", "conclave.js")

/** Whether the CLI has been built (`npx tsc -b packages/cli`). @since 0.1.0 @category paths */
export const conclaveBuilt = (): boolean => Fs.existsSync(Path.join(repoRoot, "packages", "cli", "dist", "bin.js"))

/** @since 0.1.0 @category models */
export interface Child {
  readonly proc: ChildProcess.ChildProcess
  readonly pid: number
  /** Resolved with the exit code (or the signal name) when the process ends. */
  readonly exited: Deferred.Deferred<number | string>
  /** Everything written to stderr so far. */
  readonly stderr: () => string
  /** Lines of stdout, as they arrive. */
  readonly stdoutLines: Array<string>
  readonly signal: (signal: NodeJS.Signals) => void
}

/** SIGKILL. @since 0.1.0 @category signals */
export const kill9 = (child: Child) => Effect.sync(() => child.signal("SIGKILL"))
/** SIGSTOP: the process freezes; its sockets stop reading. @since 0.1.0 @category signals */
export const stop = (child: Child) => Effect.sync(() => child.signal("SIGSTOP"))
/** SIGCONT. @since 0.1.0 @category signals */
export const resume = (child: Child) => Effect.sync(() => child.signal("SIGCONT"))

/**
 * Spawn a process; SIGKILL on scope close if still running.
 *
 * @since 0.1.0
 * @category constructors
 */
export const spawn = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly env?: Record<string, string>; readonly cwd?: string } = {}
): Effect.Effect<Child, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const proc = ChildProcess.spawn(command, [...args], {
        cwd: options.cwd ?? repoRoot,
        env: { ...process.env, ...options.env },
        stdio: ["pipe", "pipe", "pipe"]
      })
      const exited = Deferred.unsafeMake<number | string>(undefined as never)
      let err = ""
      const stdoutLines: Array<string> = []
      let partial = ""
      proc.stderr?.on("data", (d: Buffer) => {
        if (err.length < 1_000_000) err += d.toString()
      })
      proc.stdout?.on("data", (d: Buffer) => {
        partial += d.toString()
        const lines = partial.split("\n")
        partial = lines.pop() ?? ""
        stdoutLines.push(...lines)
      })
      proc.stdin?.on("error", () => {})
      proc.on("exit", (code, signal) => Deferred.unsafeDone(exited, Exit.succeed(code ?? signal ?? "unknown")))
      proc.on("error", () => Deferred.unsafeDone(exited, Exit.succeed("spawn-error")))
      const child: Child = {
        proc,
        pid: proc.pid ?? -1,
        exited,
        stderr: () => err,
        stdoutLines,
        signal: (signal) => {
          if (proc.exitCode === null && proc.signalCode === null) {
            try {
              proc.kill(signal)
            } catch {
              // already gone
            }
          }
        }
      }
      return child
    }),
    (child) =>
      Effect.gen(function*() {
        child.signal("SIGCONT")
        child.signal("SIGKILL")
        yield* Deferred.await(child.exited).pipe(Effect.timeout("5 seconds"), Effect.ignore)
      })
  )

/** @since 0.1.0 @category models */
export interface ServerProcess extends Child {
  readonly url: string
  readonly port: number
  /** Milliseconds from spawn to the "listening" log line. */
  readonly readyMs: number
}

/**
 * Spawn `conclave serve --bind 127.0.0.1:<port> --data-dir <dir> --rate 0 …extra` and wait for its
 * "conclave server listening" line (its `address=host:port`).
 *
 * @since 0.1.0
 * @category constructors
 */
export const spawnServer = (
  dataDir: string,
  options: {
    readonly port?: number
    readonly extraArgs?: ReadonlyArray<string>
    /** Extra `NODE_OPTIONS` for the server process (e.g. `--max-old-space-size=192`). */
    readonly nodeOptions?: string
    /**
     * Flags for the `node` running the server, placed before the script (for flags `NODE_OPTIONS`
     * refuses, such as `--expose-gc`).
     */
    readonly nodeArgs?: ReadonlyArray<string>
    /** Extra environment variables for the server process. */
    readonly env?: Record<string, string>
    /** `--store URL` instead of `--data-dir` (D-41; `dataDir` is then unused). */
    readonly store?: string
  } = {}
): Effect.Effect<ServerProcess, ProcessError, Scope.Scope> =>
  Effect.gen(function*() {
    if (!conclaveBuilt()) {
      return yield* new ProcessError({ message: "conclave is not built: run `npx tsc -b packages/cli`" })
    }
    const t0 = performance.now()
    const child = yield* spawn(process.execPath, [
      ...(options.nodeArgs ?? []),
      conclaveBin,
      "serve",
      "--bind",
      `127.0.0.1:${options.port ?? 0}`,
      ...(options.store === undefined ? ["--data-dir", dataDir] : ["--store", options.store]),
      "--rate",
      "0",
      ...(options.extraArgs ?? [])
    ], {
      env: {
        CONCLAVE_LOG_FORMAT: "text",
        NO_COLOR: "1",
        ...options.env,
        ...(options.nodeOptions === undefined ? {} : { NODE_OPTIONS: options.nodeOptions })
      }
    })
    const address = yield* Effect.async<string, ProcessError>((resume) => {
      const check = () => {
        const m = /listening[^\n]*address=\S*?:(\d+)/.exec(child.stderr())
        if (m !== null) {
          cleanup()
          resume(Effect.succeed(m[1]!))
        }
      }
      const onExit = () => {
        cleanup()
        resume(Effect.fail(new ProcessError({ message: `server exited before listening: ${child.stderr()}` })))
      }
      const cleanup = () => {
        child.proc.stderr?.off("data", check)
        child.proc.off("exit", onExit)
      }
      child.proc.stderr?.on("data", check)
      child.proc.on("exit", onExit)
      check()
      return Effect.sync(cleanup)
    }).pipe(
      Effect.timeoutFail({
        duration: "20 seconds",
        onTimeout: () => new ProcessError({ message: `server did not listen within 20 s: ${child.stderr()}` })
      })
    )
    const port = Number(address)
    return { ...child, url: `ws://127.0.0.1:${port}`, port, readyMs: Math.round(performance.now() - t0) }
  })

/** Resident set size of a process in bytes (Linux /proc). @since 0.1.0 @category metrics */
export const rssOf = (pid: number): number => {
  const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
  const m = /VmRSS:\s+(\d+) kB/.exec(status)
  return m === null ? 0 : Number(m[1]) * 1024
}

/**
 * CPU time a process has used so far (user + system, all threads), in microseconds (Linux /proc;
 * USER_HZ is 100 on Linux). 0 once the process is gone.
 *
 * @since 0.1.0
 * @category metrics
 */
export const cpuUsOf = (pid: number): number => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    // after the command's closing parenthesis: field 3 (state) first; utime and stime are fields 14, 15
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    return (Number(fields[11]) + Number(fields[12])) * 10_000
  } catch {
    return 0
  }
}

/** Open file descriptors of a process (Linux /proc). @since 0.1.0 @category metrics */
export const fdsOf = (pid: number): number => Fs.readdirSync(`/proc/${pid}/fd`).length

/** Open file descriptors of this process. @since 0.1.0 @category metrics */
export const ownFds = (): number => fdsOf(process.pid)

/**
 * `ownFds` once the count has rested (the same over 200 ms, within 5 s): a baseline that does not
 * count what a freshly started server is still opening (its store's checkpoint thread).
 *
 * @since 0.1.0
 * @category metrics
 */
export const restingFds: Effect.Effect<number> = Effect.gen(function*() {
  let last = ownFds()
  let since = yield* Clock.currentTimeMillis
  const deadline = since + 5000
  while (true) {
    yield* Effect.sleep(Duration.millis(20))
    const now = yield* Clock.currentTimeMillis
    const count = ownFds()
    if (count !== last) {
      last = count
      since = now
    } else if (now - since >= 200 || now >= deadline) {
      return count
    }
  }
})
