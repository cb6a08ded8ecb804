/**
 * `conclave doctor` (issue 23, item 8): check the key, `config.toml`, every registration (server
 * reachable, key known, protocol version, clock skew) and Claude Code's MCP entry for this
 * directory; print one line per check and one fix per problem; exit 1 when there is a problem.
 *
 * @since 0.1.0
 */
import { Connection, Identity, LocalConfig } from "@conclave/client"
import { Errors, Names } from "@conclave/protocol"
import * as Command from "@effect/cli/Command"
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { CliError } from "../CliError.js"
import * as Ctx from "../Context.js"
import * as Flags from "../Flags.js"
import * as Output from "../Output.js"

/** One check: `ok` with what was found, or a problem with its fix. @since 0.1.0 @category models */
export interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
  readonly fix: string | null
}

const ok = (name: string, detail: string): Check => ({ name, ok: true, detail, fix: null })
const problem = (name: string, detail: string, fix: string): Check => ({ name, ok: false, detail, fix })

/** Clock skew beyond which signed handshakes and history windows go wrong. */
const MAX_SKEW_MS = 60_000

const REGISTER = (url: string, username: string) => `conclave register --server ${url} --username ${username}`

const httpOf = (url: string) => url.replace(/^ws(s?):\/\//, "http$1://").replace(/\/+$/, "")

/** The server's clock, from the `Date` header of `/health` (second resolution). */
const serverTime = (url: string) =>
  Effect.tryPromise({
    try: (signal) => fetch(`${httpOf(url)}/health`, { signal }),
    catch: () => "unreachable"
  }).pipe(
    Effect.map((response) => {
      const date = response.headers.get("date")
      const ms = date === null ? NaN : Date.parse(date)
      return Number.isNaN(ms) ? Option.none<number>() : Option.some(ms)
    }),
    Effect.timeout("5 seconds"),
    Effect.orElseSucceed(() => Option.none<number>())
  )

const checkRegistration = (identity: Identity.Identity, reg: LocalConfig.Registration) =>
  Effect.gen(function*() {
    const name = `server ${reg.url}`
    const connected = yield* Effect.scoped(
      Connection.connect({ url: reg.url, handle: Ctx.cliHandle(), client: "cli", identity }).pipe(
        Effect.map((conn) => conn.path)
      )
    ).pipe(Effect.either)
    const checks: Array<Check> = []
    if (connected._tag === "Left") {
      const e = connected.left
      if (e._tag === "AuthRejected" && e.error.kind === "version_mismatch") {
        checks.push(problem(
          name,
          `protocol version mismatch (this CLI speaks ${e.error.theirs}, the server ${e.error.ours})`,
          "install the same conclave version as the server (npm install -g conclave@<server version>)"
        ))
      } else if (
        e._tag === "AuthRejected" && e.error.kind === "unauthorized" && e.error.message === Errors.Messages.unknownKey
      ) {
        checks.push(problem(
          name,
          "reachable, but it does not know this machine's key (never registered, or an --ephemeral server restarted)",
          REGISTER(reg.url, reg.username)
        ))
      } else {
        checks.push(problem(
          name,
          e.message,
          Connection.fixFor(e) ?? `check that \`conclave serve\` runs there and the URL is right`
        ))
      }
      return checks
    }
    const path = connected.right
    if (path.user !== reg.username || path.machine !== reg.machine) {
      checks.push(problem(
        name,
        `this key is ${path.user}/${path.machine} there, config.toml says ${reg.username}/${reg.machine}`,
        `conclave server add ${reg.url} --username ${path.user} --machine ${path.machine}`
      ))
    } else {
      checks.push(ok(name, `reachable; authenticated as ${Names.renderPath(path)}`))
    }
    const theirs = yield* serverTime(reg.url)
    const now = yield* Clock.currentTimeMillis
    if (Option.isSome(theirs)) {
      const skew = now - theirs.value
      checks.push(
        Math.abs(skew) > MAX_SKEW_MS
          ? problem(
            `clock vs ${reg.url}`,
            `this machine's clock is ${Math.round(skew / 1000)} s ${skew > 0 ? "ahead of" : "behind"} the server's`,
            "enable time synchronisation (e.g. `timedatectl set-ntp true`)"
          )
          : ok(`clock vs ${reg.url}`, `within ${Math.ceil(Math.max(1000, Math.abs(skew)) / 1000)} s`)
      )
    }
    return checks
  })

/** Claude Code's entry for this directory in `~/.claude.json` (local or project scope), or a user-scope one. */
const checkClaude = (cwd: string) =>
  Effect.gen(function*() {
    const home = yield* Config.string("HOME").pipe(Effect.orElseSucceed(() => Os.homedir()))
    const configDir = yield* Config.string("CLAUDE_CONFIG_DIR").pipe(Effect.orElseSucceed(() => ""))
    const file = configDir !== "" ? Path.join(configDir, ".claude.json") : Path.join(home, ".claude.json")
    const add = "claude mcp add --scope local conclave -- conclave bridge"
    const flag = "start Claude Code with `claude --dangerously-load-development-channels server:conclave`"
    const text = yield* Effect.sync(() => {
      try {
        return Fs.readFileSync(file, "utf8")
      } catch {
        return undefined
      }
    })
    const checks: Array<Check> = []
    if (text === undefined) {
      checks.push(problem("Claude Code MCP entry", `no ${file} (Claude Code not set up for this user)`, add))
    } else {
      let parsed: Record<string, unknown> = {}
      try {
        parsed = JSON.parse(text) as Record<string, unknown>
      } catch {
        // treated as no entry
      }
      const servers = (o: unknown): Record<string, unknown> =>
        typeof o === "object" && o !== null && "mcpServers" in o && typeof o.mcpServers === "object" &&
          o.mcpServers !== null
          ? o.mcpServers as Record<string, unknown>
          : {}
      const projects = typeof parsed["projects"] === "object" && parsed["projects"] !== null
        ? parsed["projects"] as Record<string, unknown>
        : {}
      const local = servers(projects[cwd])["conclave"]
      const projectFile = Path.join(cwd, ".mcp.json")
      const project = Fs.existsSync(projectFile) && /"conclave"\s*:/.test(Fs.readFileSync(projectFile, "utf8"))
      const user = servers(parsed)["conclave"]
      if (user !== undefined) {
        checks.push(problem(
          "Claude Code MCP entry",
          "conclave is added with --scope user: a connected bridge starts in every session of every directory",
          `claude mcp remove --scope user conclave && ${add}`
        ))
      } else if (local === undefined && !project) {
        checks.push(problem("Claude Code MCP entry", `no conclave MCP server for ${cwd}`, add))
      } else {
        const entry = JSON.stringify(local ?? {})
        checks.push(
          entry.includes("--server") || entry.includes("--as")
            ? problem(
              "Claude Code MCP entry",
              "the entry passes --server or --as (the bridge then ignores other registrations or never renames)",
              `claude mcp remove conclave && ${add}`
            )
            : ok("Claude Code MCP entry", `conclave bridge for ${cwd}`)
        )
      }
    }
    // Whether a running session has the flag cannot be read from here: say what it must be.
    checks.push(ok("channels flag", `cannot be checked from outside a session: ${flag}`))
    return checks
  })

const run = (json: boolean) =>
  Effect.gen(function*() {
    const dir = yield* Ctx.configDir
    const cwd = yield* Effect.sync(() => process.cwd())
    const checks: Array<Check> = []
    const identity = yield* Identity.load(dir).pipe(Effect.either)
    if (identity._tag === "Left") {
      checks.push(problem(
        "key",
        identity.left._tag === "KeyMissing" ? `no key file at ${Identity.keyPath(dir)}` : identity.left.message,
        identity.left._tag === "KeyMissing"
          ? "conclave register --server ws://HOST:4390 --username NAME (creates the key)"
          : `move the damaged ${Identity.keyPath(dir)} away, then run conclave key and register again`
      ))
    } else {
      checks.push(ok("key", `${Identity.keyPath(dir)} (public key ${identity.right.publicKeyText})`))
    }
    const config = yield* LocalConfig.load(dir).pipe(Effect.either)
    if (config._tag === "Left") {
      checks.push(problem("config", config.left.message, `fix or remove ${LocalConfig.configPath(dir)}`))
    } else if (config.right.servers.length === 0) {
      checks.push(problem(
        "registrations",
        `none in ${LocalConfig.configPath(dir)}`,
        "conclave register --server ws://HOST:4390 --username NAME"
      ))
    } else {
      checks.push(
        ok("config", `${config.right.servers.length} registration(s), default level ${config.right.default_permission}`)
      )
      if (identity._tag === "Right") {
        const id = identity.right
        const results = yield* Effect.forEach(config.right.servers, (reg) => checkRegistration(id, reg), {
          concurrency: "unbounded"
        })
        for (const r of results) checks.push(...r)
      }
    }
    checks.push(...(yield* checkClaude(cwd)))

    const problems = checks.filter((c) => !c.ok)
    if (json) {
      yield* Output.json({ ok: problems.length === 0, checks })
    } else {
      for (const c of checks) {
        yield* Output.line(`${c.ok ? "ok  " : "FAIL"}  ${c.name}: ${c.detail}`)
        if (c.fix !== null) yield* Output.line(`      fix: ${c.fix}`)
      }
    }
    if (problems.length > 0) {
      return yield* new CliError({ message: `${problems.length} problem(s) found; each FAIL line above has its fix` })
    }
  })

/** `conclave doctor`. @since 0.1.0 @category commands */
export const doctor = Command.make("doctor", { json: Flags.json }, (args) => run(args.json)).pipe(
  Command.withDescription(
    "Check the key, config.toml, each registration (reachable, key known, version, clock skew) and Claude Code's MCP entry for this directory; one fix per problem."
  )
)
