/**
 * `config.toml`: registrations and the local permission policy (SPEC §5.3, D-12 `loop_limit`, D-28).
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Fs from "node:fs/promises"
import * as Path from "node:path"
import * as Toml from "smol-toml"
import * as Directory from "./Directory.js"
import * as Permission from "./Permission.js"
import * as Url from "./Url.js"

/** @since 0.1.0 @category models */
export type Level = Permission.Level

/** One `[[servers]]` entry. @since 0.1.0 @category models */
export interface Registration {
  readonly url: string
  readonly username: string
  readonly machine: string
}

/** One `[[overrides]]` entry; `channel: null` is the whisper scope. @since 0.1.0 @category models */
export interface Override {
  readonly server: string
  readonly channel: string | null
  readonly level: Level
}

/** @since 0.1.0 @category models */
export interface LocalConfig {
  readonly default_permission: Level
  /** `null` = the default (20); `0` = loop guard off (D-12). */
  readonly loop_limit: number | null
  /**
   * Relay Claude Code's permission requests to the consoles of this user on every linked server
   * (SPEC §4.5.3 remote approvers); default on. Absent from a file written before it existed.
   */
  readonly permission_relay?: boolean
  readonly servers: ReadonlyArray<Registration>
  readonly overrides: ReadonlyArray<Override>
}

/** All defaults: `notify`, no servers, no overrides. @since 0.1.0 @category constructors */
export const empty: LocalConfig = { default_permission: "notify", loop_limit: null, servers: [], overrides: [] }

/** The file cannot be read, parsed, decoded or written. @since 0.1.0 @category errors */
export class ConfigError extends Data.TaggedError("ConfigError")<{
  readonly path: string
  readonly detail: string
  readonly line?: number
}> {
  override get message() {
    return `invalid config file \`${this.path}\`${
      this.line === undefined ? "" : ` (line ${this.line})`
    }: ${this.detail}`
  }
}

/** `<dir>/config.toml`. @since 0.1.0 @category paths */
export const configPath = (dir: string): string => Path.join(dir, "config.toml")

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

const actual = (u: unknown): string => (typeof u === "string" ? `\`${u}\`` : JSON.stringify(u) ?? String(u))

const LevelSchema = Schema.Unknown.pipe(
  Schema.filter((u): u is Level => Permission.isLevel(u), {
    message: (issue) => `unknown permission level ${actual(issue.actual)} (expected mute, notify, converse, or act)`
  })
)
const text = (what: string) =>
  Schema.String.annotations({ message: (issue) => `expected ${what} (a string), got ${actual(issue.actual)}` })
const tables = <S extends Schema.Schema.Any>(schema: S, key: string) =>
  Schema.Array(schema).annotations({
    message: (issue) => `expected \`[[${key}]]\` tables, got ${actual(issue.actual)}`
  })

const FileSchema = Schema.Struct({
  default_permission: Schema.optionalWith(LevelSchema, { default: () => "notify" as const }),
  loop_limit: Schema.optionalWith(
    Schema.NullOr(
      Schema.Unknown.pipe(
        Schema.filter((u): u is number => typeof u === "number" && Number.isSafeInteger(u) && u >= 0, {
          message: (issue) => `expected a non-negative integer, got ${actual(issue.actual)}`
        })
      )
    ),
    { default: () => null }
  ),
  permission_relay: Schema.optionalWith(
    Schema.Unknown.pipe(
      Schema.filter((u): u is boolean => typeof u === "boolean", {
        message: (issue) => `expected true or false, got ${actual(issue.actual)}`
      })
    ),
    { exact: true }
  ),
  servers: Schema.optionalWith(
    tables(
      Schema.Struct({ url: text("a URL"), username: text("a username"), machine: text("a machine name") }),
      "servers"
    ),
    { default: () => [] }
  ),
  overrides: Schema.optionalWith(
    tables(
      Schema.Struct({
        server: text("a server URL"),
        channel: Schema.optionalWith(Schema.NullOr(text("a channel name")), { default: () => null }),
        level: LevelSchema
      }),
      "overrides"
    ),
    { default: () => [] }
  )
})

const decodeFile = Schema.decodeUnknownEither(FileSchema, { errors: "first", onExcessProperty: "ignore" })

const describeIssue = (error: ParseResult.ParseError): string => {
  const issues = ParseResult.ArrayFormatter.formatErrorSync(error)
  const first = issues[0]
  if (first === undefined) return "invalid content"
  const where = first.path.map((p, i) => typeof p === "number" ? `[${p}]` : `${i === 0 ? "" : "."}${String(p)}`).join(
    ""
  )
  const message = first.message === "is missing" ? "required key is missing" : first.message
  return where === "" ? message : `\`${where}\`: ${message}`
}

/** Best-effort line of the value a schema error points at: the n-th `[[key]]` table, or the `key =` line. */
const lineOf = (text: string, path: ReadonlyArray<PropertyKey>): number | undefined => {
  const [key, index] = path
  if (typeof key !== "string") return undefined
  const lines = text.split(/\r?\n/)
  const escaped = key.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
  if (typeof index === "number") {
    const tables = lines.flatMap((l, i) => (new RegExp(`^\\s*\\[\\[\\s*${escaped}\\s*\\]\\]`).test(l) ? [i + 1] : []))
    if (tables[index] !== undefined) return tables[index]
  }
  const at = lines.findIndex((l) => new RegExp(`^\\s*${escaped}\\s*=`).test(l))
  return at < 0 ? undefined : at + 1
}

/** Normalize URLs (D-28); values that are not URLs are kept as written. */
const normalizeConfig = (c: LocalConfig): LocalConfig => ({
  ...c,
  servers: c.servers.map((s) => ({ ...s, url: Url.normalizeOrSelf(s.url) })),
  overrides: c.overrides.map((o) => ({ ...o, server: Url.normalizeOrSelf(o.server) }))
})

/**
 * Parse the text of a config file (exposed for tests and `--config` previews).
 *
 * @since 0.1.0
 * @category parsing
 */
export const parse = (path: string, text: string): Either.Either<LocalConfig, ConfigError> => {
  let raw: unknown
  try {
    raw = Toml.parse(text)
  } catch (cause) {
    if (cause instanceof Toml.TomlError) {
      const detail = cause.message.split("\n")[0] ?? "syntax error"
      return Either.left(new ConfigError({ path, detail, line: cause.line }))
    }
    return Either.left(new ConfigError({ path, detail: String(cause) }))
  }
  return decodeFile(raw).pipe(
    Either.map(normalizeConfig),
    Either.mapLeft((error) => {
      const line = lineOf(text, ParseResult.ArrayFormatter.formatErrorSync(error)[0]?.path ?? [])
      return new ConfigError({ path, detail: describeIssue(error), ...(line === undefined ? {} : { line }) })
    })
  )
}

/**
 * Render as TOML (levels lowercase; an override without channel omits the key).
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (config: LocalConfig): string => {
  const c = normalizeConfig(config)
  const doc: Record<string, unknown> = { default_permission: c.default_permission }
  if (c.loop_limit !== null) doc.loop_limit = c.loop_limit
  if (c.permission_relay !== undefined) doc.permission_relay = c.permission_relay
  if (c.servers.length > 0) {
    doc.servers = c.servers.map((s) => ({ url: s.url, username: s.username, machine: s.machine }))
  }
  if (c.overrides.length > 0) {
    doc.overrides = c.overrides.map((o) =>
      o.channel === null
        ? { server: o.server, level: o.level }
        : { server: o.server, channel: o.channel, level: o.level }
    )
  }
  return Toml.stringify(doc) + "\n"
}

const ioError = (path: string, cause: unknown) =>
  new ConfigError({ path, detail: cause instanceof Error ? cause.message : String(cause) })

/**
 * Load `<dir>/config.toml`; a missing file is `empty`. A file that exists but fails to parse or
 * decode is a `ConfigError` naming the file (and the line when known).
 *
 * @since 0.1.0
 * @category io
 */
export const load = (dir: string): Effect.Effect<LocalConfig, ConfigError> => {
  const path = configPath(dir)
  return Effect.tryPromise({
    try: () => Fs.readFile(path, "utf8"),
    catch: (cause) => cause
  }).pipe(
    Effect.map(Option.some),
    Effect.catchAll((cause) =>
      typeof cause === "object" && cause !== null && (cause as { readonly code?: unknown }).code === "ENOENT"
        ? Effect.succeed(Option.none<string>())
        : Effect.fail(ioError(path, cause))
    ),
    Effect.flatMap(Option.match({
      onNone: () => Effect.succeed(empty),
      onSome: (text) => parse(path, text)
    }))
  )
}

/**
 * Write `<dir>/config.toml` atomically: `config.toml.<pid>.tmp` in the same directory, then rename.
 * Creates the directory.
 *
 * @since 0.1.0
 * @category io
 */
export const save = (dir: string, config: LocalConfig): Effect.Effect<void, ConfigError> => {
  const path = configPath(dir)
  const tmp = `${path}.${process.pid}.tmp`
  const text = render(config)
  return Effect.tryPromise({
    try: async () => {
      Directory.makeSync(dir)
      try {
        const handle = await Fs.open(tmp, "w", 0o600)
        try {
          await handle.writeFile(text, "utf8")
          await handle.sync()
        } finally {
          await handle.close()
        }
        await Fs.rename(tmp, path)
      } catch (cause) {
        await Fs.rm(tmp, { force: true }).catch(() => undefined)
        throw cause
      }
    },
    catch: (cause) => ioError(path, cause)
  })
}

// ---------------------------------------------------------------------------------------------
// Pure helpers
// ---------------------------------------------------------------------------------------------

const sameUrl = (a: string, b: string): boolean => Url.normalizeOrSelf(a) === Url.normalizeOrSelf(b)

/**
 * Add a registration, replacing (in place) one with the same normalized URL.
 *
 * @since 0.1.0
 * @category updates
 */
export const upsertRegistration = (c: LocalConfig, r: Registration): LocalConfig => {
  const entry = { ...r, url: Url.normalizeOrSelf(r.url) }
  const index = c.servers.findIndex((s) => sameUrl(s.url, r.url))
  const servers = index < 0 ? [...c.servers, entry] : c.servers.map((s, i) => (i === index ? entry : s))
  return { ...c, servers }
}

/** The registration for `url` (normalized comparison). @since 0.1.0 @category queries */
export const findRegistration = (c: LocalConfig, url: string): Option.Option<Registration> =>
  Option.fromNullable(c.servers.find((s) => sameUrl(s.url, url)))

/**
 * Remove the registration for `url` and every override for that server. `None` when no such registration.
 *
 * @since 0.1.0
 * @category updates
 */
export const removeServer = (
  c: LocalConfig,
  url: string
): Option.Option<{ readonly config: LocalConfig; readonly removedOverrides: number }> => {
  if (!c.servers.some((s) => sameUrl(s.url, url))) return Option.none()
  const overrides = c.overrides.filter((o) => !sameUrl(o.server, url))
  return Option.some({
    config: { ...c, servers: c.servers.filter((s) => !sameUrl(s.url, url)), overrides },
    removedOverrides: c.overrides.length - overrides.length
  })
}

/**
 * Set the override for `(server, channel|whisper)`: the old one is removed, the new one appended.
 *
 * @since 0.1.0
 * @category updates
 */
export const setOverride = (c: LocalConfig, o: Override): LocalConfig => {
  const entry = { ...o, server: Url.normalizeOrSelf(o.server) }
  return {
    ...c,
    overrides: [...c.overrides.filter((x) => !(sameUrl(x.server, o.server) && x.channel === o.channel)), entry]
  }
}

/** @since 0.1.0 @category updates */
export const setDefault = (c: LocalConfig, level: Level): LocalConfig => ({ ...c, default_permission: level })
