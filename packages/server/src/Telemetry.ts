/**
 * OTLP export of traces and logs (SPEC §3.20, DECISIONS D-33) through `@effect/opentelemetry`'s
 * `Otlp` module, enabled iff `CONCLAVE_OTLP_ENDPOINT` is set and non-empty. The value is the
 * collector base URL (a trailing `/` is trimmed): spans go to `<base>/v1/traces`, log records to
 * `<base>/v1/logs`. `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`, values URL-decoded) is sent with
 * every export; `OTEL_BSP_SCHEDULE_DELAY` / `OTEL_BLRP_SCHEDULE_DELAY` (ms) set the batch delays.
 * If the exporter cannot be built the server logs a warning and runs without it. Exporters flush
 * when the layer's scope closes.
 *
 * @since 0.1.0
 */
import * as Otlp from "@effect/opentelemetry/Otlp"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Config from "effect/Config"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { VERSION } from "./internal/version.js"

/** @since 0.1.0 @category constants */
export const SERVICE_NAME = "conclave"
/** @since 0.1.0 @category constants */
export const SERVICE_VERSION = VERSION

/**
 * Parse `OTEL_EXPORTER_OTLP_HEADERS`: comma-separated `key=value` pairs, values URL-decoded.
 * Entries without `=` or with an empty key are skipped.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parseHeaders = (raw: string): Record<string, string> => {
  const headers: Record<string, string> = {}
  for (const part of raw.split(",")) {
    const eq = part.indexOf("=")
    if (eq <= 0) continue
    const key = part.slice(0, eq).trim()
    let value = part.slice(eq + 1).trim()
    try {
      value = decodeURIComponent(value)
    } catch {
      // keep the raw value
    }
    if (key.length > 0) headers[key] = value
  }
  return headers
}

/** The export settings read from the environment, or none when export is off. @since 0.1.0 @category models */
export interface Settings {
  readonly baseUrl: string
  readonly headers: Record<string, string>
  readonly tracesDelay: Option.Option<Duration.Duration>
  readonly logsDelay: Option.Option<Duration.Duration>
}

const delay = (name: string) =>
  Config.option(Config.integer(name)).pipe(
    Config.map(Option.filter((ms) => ms > 0)),
    Config.map(Option.map(Duration.millis)),
    Config.orElse(() => Config.succeed(Option.none<Duration.Duration>()))
  )

/** @since 0.1.0 @category config */
export const settings: Config.Config<Option.Option<Settings>> = Config.all({
  endpoint: Config.option(Config.string("CONCLAVE_OTLP_ENDPOINT")),
  headers: Config.option(Config.string("OTEL_EXPORTER_OTLP_HEADERS")),
  tracesDelay: delay("OTEL_BSP_SCHEDULE_DELAY"),
  logsDelay: delay("OTEL_BLRP_SCHEDULE_DELAY")
}).pipe(
  Config.map(({ endpoint, headers, logsDelay, tracesDelay }) =>
    Option.filter(Option.map(endpoint, (e) => e.trim().replace(/\/+$/, "")), (e) => e.length > 0).pipe(
      Option.map((baseUrl) => ({
        baseUrl,
        headers: Option.match(headers, { onNone: () => ({}), onSome: parseHeaders }),
        tracesDelay,
        logsDelay
      }))
    )
  )
)

/** The OTLP layer for explicit settings. @since 0.1.0 @category layers */
export const layerOtlp = (s: Settings): Layer.Layer<never> =>
  Otlp.layerJson({
    baseUrl: s.baseUrl,
    resource: { serviceName: SERVICE_NAME, serviceVersion: SERVICE_VERSION },
    headers: s.headers,
    ...Option.match(s.tracesDelay, { onNone: () => ({}), onSome: (d) => ({ tracerExportInterval: d }) }),
    ...Option.match(s.logsDelay, { onNone: () => ({}), onSome: (d) => ({ loggerExportInterval: d }) }),
    shutdownTimeout: Duration.seconds(3)
  }).pipe(Layer.provide(FetchHttpClient.layer))

/**
 * Export iff `CONCLAVE_OTLP_ENDPOINT` is set; otherwise (or when the endpoint is unusable) nothing,
 * with a warning in the latter case.
 *
 * @since 0.1.0
 * @category layers
 */
export const layer: Layer.Layer<never> = Layer.unwrapEffect(
  Effect.gen(function*() {
    const found = yield* settings
    if (Option.isNone(found)) return Layer.empty
    const s = found.value
    if (!URL.canParse(s.baseUrl)) {
      yield* Effect.logWarning("OTLP export disabled: CONCLAVE_OTLP_ENDPOINT is not a URL").pipe(
        Effect.annotateLogs({ endpoint: s.baseUrl })
      )
      return Layer.empty
    }
    return layerOtlp(s)
  }).pipe(
    Effect.catchAllCause((cause) =>
      Effect.as(Effect.logWarning("OTLP export disabled: the exporter could not be built", cause), Layer.empty)
    )
  )
)
