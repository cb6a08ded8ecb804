// Latency histogram: 5-µs buckets up to 10 s (values above go to the last bucket, max kept exactly).
const BUCKET_US = 5
const BUCKETS = 2_000_001

export class Histogram {
  constructor() {
    this.counts = new Uint32Array(BUCKETS)
    this.n = 0
    this.max = 0
  }

  reset() {
    this.counts.fill(0)
    this.n = 0
    this.max = 0
  }

  record(us) {
    if (us < 0) us = 0
    let i = (us / BUCKET_US) | 0
    if (i >= BUCKETS) i = BUCKETS - 1
    this.counts[i]++
    this.n++
    if (us > this.max) this.max = us
  }

  /** Percentiles in µs (bucket upper bound), e.g. [50, 90, 99, 99.9]. */
  percentiles(ps) {
    const out = {}
    if (this.n === 0) {
      for (const p of ps) out[`p${p}`] = null
      out.max = null
      return out
    }
    const targets = ps.map((p) => Math.max(1, Math.ceil((p / 100) * this.n)))
    let cum = 0
    let j = 0
    for (let i = 0; i < BUCKETS && j < ps.length; i++) {
      cum += this.counts[i]
      while (j < ps.length && cum >= targets[j]) {
        out[`p${ps[j]}`] = Math.min((i + 1) * BUCKET_US, Math.round(this.max))
        j++
      }
    }
    out.max = Math.round(this.max)
    return out
  }
}

export const PCTS = [50, 90, 99, 99.9]
