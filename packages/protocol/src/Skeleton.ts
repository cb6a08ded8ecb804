/**
 * Name skeletons (issue 22, after Unicode TS #39 §4): two names that look alike have the same
 * skeleton, so uniqueness is checked on it — `alice`, `Alice`, `ａｌｉｃｅ` (fullwidth) and `аlice`
 * (Cyrillic `а`) are one name; so are `ops` and `оps` (Cyrillic `о`).
 *
 * The skeleton is: NFKC (fullwidth and mathematical letters, ligatures, compatibility forms →
 * their plain letters), canonical decomposition (so a mark is compared, not a precomposed letter),
 * full case folding, then each character mapped through a compact table of letters that render
 * like a Latin letter or digit (Cyrillic, Greek, Latin look-alikes such as `l`/`1`/`|`), and the
 * sequence `rn` read as `m`. It is a comparison key, never shown. Case folding wins over TS #39's
 * `I`/`l` pair: `ALICE` is `alice`, so a capital `I` is an `i`.
 *
 * @since 0.1.0
 */

// Prototype (Latin) for each confusable character. Keys may be upper or lower case: the mapping is
// applied before and after folding.
const table: Readonly<Record<string, string>> = {
  // Cyrillic lower case
  "а": "a",
  "г": "r",
  "е": "e",
  "з": "3",
  "к": "k",
  "о": "o",
  "р": "p",
  "с": "c",
  "у": "y",
  "х": "x",
  "ѕ": "s",
  "і": "i",
  "ј": "j",
  "ԁ": "d",
  "ԛ": "q",
  "ԝ": "w",
  "һ": "h",
  "ӏ": "l",
  "ү": "y",
  "ѵ": "v",
  "ԍ": "g",
  // Cyrillic upper case (folded forms differ from their look: map them first)
  "А": "a",
  "В": "b",
  "Е": "e",
  "З": "3",
  "К": "k",
  "М": "m",
  "Н": "h",
  "О": "o",
  "Р": "p",
  "С": "c",
  "Т": "t",
  "У": "y",
  "Х": "x",
  "Ѕ": "s",
  "І": "i",
  "Ј": "j",
  "Ԛ": "q",
  "Ԝ": "w",
  "Ӏ": "l",
  "Ү": "y",
  // Greek lower case
  "α": "a",
  "γ": "y",
  "ι": "i",
  "κ": "k",
  "ν": "v",
  "ο": "o",
  "ρ": "p",
  "σ": "o",
  "τ": "t",
  "υ": "u",
  "χ": "x",
  "ω": "w",
  // Greek upper case
  "Α": "a",
  "Β": "b",
  "Ε": "e",
  "Ζ": "z",
  "Η": "h",
  "Ι": "i",
  "Κ": "k",
  "Μ": "m",
  "Ν": "n",
  "Ο": "o",
  "Ρ": "p",
  "Τ": "t",
  "Υ": "y",
  "Χ": "x",
  // Latin and common look-alikes
  "1": "l",
  "|": "l",
  "ı": "i",
  "ɩ": "i",
  "ǀ": "l",
  "ℓ": "l",
  "0": "o",
  "ɑ": "a",
  "ɡ": "g",
  "ʏ": "y",
  "ᴠ": "v",
  "ᴡ": "w",
  "ᴢ": "z",
  "ꓲ": "l",
  "ꓳ": "o"
}

const foldOne = (char: string): string => {
  const direct = table[char]
  if (direct !== undefined) return direct
  // full case folding: upper-casing first folds ß → ss and final ς → σ like `toCasefold`
  let out = ""
  for (const c of char.toUpperCase().toLowerCase()) out += table[c] ?? c
  return out
}

/**
 * The skeleton of `name`: equal for names that look alike (see the module's description).
 *
 * @since 0.1.0
 * @category comparison
 */
export const skeleton = (name: string): string => {
  let out = ""
  for (const char of name.normalize("NFKC").normalize("NFD")) out += foldOne(char)
  return out.replace(/rn/g, "m").normalize("NFD")
}

/**
 * Whether two names look alike (their skeletons are equal).
 *
 * @since 0.1.0
 * @category comparison
 */
export const confusable = (a: string, b: string): boolean => skeleton(a) === skeleton(b)
