/**
 * `conclave hook claude` (D-52): a Claude Code hook for `UserPromptSubmit` and `Stop`. It takes the
 * session's unsurfaced inbox items from the session's own bridge (over the bridge's hook socket,
 * see `@conclave/bridge/HookWire`) and prints them as the hook's JSON output, framed exactly like
 * the channel tags; it prints nothing when there is nothing new. Taken items leave the bridge's
 * inbox, so each is surfaced once, by the hook or by the `inbox` tool.
 *
 * Plain Node on purpose: it runs on every prompt, and `bin.ts` starts it without loading Effect or
 * the command tree (issue 21: as fast as a bare `node` start). Nothing here writes to stdout but
 * the one JSON answer, and it never exits 2 (which would block the user's prompt).
 *
 * @since 0.1.0
 */
import * as HookWire from "@conclave/bridge/HookWire"
import { resolveSync } from "@conclave/client/ConfigDirDefault"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import type { Readable, Writable } from "node:stream"

/** The hook events this command answers. @since 0.1.0 @category models */
export type HookEvent = "UserPromptSubmit" | "Stop"

/** What the hook read from Claude Code. @since 0.1.0 @category models */
export interface HookInput {
  readonly event: HookEvent
  /** `Stop` only: Claude is already continuing because of a stop hook. */
  readonly stopHookActive: boolean
}

/**
 * Decode the hook's stdin. Empty input (a run by hand) means `UserPromptSubmit`; anything else must
 * be Claude Code's JSON for one of the two events. A string is the reason it is not.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseInput = (text: string): HookInput | string => {
  if (text.trim() === "") return { event: "UserPromptSubmit", stopHookActive: false }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return "expected Claude Code's hook JSON on stdin, got text that is not JSON"
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return "expected Claude Code's hook JSON object on stdin"
  }
  const input = value as Record<string, unknown>
  const event = input["hook_event_name"]
  if (event !== "UserPromptSubmit" && event !== "Stop") {
    return `this hook answers UserPromptSubmit and Stop, not ${
      typeof event === "string" ? `\`${event}\`` : "an input without hook_event_name"
    } (check the hooks in your Claude Code settings.json; \`conclave setup claude\` writes them)`
  }
  return { event, stopHookActive: input["stop_hook_active"] === true }
}

/**
 * The hook's stdout for the items taken: nothing when there are none, else one JSON object with
 * `hookSpecificOutput.additionalContext`.
 *
 * @since 0.1.0
 * @category rendering
 */
export const render = (event: HookEvent, items: ReadonlyArray<string>): string =>
  items.length === 0 ? "" : JSON.stringify({
    hookSpecificOutput: { hookEventName: event, additionalContext: items.join(HookWire.ITEM_SEPARATOR) }
  }) + "\n"

const STDIN_WAIT_MS = 2_000
const SOCKET_WAIT_MS = 2_000

const readAll = (stream: Readable & { readonly isTTY?: boolean }): Promise<string> =>
  new Promise((resolve) => {
    if (stream.isTTY === true) return resolve("")
    let text = ""
    const done = () => {
      clearTimeout(timer)
      stream.off("data", onData)
      stream.pause()
      resolve(text)
    }
    const onData = (chunk: Buffer | string) => {
      text += typeof chunk === "string" ? chunk : chunk.toString("utf8")
    }
    // Claude Code closes stdin after the JSON; a caller that never does is not waited on forever.
    const timer = setTimeout(done, STDIN_WAIT_MS)
    stream.on("data", onData)
    stream.once("end", done)
    stream.once("error", done)
  })

/** The sockets of the bridges of the nearest candidate that has any. */
const findSockets = (dir: string, candidates: ReadonlyArray<number>): ReadonlyArray<string> => {
  let names: ReadonlyArray<string>
  try {
    names = Fs.readdirSync(dir)
  } catch {
    return []
  }
  const parsed = names.flatMap((name) => {
    const p = HookWire.parseSocketName(name)
    return p === undefined ? [] : [{ name, ...p }]
  })
  for (const pid of candidates) {
    const mine = parsed.filter((p) => p.clientPid === pid)
    if (mine.length > 0) return mine.map((p) => Path.join(dir, p.name))
  }
  return []
}

/** Ask one bridge for up to `maxChars` of items; a dead or silent bridge gives none. */
const take = (path: string, maxChars: number): Promise<ReadonlyArray<string>> =>
  new Promise((resolve) => {
    let reply = ""
    let settled = false
    const finish = (items: ReadonlyArray<string>) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(items)
    }
    const socket = Net.createConnection(path)
    const timer = setTimeout(() => finish([]), SOCKET_WAIT_MS)
    socket.setEncoding("utf8")
    socket.on("connect", () => socket.write(HookWire.encodeRequest({ op: "take", max_chars: maxChars })))
    socket.on("data", (chunk: string) => {
      reply += chunk
      const end = reply.indexOf("\n")
      if (end >= 0) finish(HookWire.decodeReply(reply.slice(0, end)) ?? [])
    })
    socket.on("end", () => finish(HookWire.decodeReply(reply) ?? []))
    socket.on("error", (e: NodeJS.ErrnoException) => {
      // A socket file left by a bridge that died: remove it.
      const pids = HookWire.parseSocketName(Path.basename(path))
      if (
        (e.code === "ECONNREFUSED" || e.code === "ENOENT") && pids !== undefined && !HookWire.isAlive(pids.bridgePid)
      ) {
        Fs.rmSync(path, { force: true })
      }
      finish([])
    })
  })

/** @since 0.1.0 @category models */
export interface HookOptions {
  /** The global `--config-dir`, if given. */
  readonly configDir: string | undefined
  readonly stdin?: Readable & { readonly isTTY?: boolean }
  readonly stdout?: Writable
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly ppid?: number
}

/**
 * Run the hook once; resolves with `undefined`, or with the reason the input is not Claude Code's
 * hook JSON (the caller prints it and exits 1: never 2, which would block the prompt).
 *
 * @since 0.1.0
 * @category running
 */
export const runClaudeHook = async (options: HookOptions): Promise<string | undefined> => {
  const stdout = options.stdout ?? process.stdout
  const input = parseInput(await readAll(options.stdin ?? process.stdin))
  if (typeof input === "string") return input
  // Do not keep a Stop hook continuing the conversation: what arrives meanwhile waits for the next prompt.
  if (input.event === "Stop" && input.stopHookActive) return undefined
  const dir = HookWire.socketDir(resolveSync(options.configDir))
  const candidates = HookWire.hookCandidates(options.env ?? process.env, options.ppid ?? process.ppid)
  const items: Array<string> = []
  let budget = HookWire.MAX_CONTEXT_CHARS
  for (const path of findSockets(dir, candidates)) {
    if (budget <= 0) break
    const taken = await take(path, budget)
    for (const item of taken) {
      budget -= item.length + HookWire.ITEM_SEPARATOR.length
      items.push(item)
    }
  }
  const text = render(input.event, items)
  if (text !== "") await new Promise<void>((resolve) => stdout.write(text, () => resolve()))
  return undefined
}
