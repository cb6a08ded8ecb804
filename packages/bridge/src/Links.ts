/**
 * The state of every server link (SPEC §4.10, §4.11, D-26, D-27): which generation of a
 * connection is up, the joined channels, the admin flag, the flapping breaker and the session
 * handle it renames. All of it lives in one `Ref`, changed by atomic transitions that return what
 * the caller has to announce; requests wait (bounded) for a link that is down.
 *
 * @since 0.1.0
 */
import type { Connection, LocalConfig } from "@conclave/client"
import { Errors, Limits, type Names } from "@conclave/protocol"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"

/** What the dispatcher needs from an established connection (a `Connection.Connection` fits). @since 0.1.0 @category models */
export interface LiveConnection {
  readonly path: Names.SessionPath
  readonly admin: boolean
  readonly request: (
    frame: Connection.RequestWithoutId
  ) => Effect.Effect<Connection.Reply, Connection.RequestError>
  /** The socket's close code once closed (1009: a frame over this client's limit), when known. */
  readonly closeCode?: Effect.Effect<number | undefined>
}

/** A request could not be answered: `rejected` when the server refused it. @since 0.1.0 @category errors */
export class CallFailed extends Data.TaggedError("CallFailed")<{ readonly text: string; readonly rejected: boolean }> {}

/** One connection's life on a link. @since 0.1.0 @category models */
export interface Generation {
  readonly connection: LiveConnection
  readonly down: Deferred.Deferred<never, CallFailed>
}

/** @since 0.1.0 @category models */
export interface Link {
  readonly url: string
  readonly registration: LocalConfig.Registration
  /** The canonical URL when this one is the same server (D-27). */
  readonly disabled: string | undefined
  readonly generation: Generation | undefined
  readonly upSignal: Deferred.Deferred<Generation, CallFailed>
  readonly admin: boolean
  readonly path: Names.SessionPath | undefined
  /** Joined channels, in join order. */
  readonly joined: ReadonlyArray<string>
  readonly joinedAt: ReadonlyMap<string, number>
  readonly upAt: number | undefined
  readonly dialedHandle: string | undefined
  readonly rapidDrops: number
  readonly announcedDown: boolean
  /** Why the last dial failed, with its fix (issue 23, item 4); cleared when the link comes up. */
  readonly lastError: string | undefined
}

interface Handle {
  readonly base: string
  readonly current: string
  readonly generation: number
}

interface State {
  readonly handle: Handle
  readonly links: ReadonlyMap<string, Link>
}

/** What a dropped link has to announce. @since 0.1.0 @category models */
export type DownOutcome =
  | { readonly _tag: "Quiet" }
  | { readonly _tag: "Disconnected" }
  | { readonly _tag: "HandleConflict"; readonly handle: string }
  | { readonly _tag: "Renamed"; readonly from: string; readonly to: string }

/** @since 0.1.0 @category rendering */
export const lostText = (server: string) => `connection to \`${server}\` lost; retry`

/** @since 0.1.0 @category rendering */
export const duplicateText = (server: string, canonical: string) =>
  `\`${server}\` is the same server as \`${canonical}\`; target \`${canonical}\` instead`

const toCallFailed = (server: string) => (e: Connection.RequestError): CallFailed => {
  switch (e._tag) {
    case "Rejected":
      return new CallFailed({ text: Errors.render(e.error), rejected: true })
    case "ConnectionLost":
      return new CallFailed({ text: lostText(server), rejected: false })
    case "ResponseTimeout":
      return new CallFailed({ text: e.message, rejected: false })
  }
}

/** @since 0.1.0 @category models */
export interface Links {
  readonly handle: Effect.Effect<string>
  readonly get: (url: string) => Effect.Effect<Option.Option<Link>>
  /** Every link, disabled ones included, in registration order. */
  readonly all: Effect.Effect<ReadonlyArray<Link>>
  /** The links that are not disabled. */
  readonly active: Effect.Effect<ReadonlyArray<Link>>
  /** Send on the link's current connection, waiting (bounded) for it to come up. */
  readonly request: (url: string, frame: Connection.RequestWithoutId) => Effect.Effect<Connection.Reply, CallFailed>
  /** Send on one generation; fails as soon as that generation goes down. */
  readonly requestOn: (
    url: string,
    generation: Generation,
    frame: Connection.RequestWithoutId
  ) => Effect.Effect<Connection.Reply, CallFailed>
  /** The link came up: the new generation, and whether a loss had been announced. */
  readonly up: (
    url: string,
    connection: LiveConnection,
    dialedHandle: string
  ) => Effect.Effect<Option.Option<{ readonly generation: Generation; readonly wasDown: boolean; readonly link: Link }>>
  /**
   * The link dropped: what to announce (none when it was not up). A drop over a frame too large for
   * this client (`too_large`) is not counted as a rapid drop: it says nothing about the handle.
   */
  readonly down: (url: string, cause?: "too_large") => Effect.Effect<Option.Option<DownOutcome>>
  /** The link is the same server as `canonical`: disable it. False when it already was. */
  readonly duplicate: (url: string, canonical: string) => Effect.Effect<boolean>
  readonly setAdmin: (url: string, admin: boolean) => Effect.Effect<void>
  readonly joined: (url: string, channel: string) => Effect.Effect<void>
  readonly left: (url: string, channel: string) => Effect.Effect<void>
  readonly renamed: (url: string, from: string, to: string) => Effect.Effect<void>
  /**
   * Before a link's first dial: when the current handle is among `taken` (live sessions of this
   * user and machine), move a defaulted handle to the first free `<base>-N` (issue 23, item 2).
   * None when nothing changed (free, or `--as`).
   */
  /** A dial failed: remember why (shown by whoami, and by tools while the link has never been up). */
  readonly failed: (url: string, text: string) => Effect.Effect<void>
  readonly avoid: (
    taken: ReadonlySet<string>
  ) => Effect.Effect<Option.Option<{ readonly from: string; readonly to: string }>>
}

/** @since 0.1.0 @category models */
export interface Options {
  readonly servers: ReadonlyArray<{ readonly url: string; readonly registration: LocalConfig.Registration }>
  readonly handle: string
  /** `--as` was given: never renamed (SPEC §1.2). */
  readonly explicit: boolean
}

const withoutKey = <V>(m: ReadonlyMap<string, V>, key: string): ReadonlyMap<string, V> => {
  const next = new Map(m)
  next.delete(key)
  return next
}

/** @since 0.1.0 @category constructors */
export const make = (options: Options): Effect.Effect<Links> =>
  Effect.gen(function*() {
    const initial = new Map<string, Link>()
    for (const { registration, url } of options.servers) {
      if (initial.has(url)) continue
      initial.set(url, {
        url,
        registration,
        disabled: undefined,
        generation: undefined,
        upSignal: yield* Deferred.make<Generation, CallFailed>(),
        admin: false,
        path: undefined,
        joined: [],
        joinedAt: new Map(),
        upAt: undefined,
        dialedHandle: undefined,
        rapidDrops: 0,
        announcedDown: false,
        lastError: undefined
      })
    }
    const state = yield* Ref.make<State>({
      handle: { base: options.handle, current: options.handle, generation: 1 },
      links: initial
    })

    const get = (url: string) => Ref.get(state).pipe(Effect.map((s) => Option.fromNullable(s.links.get(url))))

    /** Apply `f` to an enabled link atomically; `undefined` from `f` (or no such link) changes nothing. */
    const modifyLink = <A>(
      url: string,
      f: (link: Link, s: State) => readonly [A, Link] | readonly [A, Link, Handle | undefined] | undefined
    ) =>
      Ref.modify(state, (s): readonly [Option.Option<A>, State] => {
        const link = s.links.get(url)
        const result = link === undefined || link.disabled !== undefined ? undefined : f(link, s)
        if (result === undefined) return [Option.none(), s]
        const handle = result.length === 3 ? result[2] : undefined
        return [Option.some(result[0]), { handle: handle ?? s.handle, links: new Map(s.links).set(url, result[1]) }]
      })

    const awaitGeneration = (url: string): Effect.Effect<Generation, CallFailed> =>
      get(url).pipe(Effect.flatMap(Option.match({
        onNone: () => Effect.fail(new CallFailed({ text: lostText(url), rejected: false })),
        onSome: (link) => {
          if (link.disabled !== undefined) {
            return Effect.fail(new CallFailed({ text: duplicateText(url, link.disabled), rejected: false }))
          }
          if (link.generation !== undefined) return Effect.succeed(link.generation)
          // Never up, and the last dial said why: say it now rather than after the wait.
          if (link.upAt === undefined && link.lastError !== undefined) {
            return Effect.fail(
              new CallFailed({ text: `not connected to \`${url}\`: ${link.lastError}`, rejected: false })
            )
          }
          return Deferred.await(link.upSignal).pipe(
            Effect.timeoutFail({
              duration: Limits.LINK_WAIT_MS,
              onTimeout: () => new CallFailed({ text: lostText(url), rejected: false })
            })
          )
        }
      })))

    const requestOn = (url: string, generation: Generation, frame: Connection.RequestWithoutId) =>
      generation.connection.request(frame).pipe(
        Effect.mapError(toCallFailed(url)),
        Effect.raceFirst(Deferred.await(generation.down))
      )

    const up: Links["up"] = (url, connection, dialedHandle) =>
      Effect.gen(function*() {
        const down = yield* Deferred.make<never, CallFailed>()
        const now = yield* Clock.currentTimeMillis
        const generation: Generation = { connection, down }
        const changed = yield* modifyLink(url, (link) => {
          const next: Link = {
            ...link,
            generation,
            upAt: now,
            dialedHandle,
            path: connection.path,
            admin: connection.admin,
            announcedDown: false,
            lastError: undefined
          }
          return [{ generation, wasDown: link.announcedDown, link: next }, next]
        })
        if (Option.isSome(changed)) {
          const link = changed.value.link
          yield* Deferred.succeed(link.upSignal, generation)
        }
        return changed
      })

    const down: Links["down"] = (url, cause) =>
      Effect.gen(function*() {
        const upSignal = yield* Deferred.make<Generation, CallFailed>()
        const now = yield* Clock.currentTimeMillis
        const changed = yield* modifyLink(url, (link, s) => {
          if (link.generation === undefined) return undefined
          const base: Link = { ...link, generation: undefined, upSignal }
          const announce = (l: Link): readonly [DownOutcome, Link] =>
            l.announcedDown ? [{ _tag: "Quiet" }, l] : [{ _tag: "Disconnected" }, { ...l, announcedDown: true }]
          const stable = link.upAt === undefined || now - link.upAt >= Limits.STABILITY_WINDOW_MS
          const result = ((): readonly [DownOutcome, Link] | readonly [DownOutcome, Link, Handle] => {
            if (stable) return announce({ ...base, rapidDrops: 0 })
            if (cause === "too_large") return announce(base)
            const rapidDrops = link.rapidDrops + 1
            if (rapidDrops < Limits.RAPID_DROP_THRESHOLD) return announce({ ...base, rapidDrops })
            if (rapidDrops > Limits.RAPID_DROP_THRESHOLD) return [{ _tag: "Quiet" }, { ...base, rapidDrops }]
            if (options.explicit) return [{ _tag: "HandleConflict", handle: s.handle.current }, { ...base, rapidDrops }]
            if (s.handle.current !== link.dialedHandle) return [{ _tag: "Quiet" }, { ...base, rapidDrops: 0 }]
            const generation = s.handle.generation + 1
            const handle = { ...s.handle, generation, current: `${s.handle.base}-${generation}` }
            return [{ _tag: "Renamed", from: s.handle.current, to: handle.current }, { ...base, rapidDrops: 0 }, handle]
          })()
          return [
            { outcome: result[0], generation: link.generation },
            result[1],
            result.length === 3 ? result[2] : undefined
          ] as const
        })
        if (Option.isNone(changed)) return Option.none()
        yield* Deferred.fail(changed.value.generation.down, new CallFailed({ text: lostText(url), rejected: false }))
        return Option.some(changed.value.outcome)
      })

    const duplicate: Links["duplicate"] = (url, canonical) =>
      Effect.gen(function*() {
        const changed = yield* modifyLink(url, (link): readonly [Link, Link] => [
          link,
          { ...link, disabled: canonical, generation: undefined, admin: false, joined: [] }
        ])
        if (Option.isNone(changed)) return false
        const failure = new CallFailed({ text: duplicateText(url, canonical), rejected: false })
        if (changed.value.generation !== undefined) yield* Deferred.fail(changed.value.generation.down, failure)
        yield* Deferred.fail(changed.value.upSignal, failure)
        return true
      })

    const update = (url: string, f: (link: Link) => Link) =>
      modifyLink(url, (link) => [undefined, f(link)] as const).pipe(Effect.asVoid)

    const avoid: Links["avoid"] = (taken) =>
      Ref.modify(state, (s) => {
        if (options.explicit || !taken.has(s.handle.current)) return [Option.none(), s] as const
        let generation = s.handle.generation + 1
        while (taken.has(`${s.handle.base}-${generation}`)) generation += 1
        const current = `${s.handle.base}-${generation}`
        return [
          Option.some({ from: s.handle.current, to: current }),
          { ...s, handle: { ...s.handle, generation, current } }
        ] as const
      })

    return {
      avoid,
      failed: (url, text) => update(url, (link) => ({ ...link, lastError: text })),
      handle: Ref.get(state).pipe(Effect.map((s) => s.handle.current)),
      get,
      all: Ref.get(state).pipe(Effect.map((s) => [...s.links.values()])),
      active: Ref.get(state).pipe(Effect.map((s) => [...s.links.values()].filter((l) => l.disabled === undefined))),
      request: (url, frame) => awaitGeneration(url).pipe(Effect.flatMap((g) => requestOn(url, g, frame))),
      requestOn,
      up,
      down,
      duplicate,
      setAdmin: (url, admin) => update(url, (link) => ({ ...link, admin })),
      joined: (url, channel) =>
        Clock.currentTimeMillis.pipe(Effect.flatMap((now) =>
          update(url, (link) => ({
            ...link,
            joined: link.joined.includes(channel) ? link.joined : [...link.joined, channel],
            joinedAt: new Map(link.joinedAt).set(channel, now)
          }))
        )),
      left: (url, channel) =>
        update(url, (link) => ({
          ...link,
          joined: link.joined.filter((c) => c !== channel),
          joinedAt: withoutKey(link.joinedAt, channel)
        })),
      renamed: (url, from, to) =>
        update(url, (link) => {
          const at = link.joinedAt.get(from)
          const joinedAt = withoutKey(link.joinedAt, from)
          return {
            ...link,
            joined: link.joined.includes(from) ? [...link.joined.filter((c) => c !== from), to] : link.joined,
            joinedAt: at === undefined ? joinedAt : new Map(joinedAt).set(to, at)
          }
        })
    }
  })
