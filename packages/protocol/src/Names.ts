/**
 * Names and session paths (SPEC §1.1, DECISIONS D-15).
 *
 * @since 0.1.0
 */
import * as Schema from "effect/Schema"
import { NAME_MAX_LENGTH } from "./Limits.js"

/** @since 0.1.0 @category models */
export const SessionPath = Schema.Struct({
  user: Schema.String,
  machine: Schema.String,
  session: Schema.String
}).annotations({ identifier: "SessionPath" })

/** @since 0.1.0 @category models */
export type SessionPath = typeof SessionPath.Type

// Whitespace, control and format (zero-width, bidi) characters: invisible or layout-changing text
// in a name is how one identity is made to look like another. Lone surrogates (\p{Cs}) are not text
// at all: UTF-8 storage would turn distinct names into the same U+FFFD string.
const forbidden = /[\s\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}\p{Zs}/]/u
// Characters that render as nothing or as blank space: default-ignorable code points (variation
// selectors, the combining grapheme joiner, Hangul fillers, …) and blank symbols (the braille blank).
// `alice` followed by one of them looks exactly like `alice`.
const invisible = /[\p{Default_Ignorable_Code_Point}\u2800]/u

/**
 * Why a name is not valid under D-15, or undefined when it is.
 *
 * @since 0.1.0
 * @category validation
 */
export const nameProblem = (name: string): string | undefined => {
  if (name.length === 0) return "must not be empty"
  const length = [...name].length
  if (length > NAME_MAX_LENGTH) return `must be at most ${NAME_MAX_LENGTH} characters`
  if (name.includes("/")) return "must not contain `/`"
  if (forbidden.test(name)) return "must not contain whitespace or control characters"
  if (invisible.test(name)) return "must not contain invisible characters"
  // one spelling per name: a decomposed `é` and a precomposed one look the same
  if (name.normalize("NFC") !== name) return "must be in Unicode normalization form C (NFC)"
  return undefined
}

/** @since 0.1.0 @category validation */
export const isValidName = (name: string): boolean => nameProblem(name) === undefined

/**
 * A path component in the reference's sense (SPEC §1.1): non-empty and free of `/`.
 *
 * @since 0.1.0
 * @category validation
 */
export const isPathComponent = (s: string): boolean => s.length > 0 && !s.includes("/")

/** @since 0.1.0 @category constructors */
export const makePath = (user: string, machine: string, session: string): SessionPath => ({ user, machine, session })

/** @since 0.1.0 @category rendering */
export const renderPath = (p: SessionPath): string => `${p.user}/${p.machine}/${p.session}`

/**
 * Parse `user/machine/session`: exactly three non-empty components.
 *
 * @since 0.1.0
 * @category parsing
 */
export const parsePath = (s: string): SessionPath | undefined => {
  const parts = s.split("/")
  if (parts.length !== 3) return undefined
  const [user, machine, session] = parts as [string, string, string]
  if (user.length === 0 || machine.length === 0 || session.length === 0) return undefined
  return { user, machine, session }
}

/** @since 0.1.0 @category equivalence */
export const pathEquals = (a: SessionPath, b: SessionPath): boolean =>
  a.user === b.user && a.machine === b.machine && a.session === b.session

/**
 * A name valid under D-15, as a schema (for inputs that must be valid before any write).
 *
 * @since 0.1.0
 * @category schemas
 */
export const Name = Schema.String.pipe(
  Schema.filter((s) => {
    const problem = nameProblem(s)
    return problem === undefined ? true : `name ${problem}`
  }),
  Schema.annotations({
    identifier: "Name",
    description: "1–64 characters in NFC, no `/`, no whitespace, no control or invisible characters"
  })
)
