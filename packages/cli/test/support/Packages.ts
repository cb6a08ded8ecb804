// Test support for the install test (issue 21): `npm pack` every publishable workspace package, and a
// loopback npm registry that serves those tarballs under their real names, so that `npm install -g`
// resolves the packed `@conclave/*` packages as it would once they are published, and public
// dependencies from npm.
import { Effect } from "effect"
import { execFile } from "node:child_process"
import * as Crypto from "node:crypto"
import * as Fs from "node:fs"
import * as Http from "node:http"
import type * as Net from "node:net"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

export const ROOT = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "../../../..")

/** The workspace directories of the packages that are published (the root and `reliability` are private). */
export const PUBLISHED = ["protocol", "client", "server", "bridge", "console", "cli"] as const

export interface Packed {
  readonly name: string
  readonly version: string
  readonly file: string
  /** The package.json that went into the tarball. */
  readonly manifest: Record<string, unknown>
}

export interface Run {
  readonly stdout: string
  readonly stderr: string
  readonly code: number
}

/** Run a command to completion (bounded), capturing both streams. */
export const exec = (
  command: string,
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: NodeJS.ProcessEnv; readonly timeoutMs: number }
) =>
  Effect.async<Run>((resume) => {
    const child = execFile(
      command,
      [...args],
      {
        timeout: options.timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
        env: options.env ?? process.env,
        ...(options.cwd === undefined ? {} : { cwd: options.cwd })
      },
      (error, stdout, stderr) => {
        const code = child.exitCode ?? (error !== null && typeof error.code === "number" ? error.code : -1)
        resume(Effect.succeed({ stdout, stderr, code }))
      }
    )
    return Effect.sync(() => child.kill("SIGKILL"))
  })

/**
 * Where an `npm install` spent its time, read from the debug log that `--timing --logs-dir DIR`
 * writes: resolving the tree (`idealTree`: packuments, fetched again even with a warm cache),
 * unpacking it (`reify:unpack`), each install script (`build:run:install:<path>`), and the whole
 * command. Milliseconds; a phase npm did not log is absent.
 */
export interface InstallTiming {
  readonly totalMs: number | undefined
  readonly resolveMs: number | undefined
  readonly unpackMs: number | undefined
  /** Install scripts by package name (`better-sqlite3`, `msgpackr-extract`, …). */
  readonly scriptsMs: ReadonlyMap<string, number>
}

const TIMING = /\btiming (command:install|idealTree|reify:unpack|build:run:install:\S+) Completed in (\d+)ms/

export const parseInstallTiming = (log: string): InstallTiming => {
  let totalMs: number | undefined
  let resolveMs: number | undefined
  let unpackMs: number | undefined
  const scriptsMs = new Map<string, number>()
  for (const line of log.split("\n")) {
    const m = TIMING.exec(line)
    if (m === null) continue
    const [, phase, ms] = m as unknown as [string, string, string]
    if (phase === "command:install") totalMs = Number(ms)
    else if (phase === "idealTree") resolveMs = Number(ms)
    else if (phase === "reify:unpack") unpackMs = Number(ms)
    else {
      const path = phase.slice("build:run:install:".length)
      scriptsMs.set(path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length), Number(ms))
    }
  }
  return { totalMs, resolveMs, unpackMs, scriptsMs }
}

/** The debug logs `npm --logs-dir dir` wrote, concatenated. */
export const readNpmLogs = (dir: string): string =>
  Fs.existsSync(dir)
    ? Fs.readdirSync(dir)
      .filter((f) => f.endsWith(".log"))
      .map((f) => Fs.readFileSync(Path.join(dir, f), "utf8"))
      .join("\n")
    : ""

export const npm = process.platform === "win32" ? "npm.cmd" : "npm"

/**
 * This process's environment without the `npm_*` variables an outer `npm`/`npx` left in it (they
 * would act as flags of the project the tests run in, e.g. its allow-scripts list).
 */
export const npmEnv = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.toLowerCase().startsWith("npm_")) env[k] = v
  return { ...env, npm_config_update_notifier: "false", ...extra }
}

/** `npm pack` each published package into `dir` (they must be built: `npx tsc -b`). */
export const packAll = (dir: string) =>
  Effect.forEach(PUBLISHED, (workspace) =>
    Effect.gen(function*() {
      const cwd = Path.join(ROOT, "packages", workspace)
      const r = yield* exec(npm, ["pack", "--json", "--ignore-scripts", "--pack-destination", dir], {
        cwd,
        env: npmEnv(),
        timeoutMs: 120_000
      })
      if (r.code !== 0) return yield* Effect.dieMessage(`npm pack in packages/${workspace} failed:\n${r.stderr}`)
      const [info] = JSON.parse(r.stdout) as Array<{ name: string; version: string; filename: string }>
      const manifest = JSON.parse(Fs.readFileSync(Path.join(cwd, "package.json"), "utf8")) as Record<string, unknown>
      return {
        name: info!.name,
        version: info!.version,
        file: Path.join(dir, info!.filename),
        manifest
      } satisfies Packed
    }))

const packument = (p: Packed, base: string) => {
  const bytes = Fs.readFileSync(p.file)
  const tarball = `${base}/-/local/${encodeURIComponent(Path.basename(p.file))}`
  return {
    name: p.name,
    "dist-tags": { latest: p.version },
    versions: {
      [p.version]: {
        ...p.manifest,
        _id: `${p.name}@${p.version}`,
        dist: {
          tarball,
          shasum: Crypto.createHash("sha1").update(bytes).digest("hex"),
          integrity: `sha512-${Crypto.createHash("sha512").update(bytes).digest("base64")}`
        }
      }
    }
  }
}

/**
 * A registry on 127.0.0.1 for the lifetime of the scope serving the packed packages under their
 * names; npm is pointed at it for the `@conclave` scope only, so public dependencies come from the
 * registry npm is configured with (and its cache).
 */
export const localRegistry = (packed: ReadonlyArray<Packed>) =>
  Effect.acquireRelease(
    Effect.async<{ readonly url: string; readonly server: Http.Server; readonly strays: () => number }>((resume) => {
      let strays = 0
      let base = ""
      const byName = new Map(packed.map((p) => [p.name, p]))
      const byFile = new Map(packed.map((p) => [Path.basename(p.file), p]))
      const server = Http.createServer((req, res) => {
        const path = (req.url ?? "/").split("?")[0]!
        if (path.startsWith("/-/local/")) {
          const p = byFile.get(decodeURIComponent(path.slice("/-/local/".length)))
          if (p === undefined) return void res.writeHead(404).end()
          res.writeHead(200, { "content-type": "application/octet-stream" })
          return void Fs.createReadStream(p.file).pipe(res)
        }
        const local = byName.get(decodeURIComponent(path.slice(1)))
        if (local !== undefined) {
          res.writeHead(200, { "content-type": "application/json" })
          return void res.end(JSON.stringify(packument(local, base)))
        }
        // Only the @conclave scope is pointed here (`--@conclave:registry`); anything else is a mistake.
        strays += 1
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ error: "not found" }))
      })
      server.listen(0, "127.0.0.1", () => {
        base = `http://127.0.0.1:${(server.address() as Net.AddressInfo).port}`
        resume(Effect.succeed({ url: base + "/", server, strays: () => strays }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.close(() => resume(Effect.void))
        server.closeAllConnections()
      })
  )
