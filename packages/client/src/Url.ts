/**
 * Server URL normalization (D-28): the form stored in `config.toml` and compared everywhere.
 *
 * @since 0.1.0
 */
import * as Either from "effect/Either"

const SCHEMES: Readonly<Record<string, string>> = { "ws:": "ws:", "wss:": "wss:", "http:": "ws:", "https:": "wss:" }

/**
 * Normalize a server URL: lowercase scheme and host, default port dropped, no trailing `/`.
 * Only `ws://` and `wss://` are accepted (`http://` and `https://` map to them). Path and query are
 * kept as given (a query still reaches the server, SPEC §2.1). Left is a user-facing error text.
 *
 * @since 0.1.0
 * @category normalization
 */
export const normalize = (url: string): Either.Either<string, string> => {
  const text = url.trim()
  let parsed: URL
  try {
    parsed = new URL(text)
  } catch {
    return Either.left(`invalid server URL \`${url}\`${schemeHint(text)}`)
  }
  const scheme = SCHEMES[parsed.protocol]
  if (scheme === undefined) {
    return Either.left(`unsupported URL scheme in \`${url}\` (expected ws:// or wss://)${schemeHint(text)}`)
  }
  if (parsed.hostname === "") return Either.left(`server URL \`${url}\` has no host`)
  if (parsed.hash !== "") return Either.left(`server URL \`${url}\` must not contain a fragment`)
  if (parsed.port !== "" && parsed.port === defaultPort(scheme)) parsed.port = ""
  const userinfo = parsed.username === ""
    ? ""
    : `${parsed.username}${parsed.password === "" ? "" : `:${parsed.password}`}@`
  const path = parsed.pathname.replace(/\/+$/, "")
  return Either.right(`${scheme}//${userinfo}${parsed.host.toLowerCase()}${path}${parsed.search}`)
}

/** `host:port` typed without a scheme: suggest the ws:// URL (issue 23, item 6). */
const schemeHint = (text: string): string =>
  text !== "" && !text.includes("://") && /^[A-Za-z0-9.\-[\]:]+(\/.*)?$/.test(text)
    ? `; did you mean \`ws://${text}\`?`
    : ""

const defaultPort = (scheme: string): string => (scheme === "wss:" ? "443" : "80")

/** Normalize when possible, otherwise keep the text as given (for comparisons). @since 0.1.0 @category normalization */
export const normalizeOrSelf = (url: string): string => Either.getOrElse(normalize(url), () => url)
