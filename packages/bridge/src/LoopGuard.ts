/**
 * The agent-to-agent loop guard (D-12): per scope, consecutive agent-origin messages (inbound and
 * our own sends) since the last human-origin one. At the limit the scope trips; a human message or
 * an explicit reset re-arms it. `limit = 0` turns the guard off.
 *
 * @since 0.1.0
 */

/** What a count changed. @since 0.1.0 @category models */
export type Transition = "tripped" | "reset" | "none"

/** @since 0.1.0 @category models */
export interface LoopGuard {
  readonly limit: number
  /** One more agent-origin message in the scope. */
  readonly agent: (key: string) => Transition
  /** A human-origin message in the scope. */
  readonly human: (key: string) => Transition
  /** Reset explicitly (`set_perm`). */
  readonly reset: (key: string) => Transition
  readonly isTripped: (key: string) => boolean
  readonly count: (key: string) => number
  /** Move a scope's state (channel rename). */
  readonly move: (from: string, to: string) => void
  /** Keys currently tripped. */
  readonly tripped: () => ReadonlyArray<string>
}

/** @since 0.1.0 @category constructors */
export const make = (limit: number): LoopGuard => {
  const counts = new Map<string, number>()
  const isTripped = (key: string) => limit > 0 && (counts.get(key) ?? 0) >= limit
  const clear = (key: string): Transition => {
    const was = isTripped(key)
    counts.delete(key)
    return was ? "reset" : "none"
  }
  return {
    limit,
    agent: (key) => {
      if (limit <= 0) return "none"
      const before = counts.get(key) ?? 0
      counts.set(key, before + 1)
      return before + 1 === limit ? "tripped" : "none"
    },
    human: clear,
    reset: clear,
    isTripped,
    count: (key) => counts.get(key) ?? 0,
    move: (from, to) => {
      const n = counts.get(from)
      counts.delete(from)
      if (n !== undefined) counts.set(to, n)
    },
    tripped: () => [...counts.keys()].filter(isTripped)
  }
}

/** @since 0.1.0 @category keys */
export const channelKey = (server: string, channel: string) => `${server}\u0000#${channel}`
/** @since 0.1.0 @category keys */
export const peerKey = (server: string, peer: string) => `${server}\u0000@${peer}`
