/**
 * The live permission policy (SPEC §1.5, D-2): the default level and the per-scope overrides, in
 * memory only, in one `Ref`.
 *
 * @since 0.1.0
 */
import { LocalConfig, Permission, Url } from "@conclave/client"
import * as Effect from "effect/Effect"
import * as Ref from "effect/Ref"

/** @since 0.1.0 @category models */
export interface Policy {
  readonly current: Effect.Effect<Permission.Policy>
  readonly level: (server: string, scope: Permission.Scope) => Effect.Effect<Permission.Level>
  readonly setDefault: (level: Permission.Level) => Effect.Effect<void>
  readonly setOverride: (server: string, channel: string | null, level: Permission.Level) => Effect.Effect<void>
  /** A channel was renamed: its override follows it. */
  readonly moveOverride: (server: string, from: string, to: string) => Effect.Effect<void>
}

/** @since 0.1.0 @category constructors */
export const make = (initial: Permission.Policy): Effect.Effect<Policy> =>
  Effect.map(
    Ref.make<LocalConfig.LocalConfig>({
      ...LocalConfig.empty,
      default_permission: initial.default_permission,
      overrides: initial.overrides
    }),
    (ref) => ({
      current: Ref.get(ref),
      level: (server, scope) => Ref.get(ref).pipe(Effect.map((p) => Permission.resolve(p, server, scope))),
      setDefault: (level) => Ref.update(ref, (p) => LocalConfig.setDefault(p, level)),
      setOverride: (server, channel, level) =>
        Ref.update(ref, (p) => LocalConfig.setOverride(p, { server, channel, level })),
      moveOverride: (server, from, to) =>
        Ref.update(ref, (p) => {
          const hit = p.overrides.find((o) => Url.normalizeOrSelf(o.server) === server && o.channel === from)
          if (hit === undefined) return p
          return LocalConfig.setOverride(
            { ...p, overrides: p.overrides.filter((o) => o !== hit) },
            { server, channel: to, level: hit.level }
          )
        })
    })
  )
