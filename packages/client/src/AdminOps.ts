/**
 * One builder for admin ops (SPEC §2.4): from the arguments of a tool or verb to the wire op,
 * with the defaults of SPEC §4.7 (`visibility` public, `uses` and `expires_in_secs` none) and
 * nothing but the op's own fields.
 *
 * @since 0.1.0
 */
import { Frames } from "@conclave/protocol"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"

/** @since 0.1.0 @category models */
export type Kind = Frames.AdminOpKind

/** @since 0.1.0 @category models */
export type OpOf<K extends Kind> = Extract<Frames.AdminOp, { readonly kind: K }>

type Fields<K extends Kind> = Omit<OpOf<K>, "kind">
type Defaulted = "visibility" | "uses" | "expires_in_secs"

/**
 * What a caller passes: the op's fields, where the defaulted ones may be left out, `undefined`
 * or `null`; other members (e.g. a tool's `server`) are ignored.
 *
 * @since 0.1.0
 * @category models
 */
export type Args<K extends Kind> =
  & {
    readonly [P in keyof Fields<K> as P extends Defaulted ? never : P]: Fields<K>[P]
  }
  & {
    readonly [P in keyof Fields<K> as P extends Defaulted ? P : never]?: Fields<K>[P] | null | undefined
  }

const DEFAULTS: Readonly<Record<Defaulted, unknown>> = { visibility: "public", uses: null, expires_in_secs: null }

const defined = (args: object) => Object.entries(args).filter(([, v]) => v !== undefined && v !== null)

const decodeOp = Schema.decodeUnknownOption(Frames.AdminOp)

/**
 * The op of `kind` from `args`.
 *
 * @since 0.1.0
 * @category constructors
 */
export const make = <K extends Kind>(kind: K, args: Args<K>): OpOf<K> => {
  const fields: Record<string, unknown> = { ...DEFAULTS, ...Object.fromEntries(defined(args)), kind }
  // Decoding keeps the op's own fields only; the arguments were validated by their schemas.
  return Option.getOrElse(decodeOp(fields), () => fields) as OpOf<K>
}
