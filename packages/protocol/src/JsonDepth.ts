/**
 * JSON nesting, bounded before parsing: a hostile frame of a few hundred thousand nested `[` costs
 * `JSON.parse` (and every recursive step after it) far more than flat JSON of the same size. The
 * common frame is answered by native searches alone: unless it holds more than `limit` brackets it
 * cannot nest deeper than `limit`. Only a frame with many brackets is scanned (outside strings).
 *
 * @since 0.1.0
 */

const OPEN_ARRAY = 0x5b // [
const OPEN_OBJECT = 0x7b // {
const CLOSE_ARRAY = 0x5d // ]
const CLOSE_OBJECT = 0x7d // }
const QUOTE = 0x22 // "
const BACKSLASH = 0x5c // \

/** Whether `text` holds more than `limit` opening brackets (native searches, stops at `limit + 1`). */
const manyBrackets = (text: string, limit: number): boolean => {
  let count = 0
  for (const bracket of ["[", "{"]) {
    let at = text.indexOf(bracket)
    while (at >= 0) {
      if (++count > limit) return true
      at = text.indexOf(bracket, at + 1)
    }
  }
  return false
}

/**
 * Whether the JSON text `text` nests arrays and objects deeper than `limit` (brackets inside strings
 * do not count). For text that is not JSON the answer is only meaningful as "parsing it would not
 * recurse deeper than this".
 *
 * @since 0.1.0
 * @category validation
 */
export const exceeds = (text: string, limit: number): boolean => {
  if (!manyBrackets(text, limit)) return false
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
    } else if (c === QUOTE) {
      inString = true
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limit) return true
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--
    }
  }
  return false
}
