/**
 * Reading the command line before the library does (issue 23, item 6): did-you-mean for verbs and
 * flags, missing arguments and flag values said with what they take, no `--wizard`, and the
 * trimmed help, all from the command tree's usage lines and help texts.
 *
 * @since 0.1.0
 */
import type { CommandNode } from "./CommandTree.js"

/** What these functions read: the tree, each node's usage line, the global options' help. @since 0.1.0 @category models */
export interface Spec {
  readonly tree: CommandNode
  readonly usageOf: (node: CommandNode) => string
  readonly globalOptions: string
  readonly version: string
}

/** Every flag that takes a value, with its placeholder (from the usage lines of the tree). @since 0.1.0 @category completions */
export const valueFlags = (spec: Spec): ReadonlyMap<string, string> => {
  const flags = new Map<string, string>()
  const visit = (node: CommandNode) => {
    const usage = spec.usageOf(node)
    for (const m of usage.matchAll(/(--[a-z][a-z0-9-]*) ([A-Z][A-Z0-9_]*)/g)) {
      if (!flags.has(m[1]!)) flags.set(m[1]!, m[2]!)
    }
    node.children.forEach(visit)
  }
  visit(spec.tree)
  return flags
}

/** The first paragraph of a node's DESCRIPTION. */
const summaryOf = (node: CommandNode): string => /^DESCRIPTION\n\n(.+)$/m.exec(node.help())?.[1]?.trim() ?? ""

/**
 * The help of one node, trimmed to what matters (issue 23, item 6): a leaf's usage (the full
 * command; repeatable and optional flags in brackets), description, arguments and its own options;
 * a group's (and the root's) one line per subcommand; then the global options once. No type
 * boilerplate and no per-verb copies of the library's built-in flags.
 *
 * @since 0.1.0
 * @category help
 */
export const helpOf = (spec: Spec, node: CommandNode): string => {
  const globals = spec.globalOptions
  if (node.children.length === 0) return `${node.help()}\n\n${globals}`
  const names = node.children.map((c) => c.path[c.path.length - 1]!)
  const width = Math.max(...names.map((n) => n.length))
  const here = ["conclave", ...node.path].join(" ")
  const heading = node.path.length === 0
    ? `conclave ${spec.version}: ${summaryOf(node)}`
    : summaryOf(node)
  return [
    heading,
    "",
    "USAGE",
    "",
    `$ ${here} <command> [options]`,
    "",
    "COMMANDS",
    "",
    ...node.children.map((c, i) => `  - ${names[i]!.padEnd(width)}  ${summaryOf(c)}`),
    "",
    ...(node.path.length === 0 ? [] : [`Run \`${here} <command> --help\` for the flags of one.`, ""]),
    globals
  ].join("\n")
}

/** Words before a lone `--`. @since 0.1.0 @category parsing */
export const beforeDashes = (words: ReadonlyArray<string>) => {
  const end = words.indexOf("--")
  return end < 0 ? words : words.slice(0, end)
}

/** The deepest tree node named by the leading words (stops at the first flag or unknown word). */
const nodeAt = (
  spec: Spec,
  words: ReadonlyArray<string>
): { readonly node: CommandNode; readonly rest: ReadonlyArray<string> } => {
  let node = spec.tree
  let i = 0
  for (; i < words.length; i++) {
    const child = node.children.find((c) => c.path[c.path.length - 1] === words[i])
    if (child === undefined) break
    node = child
  }
  return { node, rest: words.slice(i) }
}

/**
 * The help to print for these words (`-h`/`--help` anywhere before `--`), if any.
 *
 * @since 0.1.0
 * @category help
 */
export const helpRequested = (spec: Spec, words: ReadonlyArray<string>): string | undefined => {
  const flags = beforeDashes(words)
  return flags.includes("--help") || flags.includes("-h") ? helpOf(spec, nodeAt(spec, flags).node) : undefined
}

const distance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1))
      previous = current
    }
  }
  return row[b.length]!
}

/** The closest candidate within two edits (or one that starts with `word`), if any. */
const closest = (word: string, candidates: ReadonlyArray<string>): string | undefined => {
  let best: string | undefined
  let bestDistance = Infinity
  for (const c of candidates) {
    const d = c.startsWith(word) && word.length >= 2 ? 0.5 : distance(word, c)
    if (d < bestDistance) {
      best = c
      bestDistance = d
    }
  }
  return bestDistance <= Math.max(1, Math.min(2, Math.floor(word.length / 3))) ? best : undefined
}

/** Options every command accepts (@effect/cli built-ins and the global options). */
const BUILT_IN_FLAGS = ["--help", "--completions", "--log-level", "--version", "--config-dir", "--verbose"]

/** Built-in options that take a value. */
const BUILT_IN_VALUE_FLAGS = ["--completions", "--log-level"]

/** The values a placeholder accepts, where they are a fixed set (issue 23, item 6). */
const CHOICES: Readonly<Record<string, string>> = {
  LEVEL: "mute, notify, converse, or act",
  SHELL: "bash, zsh, or fish",
  VISIBILITY: "public, unlisted, or private"
}

const expecting = (placeholder: string) => {
  const choices = CHOICES[placeholder]
  return choices === undefined ? placeholder : `${placeholder}, one of ${choices}`
}

/**
 * A missing flag value or a missing required argument of a leaf command, said with what it takes
 * (the levels for `<LEVEL>`, the shells for `<SHELL>`…) and the usage line; `undefined` if none.
 */
const missing = (spec: Spec, node: CommandNode, words: ReadonlyArray<string>): string | undefined => {
  const usage = spec.usageOf(node)
  const verb = ["conclave", ...node.path].join(" ")
  const valueFlags = new Map<string, string>(
    [...usage.matchAll(/(--[a-z][a-z0-9-]*) ([A-Z][A-Z0-9_]*)/g)].map((m) => [m[1]!, m[2]!])
  )
  for (const flag of BUILT_IN_VALUE_FLAGS) valueFlags.set(flag, "VALUE")
  // Required positionals: `<NAME>` (or `<NAME>...`, one or more) outside brackets.
  const required = [...usage.replace(/\[[^\]]*\]/g, "").matchAll(/<([A-Z][A-Z0-9_]*)>/g)].map((m) => m[1]!)
  // Repeatable flags: `[--admin USER[=PUBKEY]]...`, `[--server URL]...`.
  const repeatable = new Set(
    [...usage.matchAll(/\[(--[a-z][a-z0-9-]*)(?:[^[\]]|\[[^\]]*\])*\]\.\.\./g)].map((m) => m[1]!)
  )
  const seen = new Set<string>()
  let positionals = 0
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!
    if (word === "--") {
      positionals += words.length - i - 1
      break
    }
    if (word.startsWith("--")) {
      const name = word.split("=")[0]!
      // The library says only "Received unknown argument: '--json'" for a flag given twice.
      if (seen.has(name) && !repeatable.has(name) && usage.includes(name)) {
        return `flag \`${name}\` of \`${verb}\` is given more than once: give it once (usage: ${usage})`
      }
      seen.add(name)
      const placeholder = valueFlags.get(word)
      if (placeholder === undefined) continue
      const next = words[i + 1]
      if (next === undefined || (next.startsWith("-") && !/^-\d/.test(next))) {
        return `flag \`${word}\` of \`${verb}\` needs a value: ${expecting(placeholder)} (usage: ${usage})`
      }
      i += 1
      continue
    }
    if (word.startsWith("-") && word.length > 1 && !/^-\d/.test(word)) continue
    positionals += 1
  }
  const absent = required[positionals]
  return absent === undefined
    ? undefined
    : `missing argument <${absent}> for \`${verb}\`` +
      (CHOICES[absent] === undefined ? "" : `: one of ${CHOICES[absent]}`) + ` (usage: ${usage})`
}

/**
 * A did-you-mean for an unknown verb (at any depth) or an unknown flag of the verb, scoped to the
 * sub-verb (issue 23, item 6); `undefined` when the words look right and parsing should go on.
 *
 * @since 0.1.0
 * @category parsing
 */
export const suggest = (spec: Spec, words: ReadonlyArray<string>): string | undefined => {
  if (beforeDashes(words).includes("--wizard")) {
    const { node } = nodeAt(spec, beforeDashes(words))
    const verb = ["conclave", ...node.path].join(" ")
    return `there is no \`--wizard\`: every value is a flag or an argument (see \`${verb} --help\`)`
  }
  let current: CommandNode = spec.tree
  let i = 0
  while (current.children.length > 0 && i < words.length) {
    const word = words[i]!
    if (word.startsWith("-")) break
    const names = current.children.map((c) => c.path[c.path.length - 1]!)
    const child = current.children.find((c) => c.path[c.path.length - 1] === word)
    if (child === undefined) {
      if (word === "help") return undefined
      const here = ["conclave", ...current.path].join(" ")
      const best = closest(word, names)
      return `unknown command \`${[...current.path, word].join(" ")}\`` +
        (best === undefined ? "" : `: did you mean \`${here} ${best}\`?`) +
        ` (${current.path.length === 0 ? "commands" : `subcommands of \`${here}\``}: ${names.join(", ")})`
    }
    current = child
    i += 1
  }
  if (current.children.length > 0) return undefined
  const flags = [...new Set([...current.help().matchAll(/--[a-z][a-z0-9-]*/g)].map((m) => m[0]))]
  for (const word of words.slice(i)) {
    if (word === "--") break
    if (!word.startsWith("--")) continue
    const name = word.split("=")[0]!
    if (flags.includes(name) || BUILT_IN_FLAGS.includes(name)) continue
    const verb = ["conclave", ...current.path].join(" ")
    const best = closest(name, flags)
    return `unknown flag \`${name}\` for \`${verb}\`` + (best === undefined ? "" : `: did you mean \`${best}\`?`) +
      ` (see \`${verb} --help\`)`
  }
  if (helpRequested(spec, words) !== undefined || beforeDashes(words).some((w) => w === "--version" || w === "-V")) {
    return undefined
  }
  return missing(spec, current, words.slice(i))
}
