/**
 * What every verb needs from its environment: the config directory (from the global
 * `--config-dir`), the key, `config.toml`, and flag parsing shared between verbs.
 *
 * @since 0.1.0
 */
import { ConfigDir, Identity, LocalConfig, Url } from "@conclave/client"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { CliError } from "./CliError.js"
import { GlobalOptions } from "./GlobalOptions.js"

/** The resolved config directory. @since 0.1.0 @category config */
export const configDir: Effect.Effect<string, never, GlobalOptions> = Effect.flatMap(
  GlobalOptions,
  (g) => ConfigDir.resolve(g.configDir)
)

const toCli = (e: { readonly message: string }) => new CliError({ message: e.message, cause: e })

/** The machine key; a missing key suggests `conclave key`. @since 0.1.0 @category config */
export const loadIdentity: Effect.Effect<Identity.Identity, CliError, GlobalOptions> = configDir.pipe(
  Effect.flatMap((dir) => Identity.load(dir)),
  Effect.mapError(toCli)
)

/** @since 0.1.0 @category config */
export const loadConfig: Effect.Effect<LocalConfig.LocalConfig, CliError, GlobalOptions> = configDir.pipe(
  Effect.flatMap((dir) => LocalConfig.load(dir)),
  Effect.mapError(toCli)
)

/** Apply `f` to `config.toml` and write it back atomically. @since 0.1.0 @category config */
export const updateConfig = (
  f: (c: LocalConfig.LocalConfig) => LocalConfig.LocalConfig
): Effect.Effect<LocalConfig.LocalConfig, CliError, GlobalOptions> =>
  Effect.gen(function*() {
    const dir = yield* configDir
    const current = yield* LocalConfig.load(dir).pipe(Effect.mapError(toCli))
    const next = f(current)
    yield* LocalConfig.save(dir, next).pipe(Effect.mapError(toCli))
    return next
  })

const fromEither = <A>(e: Either.Either<A, string>): Effect.Effect<A, CliError> =>
  Either.match(e, { onLeft: (message) => Effect.fail(new CliError({ message })), onRight: Effect.succeed })

/** A server URL, normalized (D-28). @since 0.1.0 @category parsing */
export const parseUrl = (url: string) => fromEither(Url.normalize(url))

/** The session handle of one-shot verbs (SPEC §1.2). @since 0.1.0 @category constants */
export const cliHandle = (): string => `cli-${process.pid}`
