// End-to-end support: the real `conclave` binary (serve + bridge) as child processes, driven by the
// MCP SDK client over stdio. Requires `npx tsc -b packages/cli` first (the binary runs from dist/).
import type { Identity as IdentityT } from "@conclave/client"
import { Connection, Identity, LocalConfig } from "@conclave/client"
import * as Kit from "@conclave/testkit"
import { Client } from "@modelcontextprotocol/sdk/client/index.js"
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js"
import type { Notification } from "@modelcontextprotocol/sdk/types.js"
import { Duration, Effect, Option, type Scope } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"

const here = Path.dirname(fileURLToPath(import.meta.url))
/**
 * The binary under test: this checkout's, or `CONCLAVE_TEST_BIN` (the `bin/conclave.js` of another
 * built checkout, e.g. an old commit, to show that a test fails without its fix).
 */
export const BIN = process.env["CONCLAVE_TEST_BIN"] ?? Path.resolve(here, "../../cli/bin/conclave.js")
/** The server is always this checkout's (as the CLI tests' in-process one): only the bridge is swapped. */
const SERVER_BIN = Path.resolve(here, "../../cli/bin/conclave.js")
const DIST_BIN = Path.resolve(Path.dirname(BIN), "../dist/bin.js")

export const assertBuilt = () => {
  if (!Fs.existsSync(DIST_BIN)) throw new Error(`${DIST_BIN} is missing: run \`npx tsc -b packages/cli\` first`)
}

const childEnv = (): NodeJS.ProcessEnv => {
  const env: NodeJS.ProcessEnv = { ...process.env, CONCLAVE_LOG_FORMAT: "json", NO_COLOR: "1" }
  delete env["CONCLAVE_LOG_LEVEL"]
  return env
}

export interface ServerProcess {
  readonly url: string
  readonly port: number
  readonly proc: ChildProcess
  readonly stderr: () => string
  readonly kill: (signal: NodeJS.Signals) => Effect.Effect<void>
}

/** `conclave serve` on loopback; `bind` defaults to port 0. */
export const startServer = (options: {
  readonly dataDir?: string
  readonly bind?: string
  readonly admins?: ReadonlyArray<string>
  /** More `serve` flags. */
  readonly args?: ReadonlyArray<string>
} = {}): Effect.Effect<ServerProcess, never, Scope.Scope> =>
  Effect.gen(function*() {
    const args = [SERVER_BIN, "serve", "--bind", options.bind ?? "127.0.0.1:0"]
    if (options.dataDir === undefined) args.push("--ephemeral")
    else args.push("--data-dir", options.dataDir)
    for (const a of options.admins ?? []) args.push("--admin", a)
    args.push(...(options.args ?? []))
    const proc = yield* Effect.acquireRelease(
      Effect.sync(() => spawn(process.execPath, args, { env: childEnv(), stdio: ["ignore", "ignore", "pipe"] })),
      (p) => killProcess(p, "SIGKILL")
    )
    let err = ""
    proc.stderr!.on("data", (b: Buffer) => void (err += b.toString("utf8")))
    let port: number | undefined
    yield* Kit.eventually(
      "the server's listening log line",
      () => {
        port ??= listeningPort(err)
        return port !== undefined || proc.exitCode !== null
      },
      "30 seconds" // a cold start on a loaded host can take >10 s
    ).pipe(Effect.orDie)
    if (port === undefined) return yield* Effect.dieMessage(`serve exited early:\n${err}`)
    return {
      url: `ws://127.0.0.1:${port}`,
      port,
      proc,
      stderr: () => err,
      kill: (signal) => killProcess(proc, signal)
    }
  })

const listeningPort = (stderr: string): number | undefined => {
  for (const line of stderr.split("\n")) {
    if (!line.includes("listening")) continue
    try {
      const o = JSON.parse(line) as Record<string, unknown>
      const address = o["address"] ?? (o["annotations"] as Record<string, unknown> | undefined)?.["address"]
      const m = /:(\d+)$/.exec(String(address))
      if (m) return Number(m[1])
    } catch {
      const m = /address="?[^\s"]*:(\d+)/.exec(line)
      if (m) return Number(m[1])
    }
  }
  return undefined
}

export const killProcess = (p: ChildProcess, signal: NodeJS.Signals) =>
  Effect.async<void>((resume) => {
    if (p.exitCode !== null || p.signalCode !== null) return resume(Effect.void)
    p.once("exit", () => resume(Effect.void))
    p.kill(signal)
  })

/** Register `username/machine` on `url` with the key in `configDir` (created if missing), and record it. */
export const register = (configDir: string, url: string, username: string, machine = "workstation") =>
  Effect.gen(function*() {
    const { identity } = yield* Identity.loadOrCreate(configDir).pipe(Effect.orDie)
    yield* Effect.scoped(
      Connection.connect({
        url,
        handle: `cli-${process.pid}`,
        client: "cli",
        identity,
        register: { username, machine }
      })
    ).pipe(Effect.orDie)
    yield* addRegistration(configDir, url, username, machine)
    return identity
  })

export const addRegistration = (configDir: string, url: string, username: string, machine = "workstation") =>
  Effect.gen(function*() {
    const config = yield* LocalConfig.load(configDir).pipe(Effect.orDie)
    yield* LocalConfig.save(configDir, LocalConfig.upsertRegistration(config, { url, username, machine })).pipe(
      Effect.orDie
    )
  })

export const setConfig = (configDir: string, f: (c: LocalConfig.LocalConfig) => LocalConfig.LocalConfig) =>
  Effect.gen(function*() {
    const config = yield* LocalConfig.load(configDir).pipe(Effect.orDie)
    yield* LocalConfig.save(configDir, f(config)).pipe(Effect.orDie)
  })

/** A protocol connection (e.g. a human `cli` client). */
export const connectAs = (
  url: string,
  identity: IdentityT.Identity,
  handle: string,
  client: "cli" | "bridge" = "cli"
) => Connection.connect({ url, handle, client, identity }).pipe(Effect.orDie)

export const post = (c: Connection.Connection, channel: string, text: string) =>
  c.request({ type: "channel_msg", channel, payload: { kind: "plain", text }, reply_to: null }).pipe(Effect.orDie)

export interface ToolResult {
  readonly text: string
  readonly isError: boolean
}

export interface BridgeProcess {
  readonly client: Client
  readonly transport: StdioClientTransport
  readonly notifications: Array<Notification>
  readonly stderr: () => string
  readonly call: (name: string, args?: Record<string, unknown>) => Effect.Effect<ToolResult>
  readonly tools: Effect.Effect<ReadonlyArray<string>>
  /** Channel notifications (params) so far. */
  readonly channel: () => Array<{ content: string; meta: Record<string, string> }>
  readonly listChanged: () => number
  readonly pid: number
}

/** Spawn `conclave bridge` and connect an MCP SDK client to it. */
export const startBridge = (options: {
  readonly configDir: string
  readonly args?: ReadonlyArray<string>
  readonly cwd?: string
  /** Start the bridge with this command line instead (e.g. through a shell); `args` is then ignored. */
  readonly command?: readonly [string, ...Array<string>]
}): Effect.Effect<BridgeProcess, never, Scope.Scope> =>
  Effect.gen(function*() {
    const [command, ...args] = options.command ??
      [process.execPath, BIN, "--config-dir", options.configDir, "bridge", ...(options.args ?? [])]
    const transport = new StdioClientTransport({
      command,
      args,
      cwd: options.cwd ?? options.configDir,
      env: childEnv() as Record<string, string>,
      stderr: "pipe"
    })
    let err = ""
    transport.stderr?.on("data", (b: Buffer) => void (err += b.toString("utf8")))
    const client = new Client({ name: "e2e", version: "1" }, { capabilities: {} })
    const notifications: Array<Notification> = []
    client.fallbackNotificationHandler = async (n) => void notifications.push(n)
    yield* Effect.acquireRelease(
      Effect.tryPromise(() => client.connect(transport)).pipe(
        Effect.catchAll((e) => Effect.dieMessage(`bridge did not start: ${String(e)}\n${err}`))
      ),
      () => Effect.promise(() => client.close().catch(() => undefined))
    )
    const call = (name: string, args: Record<string, unknown> = {}) =>
      Effect.promise(() => client.callTool({ name, arguments: args })).pipe(
        Effect.map((r) => ({
          text: (r.content as Array<{ text: string }>).map((c) => c.text).join("\n"),
          isError: r.isError === true
        }))
      )
    return {
      client,
      transport,
      notifications,
      stderr: () => err,
      call,
      tools: Effect.promise(() => client.listTools()).pipe(Effect.map((r) => r.tools.map((t) => t.name))),
      channel: () =>
        notifications.filter((n) => n.method === "notifications/claude/channel").map((n) =>
          n.params as unknown as { content: string; meta: Record<string, string> }
        ),
      listChanged: () => notifications.filter((n) => n.method === "notifications/tools/list_changed").length,
      pid: transport.pid ?? -1
    }
  })

/** Call until the tool succeeds (links connect asynchronously). */
export const callOk = (b: BridgeProcess, name: string, args: Record<string, unknown> = {}) =>
  Effect.gen(function*() {
    const r = yield* b.call(name, args)
    if (r.isError) return yield* Effect.dieMessage(`${name} ${JSON.stringify(args)} failed: ${r.text}\n${b.stderr()}`)
    return r.text
  })

/** Wait (bounded) until every link of the bridge is up, as `whoami` reports it. */
export const eventuallyUp = (b: BridgeProcess, ms = 10_000) => {
  let text = ""
  return Kit.eventually(
    () => `links up; \`whoami\` said:\n${text}`,
    b.call("whoami").pipe(Effect.map((r) => {
      text = r.text
      return text.includes("; link up;") && !text.includes("; link down;") ? Option.some(true) : Option.none()
    })),
    Duration.millis(ms),
    "20 millis"
  ).pipe(Effect.asVoid)
}
