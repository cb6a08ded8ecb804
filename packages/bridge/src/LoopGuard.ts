/**
 * The agent-to-agent loop guard (D-12): per scope, consecutive agent-origin messages (inbound and
 * our own sends) since the last human-origin one. At the limit the scope trips; a human message or
 * an explicit reset re-arms it. `limit = 0` turns the guard off. The counts live in one `Ref`.
 *
 * @since 0.1.0
 */
import type { Frames } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"

/** What a count changed. @since 0.1.0 @category models */
export type Transition = "tripped" | "reset" | "none"

/** @since 0.1.0 @category models */
export interface LoopGuard {
  readonly limit: number
  /** One more agent-origin message in the scope. */
  readonly agent: (key: string) => Effect.Effect<Transition>
  /** A human-origin message in the scope. */
  readonly human: (key: string) => Effect.Effect<Transition>
  /** A message of `origin` in the scope: its transition and whether the scope is tripped after it. */
  readonly observe: (
    key: string,
    origin: Frames.Origin
  ) => Effect.Effect<{ readonly transition: Transition; readonly tripped: boolean }>
  /** Reset explicitly (`set_perm`). */
  readonly reset: (key: string) => Effect.Effect<Transition>
  readonly isTripped: (key: string) => Effect.Effect<boolean>
  readonly count: (key: string) => Effect.Effect<number>
  /** Move a scope's state (channel rename). */
  readonly move: (from: string, to: string) => Effect.Effect<void>
  /** Keys currently tripped. */
  readonly tripped: Effect.Effect<ReadonlyArray<string>>
}

type Counts = ReadonlyMap<string, number>

const without = (counts: Counts, key: string): Counts => {
  const next = new Map(counts)
  next.delete(key)
  return next
}

/** @since 0.1.0 @category constructors */
export const make = (limit: number): Effect.Effect<LoopGuard> =>
  Effect.map(Ref.make<Counts>(new Map()), (ref) => {
    const trippedIn = (counts: Counts, key: string) => limit > 0 && (counts.get(key) ?? 0) >= limit
    const clear = (counts: Counts, key: string): readonly [Transition, Counts] => [
      trippedIn(counts, key) ? "reset" : "none",
      without(counts, key)
    ]
    const agent = (counts: Counts, key: string): readonly [Transition, Counts] => {
      if (limit <= 0) return ["none", counts]
      const after = (counts.get(key) ?? 0) + 1
      return [after === limit ? "tripped" : "none", new Map(counts).set(key, after)]
    }
    return {
      limit,
      agent: (key) => Ref.modify(ref, (counts) => agent(counts, key)),
      human: (key) => Ref.modify(ref, (counts) => clear(counts, key)),
      observe: (key, origin) =>
        Ref.modify(ref, (counts) => {
          const [transition, next] = origin === "agent" ? agent(counts, key) : clear(counts, key)
          return [{ transition, tripped: trippedIn(next, key) }, next]
        }),
      reset: (key) => Ref.modify(ref, (counts) => clear(counts, key)),
      isTripped: (key) => Ref.get(ref).pipe(Effect.map((counts) => trippedIn(counts, key))),
      count: (key) => Ref.get(ref).pipe(Effect.map((counts) => counts.get(key) ?? 0)),
      move: (from, to) =>
        Ref.update(ref, (counts) => {
          const n = counts.get(from)
          const next = without(counts, from)
          return n === undefined ? next : new Map(next).set(to, n)
        }),
      tripped: Ref.get(ref).pipe(Effect.map((counts) => [...counts.keys()].filter((k) => trippedIn(counts, k))))
    }
  })

/** @since 0.1.0 @category keys */
export const channelKey = (server: string, channel: string) => `${server}\u0000#${channel}`
/** @since 0.1.0 @category keys */
export const peerKey = (server: string, peer: string) => `${server}\u0000@${peer}`
