/**
 * The soak's measuring parts: delivery counting from the raw frame text (`SeqSet`, `channelMsgSeq`)
 * and the memory arithmetic (`growthPct`, `median`, `mib`).
 *
 * @since 0.1.0
 */

/** Growth from `from` to `to` in percent, one decimal (0 when `from` is 0). @since 0.1.0 @category soak */
export const growthPct = (from: number, to: number): number =>
  from === 0 ? 0 : Math.round(((to - from) / from) * 1000) / 10

/** Bytes in MiB, one decimal. @since 0.1.0 @category soak */
export const mib = (bytes: number): number => Math.round((bytes / 1048576) * 10) / 10

/** The median (the upper one of an even count; 0 for none). @since 0.1.0 @category soak */
export const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 0 ? 0 : s[Math.floor(s.length / 2)]!
}

/**
 * A growable bitmap of sequence numbers: one bit per seq, so a 30-minute soak at 1 000 msg/s keeps
 * about 225 KB per subscriber instead of a `Set` entry per message.
 *
 * @since 0.1.0
 * @category soak
 */
export class SeqSet {
  private bits = new Uint8Array(1024)
  private n = 0
  /** Distinct seqs added. */
  get size(): number {
    return this.n
  }
  /** Add `seq`; whether it was new (false for a repeat or a seq that is not a whole number ≥ 0). */
  add(seq: number): boolean {
    if (!Number.isInteger(seq) || seq < 0) return false
    const byte = seq >>> 3
    if (byte >= this.bits.length) {
      let len = this.bits.length * 2
      while (len <= byte) len *= 2
      const grown = new Uint8Array(len)
      grown.set(this.bits)
      this.bits = grown
    }
    const mask = 1 << (seq & 7)
    if ((this.bits[byte]! & mask) === 0) {
      this.bits[byte] = this.bits[byte]! | mask
      this.n++
      return true
    }
    return false
  }
  has(seq: number): boolean {
    if (!Number.isInteger(seq) || seq < 0) return false
    const byte = seq >>> 3
    return byte < this.bits.length && (this.bits[byte]! & (1 << (seq & 7))) !== 0
  }
}

const channelMsgPrefix = `{"type":"channel_msg",`
const seqKey = `"seq":`

/**
 * The `seq` of a `channel_msg` frame read straight from its JSON text, or `undefined` for any other
 * frame (which then takes the decoding path). JSON escapes every quote inside a string, so `"seq":`
 * can only occur as a key; the payload (`kind`, `text`) has none.
 *
 * @since 0.1.0
 * @category soak
 */
export const channelMsgSeq = (text: string): number | undefined => {
  if (!text.startsWith(channelMsgPrefix)) return undefined
  const at = text.indexOf(seqKey)
  if (at < 0) return undefined
  let i = at + seqKey.length
  let seq = 0
  let digits = 0
  for (; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 48 || c > 57) break
    seq = seq * 10 + (c - 48)
    digits++
  }
  return digits === 0 || digits > 15 ? undefined : seq
}

/** One sampling round of the soak: per node, RSS and open descriptors. @since 0.1.0 @category soak */
export interface Sample {
  readonly atMs: number
  /** Per node. */
  readonly rss: ReadonlyArray<number>
  readonly fds: ReadonlyArray<number>
}

/**
 * The RSS a soak compares, per node: the median of the last `n` samples taken before `warmHeapAtMs`
 * (the warm-up's heap sample) against the median of the last `n` samples of the run (taken before
 * the final heap sample). The heap probe forces two full GCs, after which V8 gives back committed
 * heap and the RSS stays low for a while: both windows are read before a forced GC, never one just
 * after it (with no sample before the warm-up's heap sample, the first `n` of the run are the baseline).
 * The soak's windows are a minute long (`n` = 12 samples 5 s apart): V8 also gives back old-space
 * pages by itself now and then and takes them again within seconds, and a dip of a sample or two
 * then moves neither median, in either direction.
 *
 * @since 0.1.0
 * @category soak
 */
export const rssWindows = (
  samples: ReadonlyArray<Sample>,
  warmHeapAtMs: number,
  nodes: number,
  n = 3
): ReadonlyArray<{ readonly warm: number; readonly end: number }> => {
  const before = samples.filter((s) => s.atMs < warmHeapAtMs)
  const warm = before.length > 0 ? before.slice(-n) : samples.slice(0, n)
  const end = samples.slice(-n)
  return Array.from({ length: nodes }, (_, i) => ({
    warm: median(warm.map((s) => s.rss[i]!)),
    end: median(end.map((s) => s.rss[i]!))
  }))
}
