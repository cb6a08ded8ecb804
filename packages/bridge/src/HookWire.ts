/**
 * The local wire between a running bridge and `conclave hook claude` (D-52, issue 21): where the
 * bridge listens, how the hook finds the bridge of its own Claude Code session, and the one request
 * and reply they exchange. Plain Node, no Effect: the hook runs on every prompt and must start as
 * fast as a bare `node` (the bridge side, `HookServer.ts`, is an Effect program).
 *
 * - Each bridge listens on a Unix socket `<dir>/<client pid>-<bridge pid>.sock`, where `<dir>` is
 *   `socketDir(configDir)` (mode 0700) and the client pid is Claude Code's (`CLAUDE_PID` when set,
 *   else the bridge's parent).
 * - The hook asks every bridge whose client pid is one of its own ancestors (or its `CLAUDE_PID`).
 * - Request: one line `{"op":"take","max_chars":N}`. Reply: one line `{"items":["…", …]}`: the
 *   framed text of the inbox items taken (oldest first), removed from the bridge's inbox.
 *
 * @since 0.1.0
 */
import { execFileSync } from "node:child_process"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

/** Longest Unix socket path accepted everywhere (macOS: 104 bytes with the NUL). @since 0.1.0 @category constants */
export const MAX_SOCKET_PATH = 100

/** Room for `<pid>-<pid>.sock` (two 10-digit pids). */
const NAME_ROOM = 28

/**
 * The directory of the bridges' hook sockets for a config directory: `<configDir>/run`, or, when
 * that path would be too long for a Unix socket, a per-user directory under the temp dir named by
 * a hash of the config directory.
 *
 * @since 0.1.0
 * @category paths
 */
export const socketDir = (configDir: string): string => {
  const preferred = Path.join(Path.resolve(configDir), "run")
  if (Buffer.byteLength(preferred) + 1 + NAME_ROOM <= MAX_SOCKET_PATH) return preferred
  const hash = createHash("sha256").update(Path.resolve(configDir)).digest("hex").slice(0, 16)
  const uid = typeof process.getuid === "function" ? String(process.getuid()) : "user"
  return Path.join(Os.tmpdir(), `conclave-${uid}-${hash}`)
}

/**
 * Whether a process is running (a socket whose bridge has gone is stale). A process of another user
 * counts as running.
 *
 * @since 0.1.0
 */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"
  }
}

/** @since 0.1.0 @category paths */
export const socketName = (clientPid: number, bridgePid: number): string => `${clientPid}-${bridgePid}.sock`

/** The pids in a socket file name, if it is one. @since 0.1.0 @category paths */
export const parseSocketName = (
  name: string
): { readonly clientPid: number; readonly bridgePid: number } | undefined => {
  const m = /^(\d{1,10})-(\d{1,10})\.sock$/.exec(name)
  return m === null ? undefined : { clientPid: Number(m[1]), bridgePid: Number(m[2]) }
}

const pidOf = (text: string | undefined): number | undefined => {
  if (text === undefined || !/^\d{1,10}$/.test(text)) return undefined
  const n = Number(text)
  return n > 1 ? n : undefined
}

/**
 * The client a bridge serves: Claude Code exports `CLAUDE_PID` to what it starts; otherwise the
 * process that spawned the bridge.
 *
 * @since 0.1.0
 * @category sessions
 */
export const clientPid = (env: Readonly<Record<string, string | undefined>>, ppid: number): number =>
  pidOf(env["CLAUDE_PID"]) ?? ppid

const parentOf = (pid: number): number | undefined => {
  if (process.platform === "linux") {
    try {
      // /proc/<pid>/stat: "pid (comm) state ppid …"; comm may hold spaces and parentheses.
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
      return pidOf(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1])
    } catch {
      return undefined
    }
  }
  if (process.platform === "win32") return undefined
  try {
    return pidOf(execFileSync("ps", ["-o", "ppid=", "-p", String(pid)], { encoding: "utf8", timeout: 2_000 }).trim())
  } catch {
    return undefined
  }
}

/**
 * The processes a hook may belong to: its `CLAUDE_PID`, its parent and their ancestors (Claude Code
 * runs hooks through a shell, so the client is the parent or the grandparent), at most `depth` up.
 *
 * @since 0.1.0
 * @category sessions
 */
export const hookCandidates = (
  env: Readonly<Record<string, string | undefined>>,
  ppid: number,
  depth = 4
): ReadonlyArray<number> => {
  const out: Array<number> = []
  const claude = pidOf(env["CLAUDE_PID"])
  if (claude !== undefined) out.push(claude)
  let current: number | undefined = ppid > 1 ? ppid : undefined
  for (let i = 0; i < depth && current !== undefined; i++) {
    if (!out.includes(current)) out.push(current)
    current = parentOf(current)
  }
  return out
}

/** The hook's request. @since 0.1.0 @category wire */
export interface TakeRequest {
  readonly op: "take"
  /** Take whole items while their framed texts (joined by a blank line) fit; at least one. */
  readonly max_chars: number
}

/** @since 0.1.0 @category wire */
export const encodeRequest = (r: TakeRequest): string => JSON.stringify(r) + "\n"

/** A request line, or the reason it is not one. @since 0.1.0 @category wire */
export const decodeRequest = (line: string): TakeRequest | string => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return "not JSON"
  }
  if (typeof value !== "object" || value === null) return "not an object"
  const r = value as Record<string, unknown>
  if (r["op"] !== "take") return "unknown op"
  const max = r["max_chars"]
  if (typeof max !== "number" || !Number.isSafeInteger(max) || max < 1) return "max_chars must be a positive integer"
  return { op: "take", max_chars: max }
}

/** @since 0.1.0 @category wire */
export const encodeReply = (items: ReadonlyArray<string>): string => JSON.stringify({ items }) + "\n"

/** A reply line, or `undefined` when it is not one. @since 0.1.0 @category wire */
export const decodeReply = (line: string): ReadonlyArray<string> | undefined => {
  let value: unknown
  try {
    value = JSON.parse(line)
  } catch {
    return undefined
  }
  if (typeof value !== "object" || value === null) return undefined
  const items = (value as Record<string, unknown>)["items"]
  return Array.isArray(items) && items.every((i): i is string => typeof i === "string") ? items : undefined
}

/** The separator between framed items in the hook's `additionalContext`. @since 0.1.0 @category wire */
export const ITEM_SEPARATOR = "\n\n"

/**
 * Claude Code keeps at most 8 000 characters of a hook's `additionalContext`; the hook asks for no
 * more, and what does not fit stays in the inbox for the next prompt.
 *
 * @since 0.1.0
 * @category wire
 */
export const MAX_CONTEXT_CHARS = 8_000
