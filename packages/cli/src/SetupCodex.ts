/**
 * The Codex half of `conclave setup` (D-52): `[mcp_servers.conclave]` in `config.toml`, edited as
 * text so the user's comments and other tables stay, then parsed again to check that nothing else
 * moved.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"
import * as Toml from "smol-toml"
import type { Edit, Launch } from "./Setup.js"

/** A JSON value (also what a parsed TOML table holds). */
export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

/** Deep equality of two JSON values. */
export const jsonEqual = (a: Json | undefined, b: Json | undefined): boolean => JSON.stringify(a) === JSON.stringify(b)

const TABLE_HEADER = /^\s*\[\s*mcp_servers\s*\.\s*(?:conclave|"conclave"|'conclave')\s*\]\s*(?:#.*)?$/
const ANY_HEADER = /^\s*\[/
const KEY_LINE = /^\s*(command|args|"command"|"args")\s*=/

const tomlString = (s: string) => JSON.stringify(s)

const tomlLines = (l: Launch): ReadonlyArray<string> => [
  `command = ${tomlString(l.command)}`,
  `args = [${l.args.map(tomlString).join(", ")}]`
]

type TomlTable = Record<string, unknown>

const parseToml = (file: string, text: string): Either.Either<TomlTable, string> => {
  try {
    return Either.right(Toml.parse(text) as TomlTable)
  } catch (e) {
    return Either.left(
      `cannot read \`${file}\`: it is not valid TOML (${
        (e instanceof Error ? e.message : String(e)).split("\n")[0]
      }); fix or move the file and run this again (nothing was changed)`
    )
  }
}

const serverIn = (doc: TomlTable): unknown => {
  const servers = doc["mcp_servers"]
  return typeof servers === "object" && servers !== null ? (servers as TomlTable)["conclave"] : undefined
}

/** The document without `mcp_servers.conclave.{command,args}`: what must not change. */
const rest = (doc: TomlTable): string => {
  const copy = structuredClone(doc)
  const server = serverIn(copy)
  if (typeof server === "object" && server !== null) {
    delete (server as TomlTable)["command"]
    delete (server as TomlTable)["args"]
    if (Object.keys(server).length === 0) delete (copy["mcp_servers"] as TomlTable)["conclave"]
  }
  const servers = copy["mcp_servers"]
  if (typeof servers === "object" && servers !== null && Object.keys(servers).length === 0) delete copy["mcp_servers"]
  return JSON.stringify(copy)
}

/** Remove the `command` and `args` keys (an array may span lines) from a table's lines. */
const withoutLaunchKeys = (lines: ReadonlyArray<string>): Array<string> => {
  const out: Array<string> = []
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!
    if (!KEY_LINE.test(line)) {
      out.push(line)
      continue
    }
    // a multi-line array: skip to its closing bracket
    const value = line.slice(line.indexOf("=") + 1).replace(/#.*$/, "")
    if (value.includes("[") && !value.includes("]")) { while (i + 1 < lines.length && !lines[i]!.includes("]")) i++ }
  }
  return out
}

/**
 * `[mcp_servers.conclave]` in a Codex `config.toml`, edited as text so the rest of the file (comments
 * included) stays as it is; the result is parsed again and must differ only in that entry's
 * `command` and `args`.
 */
export const codexEdit =
  (file: string, wanted: Launch) => (current: string | undefined): Either.Either<Edit, string> => {
    const text = current ?? ""
    return Either.flatMap(parseToml(file, text), (before) => {
      const existing = serverIn(before)
      const want = { command: wanted.command, args: wanted.args }
      if (existing !== undefined && (typeof existing !== "object" || existing === null)) {
        return Either.left(`cannot edit \`${file}\`: \`mcp_servers.conclave\` is not a table; fix it by hand`)
      }
      const old = existing as TomlTable | undefined
      if (
        old !== undefined && jsonEqual(old["command"] as Json, want.command) &&
        jsonEqual(old["args"] as Json, want.args)
      ) {
        return Either.right({ after: text, changes: [] })
      }
      const lines = text.split("\n")
      let after: string
      const header = lines.findIndex((l) => TABLE_HEADER.test(l))
      if (old === undefined) {
        const body = text === "" || text.endsWith("\n\n") ? text : text.endsWith("\n") ? text + "\n" : text + "\n\n"
        after = `${body}[mcp_servers.conclave]\n${tomlLines(wanted).join("\n")}\n`
      } else if (header >= 0) {
        let end = header + 1
        while (end < lines.length && !ANY_HEADER.test(lines[end]!)) end++
        const table = withoutLaunchKeys(lines.slice(header + 1, end))
        after = [...lines.slice(0, header + 1), ...tomlLines(wanted), ...table, ...lines.slice(end)].join("\n")
      } else {
        return Either.left(
          `cannot edit \`${file}\`: \`mcp_servers.conclave\` is written in a form this command does not edit; ` +
            `make it a \`[mcp_servers.conclave]\` table with ${tomlLines(wanted).join(" and ")}`
        )
      }
      return Either.flatMap(parseToml(file, after), (parsed) => {
        const server = serverIn(parsed) as TomlTable | undefined
        const ok = server !== undefined && jsonEqual(server["command"] as Json, want.command) &&
          jsonEqual(server["args"] as Json, want.args) && rest(parsed) === rest(before)
        if (!ok) {
          return Either.left(
            `cannot edit \`${file}\` safely (the edit would change more than \`mcp_servers.conclave\`); ` +
              `set \`[mcp_servers.conclave]\` by hand to ${tomlLines(wanted).join(" and ")}`
          )
        }
        const shown = `{ command = ${tomlString(want.command)}, args = [${want.args.map(tomlString).join(", ")}] }`
        return Either.right({
          after,
          changes: [
            old === undefined
              ? `+ [mcp_servers.conclave] ${shown}`
              : `~ [mcp_servers.conclave] command/args → ${shown}`
          ]
        })
      })
    })
  }
