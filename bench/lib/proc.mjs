// Readers for /proc (Linux): process CPU time and memory, per-CPU busy/softirq/steal, kernel memory.
import * as fs from "node:fs"

const read = (path) => {
  try {
    return fs.readFileSync(path, "utf8")
  } catch {
    return null
  }
}

let clkTck = 100
/** Set the USER_HZ used by /proc/<pid>/stat (from `getconf CLK_TCK`). */
export const setClkTck = (n) => {
  if (Number.isFinite(n) && n > 0) clkTck = n
}

/** utime+stime of a process (all threads) in microseconds, or null when it is gone. */
export const procCpuUs = (pid) => {
  const s = read(`/proc/${pid}/stat`)
  if (s === null) return null
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ")
  // after ") ": field 3 (state) is f[0]; utime = field 14 → f[11], stime = field 15 → f[12]
  return ((Number(f[11]) + Number(f[12])) * 1e6) / clkTck
}

/** VmRSS / VmHWM of a process in bytes. */
export const procMem = (pid) => {
  const s = read(`/proc/${pid}/status`)
  if (s === null) return null
  const kb = (key) => {
    const m = s.match(new RegExp(`^${key}:\\s+(\\d+) kB`, "m"))
    return m ? Number(m[1]) * 1024 : null
  }
  return { rss: kb("VmRSS"), hwm: kb("VmHWM") }
}

/** Raw per-CPU counters from /proc/stat (jiffies). */
export const cpuTimes = () => {
  const s = read("/proc/stat") ?? ""
  const out = {}
  for (const line of s.split("\n")) {
    const m = line.match(/^(cpu\d+) (.*)$/)
    if (!m) continue
    const [user, nice, system, idle, iowait, irq, softirq, steal] = m[2].trim().split(/\s+/).map(Number)
    out[m[1]] = { user, nice, system, idle, iowait, irq, softirq, steal }
  }
  return out
}

/** Per-CPU fractions between two `cpuTimes()` samples. */
export const cpuDelta = (a, b) => {
  const out = {}
  for (const k of Object.keys(b)) {
    if (!a[k]) continue
    const d = {}
    let total = 0
    for (const f of Object.keys(b[k])) total += d[f] = b[k][f] - a[k][f]
    if (total <= 0) continue
    const r = (x) => Math.round((x / total) * 1000) / 1000
    out[k] = { busy: r(total - d.idle - d.iowait), softirq: r(d.softirq), steal: r(d.steal) }
  }
  return out
}

/** Kernel-side memory that grows with sockets: slab, and TCP buffer pages (sockstat). Bytes. */
export const kernelMem = () => {
  const mi = read("/proc/meminfo") ?? ""
  const slab = mi.match(/^Slab:\s+(\d+) kB/m)
  const ss = read("/proc/net/sockstat") ?? ""
  const tcp = ss.match(/^TCP: .*mem (\d+)/m)
  return {
    slab: slab ? Number(slab[1]) * 1024 : null,
    tcpMem: tcp ? Number(tcp[1]) * 4096 : null
  }
}

export const loadavg = () => (read("/proc/loadavg") ?? "").trim()
