/**
 * `conclave setup claude|codex|gemini` (D-52): which files each harness reads its MCP servers (and,
 * for Claude Code, its hooks) from, and the edits that put `conclave bridge` there. Pure: the verb
 * (`commands/Setup.ts`) reads the files, asks for the edits and writes them.
 *
 * Every edit keeps the user's other entries: JSON files are parsed, changed at one key and written
 * back with their indentation; `config.toml` is edited as text (its comments stay) and parsed again
 * to check that nothing else moved. A file that does not parse is an error, and nothing is written.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Path from "node:path"
import { codexEdit, type Json, jsonEqual } from "./SetupCodex.js"

/** @since 0.1.0 @category models */
export type Harness = "claude" | "codex" | "gemini"

/** @since 0.1.0 @category models */
export type Scope = "local" | "user"

/** @since 0.1.0 @category constants */
export const HARNESSES: ReadonlyArray<Harness> = ["claude", "codex", "gemini"]

/** The scope used when `--scope` is not given: Claude Code's own default, and the user file elsewhere. @since 0.1.0 @category constants */
export const DEFAULT_SCOPE: Readonly<Record<Harness, Scope>> = { claude: "local", codex: "user", gemini: "user" }

/** @since 0.1.0 @category constants */
export const LABEL: Readonly<Record<Harness, string>> = { claude: "Claude Code", codex: "Codex", gemini: "Gemini CLI" }

/** Where the harness looks. @since 0.1.0 @category models */
export interface Environment {
  readonly home: string
  readonly cwd: string
  readonly env: Readonly<Record<string, string | undefined>>
}

/** How the harness starts conclave. @since 0.1.0 @category models */
export interface Launch {
  readonly command: string
  /** `bridge`, after `--config-dir DIR` when one was given. */
  readonly args: ReadonlyArray<string>
  /** The hook's command line (a shell command). */
  readonly hook: string
}

const shellQuote = (word: string): string =>
  /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`

/**
 * `conclave bridge` and `conclave hook claude`, with `--config-dir DIR` (made absolute) when the
 * setup itself was given one.
 *
 * @since 0.1.0
 * @category launch
 */
export const launch = (configDir: string | undefined, cwd: string): Launch => {
  const global = configDir === undefined ? [] : ["--config-dir", Path.resolve(cwd, configDir)]
  return {
    command: "conclave",
    args: [...global, "bridge"],
    hook: ["conclave", ...global, "hook", "claude"].map(shellQuote).join(" ")
  }
}

/** One file's edit. `changes` is empty when the file already says what it should. @since 0.1.0 @category models */
export interface Edit {
  readonly after: string
  readonly changes: ReadonlyArray<string>
}

/** A file to edit and how. @since 0.1.0 @category models */
export interface Target {
  readonly path: string
  /** Permissions for a file that does not exist yet. */
  readonly mode: number
  /** A note printed with the result (e.g. Codex reads a project file only in trusted projects). */
  readonly note?: string
  /** The edit of the current text (`undefined`: no such file), or the reason it cannot be made. */
  readonly edit: (current: string | undefined) => Either.Either<Edit, string>
}

// ---- JSON --------------------------------------------------------------------------------------

type JsonObject = { readonly [key: string]: Json }

const isObject = (v: Json | undefined): v is JsonObject => typeof v === "object" && v !== null && !Array.isArray(v)

const parseJsonObject = (path: string, text: string | undefined): Either.Either<JsonObject, string> => {
  if (text === undefined || text.trim() === "") return Either.right({})
  let value: Json
  try {
    value = JSON.parse(text) as Json
  } catch (e) {
    return Either.left(
      `cannot read \`${path}\`: it is not valid JSON (${
        e instanceof Error ? e.message : String(e)
      }); fix or move the file and run this again (nothing was changed)`
    )
  }
  return isObject(value)
    ? Either.right(value)
    : Either.left(`cannot read \`${path}\`: expected a JSON object at the top level; nothing was changed`)
}

/** The file's indentation (two spaces when it has none to copy). */
const indentOf = (text: string | undefined): string | number => {
  const m = text === undefined ? null : /^[{[][^\n]*\n([ \t]+)\S/.exec(text)
  return m === null ? 2 : m[1]!
}

const renderJson = (value: JsonObject, like: string | undefined): string =>
  JSON.stringify(value, null, indentOf(like)) + "\n"

/** Set `value` under the object at `path` (created when missing); a non-object on the way is an error. */
const setIn = (
  root: JsonObject,
  path: ReadonlyArray<string>,
  f: (current: Json | undefined) => Json,
  file: string
): Either.Either<JsonObject, string> => {
  if (path.length === 0) return Either.left("empty path")
  const [head, ...rest] = path as [string, ...Array<string>]
  const current = Object.hasOwn(root, head) ? root[head] : undefined
  if (rest.length === 0) return Either.right({ ...root, [head]: f(current) })
  if (current !== undefined && !isObject(current)) {
    return Either.left(
      `cannot edit \`${file}\`: \`${head}\` is not a JSON object there; fix it by hand (nothing was changed)`
    )
  }
  return Either.map(setIn(current ?? {}, rest, f, file), (inner) => ({ ...root, [head]: inner }))
}

const getIn = (root: JsonObject, path: ReadonlyArray<string>): Json | undefined => {
  let current: Json | undefined = root
  for (const key of path) current = isObject(current) && Object.hasOwn(current, key) ? current[key] : undefined
  return current
}

const showPath = (path: ReadonlyArray<string>): string =>
  path.map((k, i) => (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) ? (i === 0 ? k : `.${k}`) : `[${JSON.stringify(k)}]`)).join("")

/**
 * An MCP server entry at `path` in a JSON file. An existing entry whose `command` and `args` (and
 * `type`, when the wanted entry has one) match is left alone; otherwise those keys are replaced and
 * the entry's other keys (e.g. `env`) kept.
 */
const jsonServerEdit =
  (file: string, path: ReadonlyArray<string>, wanted: JsonObject) =>
  (current: string | undefined): Either.Either<Edit, string> =>
    Either.flatMap(parseJsonObject(file, current), (root) => {
      const existing = getIn(root, path)
      if (existing !== undefined && !isObject(existing)) {
        return Either.left(`cannot edit \`${file}\`: \`${showPath(path)}\` is not a JSON object; fix it by hand`)
      }
      const same = existing !== undefined &&
        Object.keys(wanted).every((k) => k === "env" || jsonEqual(existing[k], wanted[k]))
      if (same && current !== undefined) return Either.right({ after: current, changes: [] })
      const next: JsonObject = existing === undefined
        ? wanted
        : { ...existing, ...wanted, ...("env" in existing ? { env: existing["env"]! } : {}) }
      return Either.map(setIn(root, path, () => next, file), (updated) => ({
        after: renderJson(updated, current),
        changes: [
          existing === undefined
            ? `+ ${showPath(path)} = ${JSON.stringify(next)}`
            : `~ ${showPath(path)}: ${JSON.stringify(existing)} → ${JSON.stringify(next)}`
        ]
      }))
    })

/** Claude Code hook events the hook answers. */
const HOOK_EVENTS = ["UserPromptSubmit", "Stop"] as const

/** A command that is some form of `conclave … hook claude`. */
const isConclaveHook = (command: string): boolean => /^\S*conclave\b.*\bhook\s+claude\s*$/.test(command)

/**
 * The hooks in a Claude Code settings file: for each event, a matcher group running `hook`, unless
 * one of its groups already runs it; an older `conclave … hook claude` command there is replaced.
 */
const claudeHooksEdit = (file: string, hook: string) => (current: string | undefined): Either.Either<Edit, string> =>
  Either.flatMap(parseJsonObject(file, current), (root) => {
    const hooks = root["hooks"]
    if (hooks !== undefined && !isObject(hooks)) {
      return Either.left(
        `cannot edit \`${file}\`: \`hooks\` is not a JSON object; fix it by hand (nothing was changed)`
      )
    }
    let next: JsonObject = hooks ?? {}
    const changes: Array<string> = []
    for (const event of HOOK_EVENTS) {
      const groups = next[event]
      if (groups !== undefined && !Array.isArray(groups)) {
        return Either.left(
          `cannot edit \`${file}\`: \`hooks.${event}\` is not a JSON array; fix it by hand (nothing was changed)`
        )
      }
      const list: ReadonlyArray<Json> = groups ?? []
      const commands = list.flatMap((g) =>
        isObject(g) && Array.isArray(g["hooks"])
          ? (g["hooks"] as ReadonlyArray<Json>).flatMap((
            h
          ) => (isObject(h) && typeof h["command"] === "string" ? [h["command"]] : []))
          : []
      )
      if (commands.includes(hook)) continue
      const older = commands.find(isConclaveHook)
      if (older !== undefined) {
        next = {
          ...next,
          [event]: list.map((g) =>
            isObject(g) && Array.isArray(g["hooks"])
              ? {
                ...g,
                hooks: (g["hooks"] as ReadonlyArray<Json>).map((h) =>
                  isObject(h) && h["command"] === older ? { ...h, command: hook } : h
                )
              }
              : g
          )
        }
        changes.push(`~ hooks.${event}: ${JSON.stringify(older)} → ${JSON.stringify(hook)}`)
      } else {
        next = { ...next, [event]: [...list, { hooks: [{ type: "command", command: hook }] }] }
        changes.push(`+ hooks.${event}: ${JSON.stringify(hook)}`)
      }
    }
    if (changes.length === 0 && current !== undefined) return Either.right({ after: current, changes: [] })
    return Either.right({ after: renderJson({ ...root, hooks: next }, current), changes })
  })

// ---- the harnesses -------------------------------------------------------------------------------

const absolute = (value: string | undefined): string | undefined =>
  value !== undefined && value !== "" && Path.isAbsolute(value) ? value : undefined

/**
 * The files to edit for a harness and scope.
 *
 * - Claude Code (`claude mcp add --scope …` semantics): the server in `~/.claude.json` (or
 *   `$CLAUDE_CONFIG_DIR/.claude.json`), under `projects[<cwd>].mcpServers` for `local` and
 *   `mcpServers` for `user`; the hooks in `<cwd>/.claude/settings.local.json` (local) or
 *   `~/.claude/settings.json` (user; `$CLAUDE_CONFIG_DIR/settings.json`).
 * - Codex: `[mcp_servers.conclave]` in `$CODEX_HOME/config.toml` or `~/.codex/config.toml` (user),
 *   `<cwd>/.codex/config.toml` (local; read by Codex in trusted projects only).
 * - Gemini CLI: `mcpServers.conclave` in `~/.gemini/settings.json` (user) or
 *   `<cwd>/.gemini/settings.json` (local).
 *
 * @since 0.1.0
 * @category targets
 */
export const targets = (harness: Harness, scope: Scope, env: Environment, how: Launch): ReadonlyArray<Target> => {
  switch (harness) {
    case "claude": {
      const configDir = absolute(env.env["CLAUDE_CONFIG_DIR"])
      const claudeJson = configDir === undefined
        ? Path.join(env.home, ".claude.json")
        : Path.join(configDir, ".claude.json")
      const settings = scope === "local"
        ? Path.join(env.cwd, ".claude", "settings.local.json")
        : Path.join(configDir ?? Path.join(env.home, ".claude"), "settings.json")
      const server: JsonObject = { type: "stdio", command: how.command, args: [...how.args], env: {} }
      return [
        {
          path: claudeJson,
          mode: 0o600,
          edit: jsonServerEdit(
            claudeJson,
            scope === "local" ? ["projects", env.cwd, "mcpServers", "conclave"] : ["mcpServers", "conclave"],
            server
          )
        },
        { path: settings, mode: 0o644, edit: claudeHooksEdit(settings, how.hook) }
      ]
    }
    case "codex": {
      const file = scope === "local"
        ? Path.join(env.cwd, ".codex", "config.toml")
        : Path.join(absolute(env.env["CODEX_HOME"]) ?? Path.join(env.home, ".codex"), "config.toml")
      return [{
        path: file,
        mode: 0o644,
        ...(scope === "local"
          ? { note: "Codex reads a project's .codex/config.toml only when the project is trusted." }
          : {}),
        edit: codexEdit(file, how)
      }]
    }
    case "gemini": {
      const file = scope === "local"
        ? Path.join(env.cwd, ".gemini", "settings.json")
        : Path.join(env.home, ".gemini", "settings.json")
      return [{
        path: file,
        mode: 0o644,
        edit: jsonServerEdit(file, ["mcpServers", "conclave"], { command: how.command, args: [...how.args] })
      }]
    }
  }
}
