/**
 * Per-channel seq state (D-22): the highest seq seen, the start of a gap left by a capped
 * catch-up, and the live deliveries held back while a re-subscribe catches up. One `Ref`.
 *
 * @since 0.1.0
 */
import type { Frames } from "@conclave/protocol"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"

/** @since 0.1.0 @category models */
export type Delivery = Frames.ServerFrameOf<"channel_msg">

/** What to do with a delivery. @since 0.1.0 @category models */
export type Admission = "buffered" | "stale" | "fresh"

/** @since 0.1.0 @category models */
export interface Watermarks {
  /** Decide on a delivery: held back during a catch-up, already seen, or new (then recorded). */
  readonly admit: (key: string, d: Delivery, catchup: boolean) => Effect.Effect<Admission>
  readonly lastSeen: (key: string) => Effect.Effect<number | undefined>
  /** Raise the watermark to `seq` (never lowers it). */
  readonly raise: (key: string, seq: number) => Effect.Effect<void>
  /** Start holding back live deliveries; returns the watermark to catch up from. */
  readonly beginCatchup: (key: string) => Effect.Effect<number | undefined>
  /** Stop holding back; returns what was held. */
  readonly endCatchup: (key: string) => Effect.Effect<ReadonlyArray<Delivery>>
  /** Stop holding back every key starting with `prefix`; returns what was held, per key. */
  readonly endCatchupsWithPrefix: (prefix: string) => Effect.Effect<ReadonlyArray<ReadonlyArray<Delivery>>>
  readonly gapFrom: (key: string) => Effect.Effect<number | undefined>
  readonly setGap: (key: string, seq: number | undefined) => Effect.Effect<void>
  /**
   * While a catch-up looks by seq for a message too large to read (issue 22): rows older than this
   * were not asked for and are left out.
   */
  readonly olderThan: (key: string) => Effect.Effect<number | undefined>
  readonly setOlderThan: (key: string, ms: number | undefined) => Effect.Effect<void>
  /** A channel was renamed: its watermark and gap follow it. */
  readonly move: (from: string, to: string) => Effect.Effect<void>
}

interface State {
  readonly lastSeen: ReadonlyMap<string, number>
  readonly gapFrom: ReadonlyMap<string, number>
  readonly olderThan: ReadonlyMap<string, number>
  readonly catching: ReadonlyMap<string, ReadonlyArray<Delivery>>
}

const set = <V>(m: ReadonlyMap<string, V>, key: string, value: V | undefined): ReadonlyMap<string, V> => {
  const next = new Map(m)
  if (value === undefined) next.delete(key)
  else next.set(key, value)
  return next
}

const moveKey = <V>(m: ReadonlyMap<string, V>, from: string, to: string): ReadonlyMap<string, V> => {
  const v = m.get(from)
  const next = set(m, from, undefined)
  return v === undefined ? next : set(next, to, v)
}

/** @since 0.1.0 @category constructors */
export const make: Effect.Effect<Watermarks> = Effect.map(
  Ref.make<State>({ lastSeen: new Map(), gapFrom: new Map(), olderThan: new Map(), catching: new Map() }),
  (ref) => ({
    admit: (key, d, catchup) =>
      Ref.modify(ref, (s): readonly [Admission, State] => {
        const held = s.catching.get(key)
        if (!catchup && held !== undefined) return ["buffered", { ...s, catching: set(s.catching, key, [...held, d]) }]
        const last = s.lastSeen.get(key)
        if (last !== undefined && d.seq <= last) return ["stale", s]
        return ["fresh", { ...s, lastSeen: set(s.lastSeen, key, d.seq) }]
      }),
    lastSeen: (key) => Ref.get(ref).pipe(Effect.map((s) => s.lastSeen.get(key))),
    raise: (key, seq) =>
      Ref.update(ref, (s) => ({ ...s, lastSeen: set(s.lastSeen, key, Math.max(s.lastSeen.get(key) ?? 0, seq)) })),
    beginCatchup: (key) => Ref.modify(ref, (s) => [s.lastSeen.get(key), { ...s, catching: set(s.catching, key, []) }]),
    endCatchup: (key) =>
      Ref.modify(ref, (s) => [s.catching.get(key) ?? [], { ...s, catching: set(s.catching, key, undefined) }]),
    endCatchupsWithPrefix: (prefix) =>
      Ref.modify(ref, (s) => {
        const keys = [...s.catching.keys()].filter((k) => k.startsWith(prefix))
        const catching = new Map(s.catching)
        for (const k of keys) catching.delete(k)
        return [keys.map((k) => s.catching.get(k) ?? []), { ...s, catching }]
      }),
    gapFrom: (key) => Ref.get(ref).pipe(Effect.map((s) => s.gapFrom.get(key))),
    setGap: (key, seq) => Ref.update(ref, (s) => ({ ...s, gapFrom: set(s.gapFrom, key, seq) })),
    olderThan: (key) => Ref.get(ref).pipe(Effect.map((s) => s.olderThan.get(key))),
    setOlderThan: (key, ms) => Ref.update(ref, (s) => ({ ...s, olderThan: set(s.olderThan, key, ms) })),
    move: (from, to) =>
      Ref.update(ref, (s) => ({
        ...s,
        lastSeen: moveKey(s.lastSeen, from, to),
        gapFrom: moveKey(s.gapFrom, from, to),
        olderThan: moveKey(s.olderThan, from, to)
      }))
  })
)
