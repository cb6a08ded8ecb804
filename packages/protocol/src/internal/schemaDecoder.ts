/**
 * Plain decoder functions compiled once from a Schema's AST (D-40: the Schema is the one
 * definition of the rules). A compiled decoder returns exactly what `ParseResult` decodes for the
 * same input under the given options — same fields, defaults, key order, excess properties
 * dropped — or `FAIL`, and never throws more than the Schema's own filter and transformation
 * functions do. It calls the AST's own refinement filters and property signature transformations.
 *
 * Compiling answers `undefined` for any node it does not cover (a declaration, a suspension, a
 * tuple, index signatures, a union that is neither literals nor discriminated by one literal
 * property, parse-option or decoding-fallback annotations, excess-property modes other than
 * `ignore`, …): the caller then decodes with the Schema, which also produces every error.
 *
 * @internal
 */
import * as Option from "effect/Option"
import * as AST from "effect/SchemaAST"

/** The result of a decoder that refuses its input. */
export const FAIL: unique symbol = Symbol.for("@conclave/protocol/schemaDecoder/FAIL")
/** @internal */
export type Fail = typeof FAIL

/** A compiled decoder: the decoded value, or `FAIL`. */
export type Decoder = (input: unknown) => unknown

const hasOwn = (o: object, key: PropertyKey): boolean => Object.prototype.hasOwnProperty.call(o, key)

type Lookup = { readonly [key: PropertyKey]: unknown }

// An absent key among a transformation's slots.
const ABSENT: unique symbol = Symbol("absent")

// Whether decoding a value that decoding with `ast` produced yields an equal value again, for
// every input: validation only (no transformation), and unions that pick the same member again —
// discriminated ones (the value keeps its tag), or ones whose members give back their input as
// it is (literals and keywords, refined or not). A union tried in order over objects is not: a
// member before the one that took the input may take its output (with fewer keys).
const idempotent = (ast: AST.AST): boolean => {
  if (givesInputBack(ast)) return true
  switch (ast._tag) {
    case "Refinement":
      return idempotent(ast.from)
    case "TypeLiteral":
      return ast.indexSignatures.length === 0 && ast.propertySignatures.every((ps) => idempotent(ps.type))
    case "Union":
      return ast.types.every(idempotent) && discriminant(ast) !== undefined
    default:
      return false
  }
}

// Literals and keywords: decoding answers the input itself when it accepts it.
const LEAVES = new Set<AST.AST["_tag"]>([
  "Literal",
  "StringKeyword",
  "NumberKeyword",
  "BooleanKeyword",
  "UndefinedKeyword",
  "UnknownKeyword",
  "AnyKeyword"
])

// Whether decoding with `ast` answers its input itself when it accepts it.
const givesInputBack = (ast: AST.AST): boolean =>
  LEAVES.has(ast._tag) ||
  (AST.isRefinement(ast) && givesInputBack(ast.from)) ||
  (AST.isUnion(ast) && ast.types.every(givesInputBack))

/**
 * Whether decoding with `type` any value that decoding with `source` produced yields an equal value
 * (so the second decode can be skipped), on grounds that hold for any input:
 * - the same AST, `idempotent`;
 * - `source` a type-literal transformation and `type` its `to` side, `idempotent`: the output was
 *   decoded with `to` already;
 * - two unions discriminated by the same key with the same tags, member by member fixed: the value
 *   carries its member's literal, so `type` decodes it with the corresponding member.
 */
const fixedUnder = (source: AST.AST, type: AST.AST): boolean => {
  if (!idempotent(type)) return false
  if (source === type) return true
  if (AST.isTransformation(source)) {
    return source.transformation._tag === "TypeLiteralTransformation" && source.to === type
  }
  if (!AST.isUnion(source) || !AST.isUnion(type) || source.types.length !== type.types.length) return false
  const a = discriminant(source)
  const b = discriminant(type)
  if (a === undefined || b === undefined || a.key !== b.key) return false
  return source.types.every((member, i) => a.tags[i] === b.tags[i] && fixedUnder(member, type.types[i]!))
}

const isString: Decoder = (u) => typeof u === "string" ? u : FAIL
const isNumber: Decoder = (u) => typeof u === "number" ? u : FAIL
const isBoolean: Decoder = (u) => typeof u === "boolean" ? u : FAIL
const isUndefined: Decoder = (u) => u === undefined ? u : FAIL
const isNotNullable: Decoder = (u) => u !== null && u !== undefined ? u : FAIL
const anything: Decoder = (u) => u

// ---------------------------------------------------------------------------------------------
// Object decoders are generated as code: one function per type literal, reading and building
// its properties by name, so that each has its own inline caches (a loop over property names shared
// by every object type is several times slower). Only property names (JSON-quoted, from the AST)
// go into the text; values are checked by compiled decoders passed in as arguments.
// ---------------------------------------------------------------------------------------------

/** Most optional output keys an object decoder is generated for (one literal per key set). */
const MAX_OPTIONAL = 4

const quote = (name: string): string => JSON.stringify(name)

// Object literals with the keys of `names` (in order) whose value is `value(i)`: the keys at
// `optional` positions only when `present(i)` holds. A `switch` over the present keys' bits.
const objectCode = (
  names: ReadonlyArray<string>,
  optional: ReadonlyArray<boolean>,
  value: (i: number) => string,
  present: (i: number) => string
): string => {
  const optionals = names.flatMap((_, i) => optional[i] ? [i] : [])
  const literal = (mask: number) =>
    "{ " + names.flatMap((name, i) => {
      const bit = optionals.indexOf(i)
      return bit >= 0 && (mask & (1 << bit)) === 0 ? [] : [`${quote(name)}: ${value(i)}`]
    }).join(", ") + " }"
  if (optionals.length === 0) return `return ${literal(0)}\n`
  let code = "let m = 0\n"
  optionals.forEach((i, bit) => {
    code += `if (${present(i)}) m |= ${1 << bit}\n`
  })
  code += "switch (m) {\n"
  for (let mask = 0; mask < 1 << optionals.length; mask++) code += `case ${mask}: return ${literal(mask)}\n`
  return code + "}\nreturn FAIL\n"
}

const generate = (body: string, args: Readonly<Record<string, unknown>>): Decoder | undefined => {
  const names = Object.keys(args)
  try {
    const make = new Function(...names, `"use strict"\nreturn (u) => {\n${body}}`) as (
      ...values: ReadonlyArray<unknown>
    ) => Decoder
    return make(...names.map((name) => args[name]))
  } catch {
    // code generation disallowed (`--disallow-code-generation-from-strings`): the Schema decodes
    return undefined
  }
}

// Property names the generated code can hold: any string but `__proto__` (an object literal would
// set the prototype with it).
const usableName = (name: PropertyKey): name is string => typeof name === "string" && name !== "__proto__"

const RECORD_CHECK = `if (typeof u !== "object" || u === null || Array.isArray(u)) return FAIL\n`

/**
 * Compiles ASTs under one set of parse options. Only `onExcessProperty: "ignore"` (the default)
 * without `exact` or `propertyOrder: "original"` is covered; other options compile nothing.
 */
export const makeCompiler = (options: AST.ParseOptions): (ast: AST.AST) => Decoder | undefined => {
  const covered = (options.onExcessProperty ?? "ignore") === "ignore" && options.exact !== true &&
    (options.propertyOrder ?? "none") === "none"
  const memo = new Map<AST.AST, Decoder | undefined>()
  const annotated = (ast: AST.AST): boolean =>
    Option.isSome(AST.getParseOptionsAnnotation(ast)) || Option.isSome(AST.getDecodingFallbackAnnotation(ast))

  const compile = (ast: AST.AST): Decoder | undefined => {
    if (!covered) return undefined
    if (memo.has(ast)) return memo.get(ast)
    memo.set(ast, undefined) // a cycle (only through a Suspend, which is not covered) compiles nothing
    const decoder = annotated(ast) ? undefined : node(ast)
    memo.set(ast, decoder)
    return decoder
  }

  const node = (ast: AST.AST): Decoder | undefined => {
    switch (ast._tag) {
      case "Literal": {
        const literal = ast.literal
        return (u) => u === literal ? u : FAIL
      }
      case "StringKeyword":
        return isString
      case "NumberKeyword":
        return isNumber
      case "BooleanKeyword":
        return isBoolean
      case "UndefinedKeyword":
        return isUndefined
      case "UnknownKeyword":
      case "AnyKeyword":
        return anything
      case "Refinement":
        return refinement(ast)
      case "TypeLiteral":
        return typeLiteral(ast)
      case "Union":
        return union(ast)
      case "Transformation":
        return transformation(ast)
      default:
        return undefined
    }
  }

  // A chain of refinements is one generated function: the innermost decoder, then each filter from
  // the inside out (each call site its own), as `ParseResult` runs them.
  const refinement = (ast: AST.Refinement): Decoder | undefined => {
    const chain: Array<AST.Refinement> = []
    let inner: AST.AST = ast
    while (AST.isRefinement(inner) && (inner === ast || !annotated(inner))) {
      chain.unshift(inner)
      inner = inner.from
    }
    const from = compile(inner)
    if (from === undefined) return undefined
    const args: Record<string, unknown> = { FAIL, from, options }
    let body = "const a = from(u)\nif (a === FAIL) return FAIL\n"
    chain.forEach((refinement, i) => {
      args[`ast${i}`] = refinement
      body += `if (ast${i}.filter(a, options, ast${i})._tag === "Some") return FAIL\n`
    })
    return generate(body + "return a\n", args)
  }

  // The output is built in property-signature order, as `ParseResult` builds it; an absent
  // optional key stays absent, an absent required key is decoded as the value reading it gives.
  const typeLiteral = (ast: AST.TypeLiteral): Decoder | undefined => {
    if (ast.indexSignatures.length > 0) return undefined
    if (ast.propertySignatures.length === 0) return isNotNullable
    const names: Array<string> = []
    const optional: Array<boolean> = []
    const args: Record<string, unknown> = { FAIL, ABSENT, hasOwn }
    let body = RECORD_CHECK
    for (const [i, ps] of ast.propertySignatures.entries()) {
      const decoder = compile(ps.type)
      if (!usableName(ps.name) || decoder === undefined) return undefined
      names.push(ps.name)
      optional.push(ps.isOptional)
      args[`d${i}`] = decoder
      const read = `u[${quote(ps.name)}]`
      body += ps.isOptional
        ? `let v${i} = ABSENT\nif (hasOwn(u, ${
          quote(ps.name)
        })) { v${i} = d${i}(${read}); if (v${i} === FAIL) return FAIL }\n`
        : `const v${i} = d${i}(${read})\nif (v${i} === FAIL) return FAIL\n`
    }
    if (optional.filter(Boolean).length > MAX_OPTIONAL) return undefined
    body += objectCode(names, optional, (i) => `v${i}`, (i) => `v${i} !== ABSENT`)
    return generate(body, args)
  }

  const union = (ast: AST.Union): Decoder | undefined => {
    const members: Array<Decoder> = []
    for (const member of ast.types) {
      const decoder = compile(member)
      if (decoder === undefined) return undefined
      members.push(decoder)
    }
    const tagged = discriminant(ast)
    if (tagged === undefined) {
      // No member has a literal property: `ParseResult` tries them in order, the first success wins.
      if (ast.types.some((member) => literalsOf(member).length > 0)) return undefined
      const args: Record<string, unknown> = { FAIL }
      let body = "let v\n"
      members.forEach((member, i) => {
        args[`m${i}`] = member
        body += `v = m${i}(u)\nif (v !== FAIL) return v\n`
      })
      return generate(body + "return FAIL\n", args)
    }
    const byTag = new Map<string, Decoder>()
    ast.types.forEach((member, i) => byTag.set(tagged.tags[i]!, members[i]!))
    const key = tagged.key
    // The member whose literal `String(u[key])` names, as `ParseResult`'s search tree picks it.
    return (u) => {
      if (typeof u !== "object" || u === null || !hasOwn(u, key)) return FAIL
      const member = byTag.get(String((u as Lookup)[key]))
      return member === undefined ? FAIL : member(u)
    }
  }

  // `from` (a type literal) decoded into slots, the property signature transformations applied to
  // the slots, then `to` (a type literal) decoded from them: what `ParseResult` does with an
  // intermediate object (absent slot = absent key), without building and mutating one. A `to`
  // property that holds its `from` property's value untouched is not decoded again where that
  // provably yields an equal value (`fixedUnder`).
  const transformation = (ast: AST.Transformation): Decoder | undefined => {
    const kind = ast.transformation
    if (kind._tag !== "TypeLiteralTransformation" || !AST.isTypeLiteral(ast.from) || !AST.isTypeLiteral(ast.to)) {
      return undefined
    }
    const source = ast.from
    if (source.indexSignatures.length > 0 || ast.to.indexSignatures.length > 0) return undefined
    const slotOf = new Map<PropertyKey, number>()
    const slot = (name: PropertyKey): number => {
      let at = slotOf.get(name)
      if (at === undefined) {
        at = slotOf.size
        slotOf.set(name, at)
      }
      return at
    }
    const args: Record<string, unknown> = { FAIL, ABSENT, hasOwn, none: Option.none(), some: Option.some }
    let body = RECORD_CHECK
    const froms = source.propertySignatures.map((ps) => ({ ps, decoder: compile(ps.type) }))
    for (const [i, { decoder, ps }] of froms.entries()) {
      if (!usableName(ps.name) || decoder === undefined) return undefined
      args[`f${i}`] = decoder
      const s = `s${slot(ps.name)}`
      const read = `u[${quote(ps.name)}]`
      body += ps.isOptional
        ? `if (hasOwn(u, ${quote(ps.name)})) { ${s} = f${i}(${read}); if (${s} === FAIL) return FAIL }\n`
        : `${s} = f${i}(${read})\nif (${s} === FAIL) return FAIL\n`
    }
    const transformed = new Set<PropertyKey>()
    for (const [k, step] of kind.propertySignatureTransformations.entries()) {
      if (!usableName(step.from) || !usableName(step.to)) return undefined
      transformed.add(step.from)
      transformed.add(step.to)
      args[`t${k}`] = step.decode
      const from = `s${slot(step.from)}`
      body += `{ const o = t${k}(${from} === ABSENT ? none : some(${from})); ${from} = ABSENT; ` +
        `if (o._tag === "Some") s${slot(step.to)} = o.value }\n`
    }
    const names: Array<string> = []
    const optional: Array<boolean> = []
    for (const [i, ps] of ast.to.propertySignatures.entries()) {
      if (!usableName(ps.name)) return undefined
      names.push(ps.name)
      optional.push(ps.isOptional)
      const s = `s${slot(ps.name)}`
      const before = source.propertySignatures.find((f) => f.name === ps.name)
      const again = before !== undefined && before.isOptional === ps.isOptional && !transformed.has(ps.name) &&
        fixedUnder(before.type, ps.type)
      if (again) {
        // required on both sides: decoded above, so never absent here
        body += `const r${i} = ${s}\n`
        continue
      }
      const decoder = compile(ps.type)
      if (decoder === undefined) return undefined
      args[`g${i}`] = decoder
      // what reading an absent key of the intermediate object yields (a fresh object's prototype)
      args[`missing${i}`] = ({} as Lookup)[ps.name]
      body += ps.isOptional
        ? `let r${i} = ABSENT\nif (${s} !== ABSENT) { r${i} = g${i}(${s}); if (r${i} === FAIL) return FAIL }\n`
        : `const r${i} = g${i}(${s} === ABSENT ? missing${i} : ${s})\nif (r${i} === FAIL) return FAIL\n`
    }
    if (optional.filter(Boolean).length > MAX_OPTIONAL) return undefined
    const slots = Array.from({ length: slotOf.size }, (_, j) => `s${j} = ABSENT`).join(", ")
    body = RECORD_CHECK + `let ${slots}\n` + body.slice(RECORD_CHECK.length)
    body += objectCode(names, optional, (i) => `r${i}`, (i) => `r${i} !== ABSENT`)
    return generate(body, args)
  }

  return compile
}

// The required literal properties of a member, on the encoded side, as `ParseResult.getLiterals`
// reads them for decoding.
const literalsOf = (ast: AST.AST): ReadonlyArray<readonly [PropertyKey, AST.Literal]> => {
  switch (ast._tag) {
    case "TypeLiteral": {
      const out: Array<readonly [PropertyKey, AST.Literal]> = []
      for (const ps of ast.propertySignatures) {
        const type = AST.encodedAST(ps.type)
        if (AST.isLiteral(type) && !ps.isOptional) out.push([ps.name, type])
      }
      return out
    }
    case "Refinement":
      return literalsOf(ast.from)
    case "Transformation":
      return literalsOf(ast.from)
    default:
      return []
  }
}

/**
 * The key and each member's tag when every member has exactly one required literal property, the
 * same one, with distinct values: then `ParseResult` decodes an input with exactly the member its
 * tag names, and refuses any other.
 */
export const discriminant = (
  ast: AST.Union
): { readonly key: PropertyKey; readonly tags: ReadonlyArray<string> } | undefined => {
  let key: PropertyKey | undefined
  const tags: Array<string> = []
  for (const member of ast.types) {
    const literals = literalsOf(member)
    if (literals.length !== 1) return undefined
    const [name, literal] = literals[0]!
    if (key !== undefined && name !== key) return undefined
    key = name
    const tag = String(literal.literal)
    if (tags.includes(tag)) return undefined
    tags.push(tag)
  }
  return key === undefined ? undefined : { key, tags }
}

/**
 * For a union discriminated by one literal property: each member's compiled decoder by its tag,
 * for the members that compile (the others are left to the Schema).
 */
export const compileMembers = (
  ast: AST.AST,
  options: AST.ParseOptions
): ReadonlyMap<string, Decoder> => {
  const out = new Map<string, Decoder>()
  if (!AST.isUnion(ast)) return out
  const tagged = discriminant(ast)
  if (tagged === undefined) return out
  const compile = makeCompiler(options)
  ast.types.forEach((member, i) => {
    const decoder = compile(member)
    if (decoder !== undefined) out.set(tagged.tags[i]!, decoder)
  })
  return out
}
