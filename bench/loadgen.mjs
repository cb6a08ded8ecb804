// The load generator: one process (pinned to CPU1 by run.mjs), one scenario against one running
// server. Config comes as JSON in argv[2]; the result is one JSON object on the last stdout line.
// Progress goes to stderr. The process bounds itself with a hard deadline (config.deadlineMs).
import * as fs from "node:fs"
import { PCTS } from "./lib/hist.mjs"
import { Histogram } from "./lib/hist.mjs"
import { cpuDelta, cpuTimes, kernelMem, procCpuUs, procMem, setClkTck } from "./lib/proc.mjs"
import { adapterFor, stats, writeTs } from "./lib/targets.mjs"

const cfg = JSON.parse(process.argv[2])
setClkTck(cfg.clkTck)
const log = (...a) => process.stderr.write(`[loadgen ${cfg.target}/${cfg.scenario}] ${a.join(" ")}\n`)
const nowUs = () => performance.now() * 1000
const sleep = (ms) => new Promise((r) => setTimeout(r, ms))
const round = (
  x,
  d = 0
) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10 ** d) / 10 ** d)

const hardStop = setTimeout(() => {
  process.stdout.write(
    JSON.stringify({ ok: false, error: `load generator deadline (${cfg.deadlineMs} ms) hit` }) + "\n"
  )
  process.exit(2)
}, cfg.deadlineMs)
hardStop.unref()

const ctx = { host: cfg.host, port: cfg.port, localAddress: cfg.localAddress }
const adapter = adapterFor(cfg.target, ctx)

/** Run `fn(i)` for i in [0, n) with at most `limit` in flight; collects failures instead of throwing. */
const pool = async (n, limit, fn) => {
  let next = 0
  let failures = 0
  let firstError = null
  const results = new Array(n)
  const worker = async () => {
    while (next < n) {
      const i = next++
      try {
        results[i] = await fn(i)
      } catch (e) {
        failures++
        if (firstError === null) firstError = String(e?.message ?? e)
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(limit, n) }, worker))
  return { results, failures, firstError }
}

const openAll = async (n, limit, optsOf, indexBase = 0) => {
  const r = await pool(n, limit, (i) => adapter.open(indexBase + i, optsOf(i)))
  if (r.failures > 0) throw new Error(`${r.failures}/${n} sessions failed to open: ${r.firstError}`)
  return r.results
}

/** Ask a Node server's preload for its event-loop delay since the last call (null for NATS). */
const eld = () => {
  if (!cfg.eldFile) return
  try {
    fs.rmSync(cfg.eldFile, { force: true })
    process.kill(cfg.serverPid, "SIGUSR2")
  } catch {
    // server gone
  }
}
const readEld = async () => {
  if (!cfg.eldFile) return null
  for (let i = 0; i < 500; i++) {
    try {
      return JSON.parse(fs.readFileSync(cfg.eldFile, "utf8"))
    } catch {
      await sleep(10)
    }
  }
  return null
}

/** Node servers only: heap after a full GC (and RSS), through the preload. */
const nodeMem = async () => {
  if (!cfg.eldFile) return null
  fs.writeFileSync(`${cfg.eldFile}.gc`, "")
  eld()
  const m = await readEld()
  fs.rmSync(`${cfg.eldFile}.gc`, { force: true })
  return m
}

const sampleCpu = () => ({ t: nowUs(), server: procCpuUs(cfg.serverPid), self: process.cpuUsage(), cpus: cpuTimes() })
const cpuBetween = (a, b) => {
  const wall = b.t - a.t
  const self = b.self.user + b.self.system - a.self.user - a.self.system
  return {
    wallUs: wall,
    serverCpuUs: a.server === null || b.server === null ? null : b.server - a.server,
    serverCores: a.server === null || b.server === null ? null : (b.server - a.server) / wall,
    loadgenCores: self / wall,
    cpus: cpuDelta(a.cpus, b.cpus)
  }
}

// ---------------------------------------------------------------------------------------------
// Open-loop publishing step (fan-out and whispers)
// ---------------------------------------------------------------------------------------------

const MAX_BATCH = 4000
const BACKLOG_BYTES = 32 * 1024 * 1024

/**
 * Publish at `rate` msgs/s in total, spread over `pubs` ([{ session, tmpl: {frame, tsOff} }]),
 * for warm+measure seconds; count deliveries stamped inside the measured window; then drain.
 */
const runStep = async ({ pubs, rate, fanout, warm, measure, drain }) => {
  const P = pubs.length
  const intervalUs = (1e6 * P) / rate
  const t0 = nowUs() + 20_000
  const win0 = t0 + warm * 1e6
  const win1 = win0 + measure * 1e6
  stats.resetStep(win0, win1)
  const st = pubs.map((p, j) => {
    const phase = j / P
    return {
      ...p,
      L: p.tmpl.frame.length,
      phase,
      sent: 0,
      maxK: Math.max(0, Math.ceil((win1 - t0) / intervalUs - phase))
    }
  })
  let expectedMsgs = 0
  let maxLag = 0
  let lateMsgs = 0
  let backlog = false
  let cpuA = null
  let cpuB = null
  await new Promise((resolve) => {
    const tick = () => {
      const now = nowUs()
      if (cpuA === null && now >= win0) {
        cpuA = sampleCpu()
        eld()
      }
      if (cpuB === null && now >= win1) {
        cpuB = sampleCpu()
        eld()
      }
      let done = true
      for (const p of st) {
        const due = Math.min(p.maxK, Math.floor((now - t0) / intervalUs - p.phase) + 1)
        let n = due - p.sent
        if (p.sent < p.maxK) done = false
        if (n <= 0) continue
        if (n > MAX_BATCH) n = MAX_BATCH
        const { frame, tsOff } = p.tmpl
        const L = p.L
        const batch = Buffer.allocUnsafe(n * L)
        for (let k = 0; k < n; k++) {
          frame.copy(batch, k * L)
          const sched = t0 + (p.sent + k + p.phase) * intervalUs
          const lag = now - sched
          if (lag > maxLag) maxLag = lag
          let ts = now
          if (lag > 1000) {
            ts = sched // the generator fell behind: keep the intended send time (no coordinated omission)
            lateMsgs++
          }
          ts = Math.round(ts)
          writeTs(batch, k * L + tsOff, ts)
          if (ts >= win0 && ts < win1) expectedMsgs++
        }
        p.sent += n
        p.session.conn.write(batch)
        if (p.session.conn.writableLength > BACKLOG_BYTES) backlog = true
      }
      if ((done && cpuB !== null) || backlog) resolve()
      else setTimeout(tick, 1)
    }
    setTimeout(tick, Math.max(0, (t0 - nowUs()) / 1000))
  })
  if (cpuA === null) cpuA = sampleCpu()
  if (cpuB === null) cpuB = sampleCpu()
  const expected = expectedMsgs * fanout
  const loopDelay = await readEld()
  const drainEnd = nowUs() + drain * 1e6
  while (stats.delivered < expected && nowUs() < drainEnd) await sleep(10)
  const c = cpuBetween(cpuA, cpuB)
  const pc = stats.hist.percentiles(PCTS)
  const delivered = stats.delivered
  const lost = Math.max(0, expected - delivered)
  const reasons = []
  if (lost > 0) reasons.push(`lost ${lost}`)
  if (delivered > expected) reasons.push(`${delivered - expected} extra deliveries`)
  if (pc.p99 !== null && pc.p99 > 100_000) reasons.push("p99 > 100 ms")
  if (c.serverCores !== null && c.serverCores > 0.95) reasons.push("server CPU > 0.95")
  if (backlog) reasons.push("publisher backlog (server not reading)")
  if (stats.errors > 0) reasons.push(`${stats.errors} error frames`)
  if (stats.badFrames > 0) reasons.push(`${stats.badFrames} unparsable frames`)
  const closed = serverClosed
  serverClosed = 0
  if (closed > 0) reasons.push(`${closed} sessions closed by the server`)
  const clientBound = c.loadgenCores > 0.8
  if (clientBound) reasons.push("load generator > 0.8 core (client-bound)")
  return {
    rate,
    offered_deliveries_per_s: round(rate * fanout),
    expected,
    delivered,
    lost,
    deliveries_per_s: round(delivered / measure),
    ...Object.fromEntries(Object.entries(pc).map(([k, v]) => [`${k.replace(".", "_")}_us`, v])),
    server_cpu_cores: round(c.serverCores, 3),
    us_cpu_per_delivery: c.serverCpuUs === null || delivered === 0 ? null : round(c.serverCpuUs / delivered, 2),
    loadgen_cpu_cores: round(c.loadgenCores, 3),
    server_loop_delay_p99_us: loopDelay?.p99_us ?? null,
    server_loop_delay_max_us: loopDelay?.max_us ?? null,
    cpus: c.cpus,
    max_lag_us: round(maxLag),
    late_msgs: lateMsgs,
    acks: stats.acks,
    errors: stats.errors,
    first_error: stats.firstError,
    sessions_closed_by_server: closed,
    pass: reasons.length === 0,
    client_bound: clientBound,
    reasons
  }
}

let serverClosed = 0
/** Count sessions the server closes (slow-consumer drops, kills) while load runs. */
const watchCloses = (sessions) => {
  for (const s of sessions) {
    const prev = s.conn.onClose
    s.conn.onClose = (why) => {
      serverClosed++
      prev?.(why)
    }
  }
}

const ramp = async (pubs, fanout) => {
  const steps = []
  for (const [i, rate] of cfg.ladder.entries()) {
    // the first step (T3/T4) may have a longer window of its own
    const first = i === 0 && cfg.t3Measure !== undefined
    const warm = first ? cfg.t3Warm : cfg.warm
    const measure = first ? cfg.t3Measure : cfg.measure
    const r = await runStep({ pubs, rate, fanout, warm, measure, drain: cfg.drain })
    log(
      `rate ${rate}/s → ${r.deliveries_per_s}/s delivered, lost ${r.lost}, p50 ${r.p50_us} µs, p99 ${r.p99_us} µs,`,
      `server ${r.server_cpu_cores} cores, ${r.us_cpu_per_delivery} µs/delivery, loadgen ${r.loadgen_cpu_cores}`,
      r.pass ? "" : `FAIL: ${r.reasons.join("; ")}`
    )
    steps.push(r)
    if (!r.pass) break
    if (cfg.stepGapMs) await sleep(cfg.stepGapMs)
  }
  const passing = steps.filter((s) => s.pass)
  const best = passing.reduce((a, s) => (a === null || s.rate > a.rate ? s : a), null)
  const last = steps[steps.length - 1]
  return {
    steps,
    // BENCH-AND-RELIABILITY §5.3: saturation is the highest *offered* rate that passes (0 loss, p99 ≤
    // 100 ms, server CPU ≤ 0.95); the delivered rate of that step differs from it only by the edges of
    // the measured window.
    saturation_deliveries_per_s: best?.offered_deliveries_per_s ?? 0,
    saturation_bound: last.pass ? "ladder end" : last.client_bound ? "client" : "server",
    first: steps[0]
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

const scenarios = {}

scenarios.fanout1 = async () => {
  const N = cfg.subs
  await adapter.prepare(N + 1)
  await adapter.ensureChannels(["bench"])
  const subs = await openAll(N, 50, () => ({ channels: ["bench"] }))
  // target `cluster`: the publisher on the other node, so every delivery crosses the broker
  const [pub] = await openAll(
    1,
    1,
    () => ({ channels: ["bench"], ...(cfg.pubPort === undefined ? {} : { port: cfg.pubPort }) }),
    N
  )
  for (const s of [...subs, pub]) adapter.startCounting(s)
  watchCloses([...subs, pub])
  log(`${N} subscribers + 1 publisher ready`)
  const r = await ramp([{ session: pub, tmpl: adapter.pubFrame(pub, "bench") }], N)
  return summarizeFanout(r)
}

scenarios.fanout100 = async () => {
  const N = cfg.subs
  await adapter.prepare(N)
  await adapter.ensureChannels(["bench"])
  const all = await openAll(N, 50, () => ({ channels: ["bench"] }))
  for (const s of all) adapter.startCounting(s)
  watchCloses(all)
  log(`${N} publisher-subscribers ready`)
  const r = await ramp(all.map((s) => ({ session: s, tmpl: adapter.pubFrame(s, "bench") })), N - 1)
  return summarizeFanout(r)
}

const summarizeFanout = (r) => ({
  saturation_deliveries_per_s: r.saturation_deliveries_per_s,
  saturation_bound: r.saturation_bound,
  t3_rate: r.first.rate,
  t3_offered_deliveries_per_s: r.first.offered_deliveries_per_s,
  t3_p50_us: r.first.p50_us,
  t3_p99_us: r.first.p99_us,
  t3_us_cpu_per_delivery: r.first.us_cpu_per_delivery,
  t3_server_cpu_cores: r.first.server_cpu_cores,
  t3_loop_delay_p99_us: r.first.server_loop_delay_p99_us,
  t3_pass: r.first.pass,
  steps: r.steps
})

scenarios.whisper = async () => {
  const N = cfg.pairs
  await adapter.prepare(2 * N)
  const receivers = await openAll(N, 50, (i) => ({ whisperName: `r${i}` }))
  const senders = await openAll(N, 50, () => ({}), N)
  for (const s of [...receivers, ...senders]) adapter.startCounting(s)
  watchCloses([...receivers, ...senders])
  log(`${N} whisper pairs ready`)
  const r = await ramp(senders.map((s, i) => ({ session: s, tmpl: adapter.whisperFrame(s, receivers[i]) })), 1)
  const at5k = r.steps.find((s) => s.rate === 5000) ?? null
  return {
    saturation_whispers_per_s: r.saturation_deliveries_per_s,
    saturation_bound: r.saturation_bound,
    p50_us_at_5k: at5k?.p50_us ?? null,
    p99_us_at_5k: at5k?.p99_us ?? null,
    us_cpu_per_whisper_at_5k: at5k?.us_cpu_per_delivery ?? null,
    steps: r.steps
  }
}

scenarios.handshake = async () => {
  const N = cfg.sessions
  const C = cfg.concurrency
  await adapter.prepare(Math.min(N, cfg.keys))
  await adapter.ensureChannels(["idle-a", "idle-b"])
  // 1. steady open-loop handshakes (connect → authenticated → close) at cfg.steadyRate/s
  const steadyHist = new Histogram()
  let steadyStarted = 0
  let steadyFailures = 0
  let steadyFirstError = null
  const inflight = new Set()
  {
    const total = Math.round(cfg.steadyRate * cfg.steadySecs)
    const t0 = nowUs()
    await new Promise((resolve) => {
      const tick = () => {
        const due = Math.min(total, Math.floor(((nowUs() - t0) * cfg.steadyRate) / 1e6) + 1)
        while (steadyStarted < due) {
          const idx = 1_000_000 + steadyStarted++
          const start = nowUs()
          const p = adapter.open(idx, {}).then(
            (s) => {
              steadyHist.record(nowUs() - start)
              s.conn.close()
            },
            (e) => {
              steadyFailures++
              if (steadyFirstError === null) steadyFirstError = String(e?.message ?? e)
            }
          )
          inflight.add(p)
          p.finally(() => inflight.delete(p))
        }
        if (steadyStarted >= total) resolve()
        else setTimeout(tick, 1)
      }
      tick()
    })
    await Promise.all([...inflight])
  }
  const steady = steadyHist.percentiles(PCTS)
  log(`steady ${cfg.steadyRate}/s: p50 ${steady.p50} µs, p99 ${steady.p99} µs, failures ${steadyFailures}`)
  await sleep(cfg.settleMs)
  // 2. cold storm: N sessions, C in flight, each authenticated and joined to two channels
  const snapshot = async (file) => {
    fs.writeFileSync(`${cfg.eldFile}.snap`, file)
    eld()
    await readEld()
    log(`heap snapshot written to ${file}`)
  }
  if (cfg.heapSnapshot && cfg.eldFile) {
    await snapshot(cfg.heapSnapshot.replace(/\.heapsnapshot$/, "-before.heapsnapshot"))
  }
  const heap0 = await nodeMem()
  const mem0 = procMem(cfg.serverPid)
  const k0 = kernelMem()
  const stormHist = new Histogram()
  let unexpectedCloses = 0
  const openKept = async (i) => {
    const start = nowUs()
    const s = await adapter.open(i, { channels: ["idle-a", "idle-b"] })
    stormHist.record(nowUs() - start)
    const prev = s.conn.onClose
    s.conn.onClose = (why) => {
      unexpectedCloses++
      prev?.(why)
    }
    return s
  }
  const cA = sampleCpu()
  const storm = await pool(N, C, openKept)
  const cB = sampleCpu()
  const stormSecs = (cB.t - cA.t) / 1e6
  const stormCpu = cpuBetween(cA, cB)
  const stormPct = stormHist.percentiles(PCTS)
  log(`storm: ${N} sessions in ${stormSecs.toFixed(2)} s (${Math.round(N / stormSecs)}/s), failures ${storm.failures}`)
  await sleep(cfg.settleMs * 2)
  const heap1 = await nodeMem()
  const mem1 = procMem(cfg.serverPid)
  if (cfg.heapSnapshot && cfg.eldFile) await snapshot(cfg.heapSnapshot)
  const k1 = kernelMem()
  const held = storm.results.filter(Boolean)
  const perSession = (a, b) => (a === null || b === null || held.length === 0 ? null : round((b - a) / held.length))
  // 3. reconnect storm: drop every socket at once, then all reconnect (same handles), C in flight
  for (const s of held) {
    s.conn.onClose = null
    s.conn.destroy()
  }
  const closesBeforeReconnect = unexpectedCloses
  const rHist = new Histogram()
  const rA = nowUs()
  const re = await pool(N, C, async (i) => {
    const start = nowUs()
    const s = await adapter.open(i, { channels: ["idle-a", "idle-b"] })
    rHist.record(nowUs() - start)
    return s
  })
  const reconnectSecs = (nowUs() - rA) / 1e6
  log(`reconnect storm: ${N} in ${reconnectSecs.toFixed(2)} s, failures ${re.failures}`)
  const memEnd = procMem(cfg.serverPid)
  for (const s of re.results) s?.conn.close()
  await sleep(200)
  return {
    sessions: N,
    concurrency: C,
    keys: Math.min(N, cfg.keys),
    steady_rate: cfg.steadyRate,
    steady_p50_us: steady.p50,
    steady_p99_us: steady.p99,
    steady_failures: steadyFailures,
    steady_first_error: steadyFirstError,
    storm_secs: round(stormSecs, 3),
    handshakes_per_s: round(held.length / stormSecs),
    storm_failures: storm.failures,
    storm_first_error: storm.firstError,
    storm_p50_us: stormPct.p50,
    storm_p99_us: stormPct.p99,
    storm_server_cpu_cores: round(stormCpu.serverCores, 3),
    storm_loadgen_cpu_cores: round(stormCpu.loadgenCores, 3),
    storm_us_cpu_per_handshake: stormCpu.serverCpuUs === null ? null : round(stormCpu.serverCpuUs / N, 1),
    unexpected_closes_while_idle: closesBeforeReconnect,
    rss_before: mem0?.rss ?? null,
    rss_after: mem1?.rss ?? null,
    rss_per_session_bytes: perSession(mem0?.rss ?? null, mem1?.rss ?? null),
    heap_per_session_bytes: perSession(heap0?.heap_used ?? null, heap1?.heap_used ?? null),
    external_per_session_bytes: perSession(heap0?.external ?? null, heap1?.external ?? null),
    kernel_slab_per_session_bytes: perSession(k0.slab, k1.slab),
    kernel_tcp_mem_per_session_bytes: perSession(k0.tcpMem, k1.tcpMem),
    reconnect_secs: round(reconnectSecs, 3),
    reconnect_failures: re.failures,
    reconnect_first_error: re.firstError,
    reconnect_p99_us: rHist.percentiles([99]).p99,
    rss_end: memEnd?.rss ?? null
  }
}

scenarios.history = async () => {
  if (cfg.target !== "conclave") return { skipped: "no message store in this target" }
  const P = cfg.histSessions
  const W = cfg.histWindow
  await adapter.prepare(P + 1)
  const chans = Array.from({ length: P }, (_, i) => `hist${i}`)
  await adapter.ensureChannels(chans)
  const sessions = await openAll(P, P, (i) => ({ channels: [chans[i]] }))
  const ackHist = new Histogram()
  let measuring = false
  let stop = false
  let acks = 0
  let errors = 0
  let firstError = null
  const drivers = sessions.map((s, i) => {
    const { frame, tsOff } = adapter.pubFrame(s, chans[i])
    const sentAt = []
    let head = 0
    const send = () => {
      const b = Buffer.from(frame)
      const t = nowUs()
      writeTs(b, tsOff, Math.round(t))
      sentAt.push(t)
      s.conn.write(b)
    }
    s.conn.onFrame = (buf, st, e) => {
      const t = buf[st + 9] // {"type":"a… / {"type":"e…
      if (t !== 0x61 && t !== 0x65) return
      const now = nowUs()
      const sent = sentAt[head++]
      if (head > 4096) {
        sentAt.splice(0, head)
        head = 0
      }
      if (t === 0x65) {
        errors++
        if (firstError === null) firstError = buf.toString("utf8", st, Math.min(e, st + 300))
      } else if (measuring) {
        acks++
        ackHist.record(now - sent)
      }
      if (!stop) send()
    }
    return {
      start: () => {
        for (let k = 0; k < W; k++) send()
      }
    }
  })
  for (const d of drivers) d.start()
  await sleep(cfg.warm * 1000)
  const cA = sampleCpu()
  measuring = true
  await sleep(cfg.measure * 1000)
  measuring = false
  const cB = sampleCpu()
  stop = true
  await sleep(500)
  const c = cpuBetween(cA, cB)
  const ap = ackHist.percentiles(PCTS)
  log(`append: ${Math.round((acks * 1e6) / c.wallUs)}/s acked, p99 ${ap.p99} µs, errors ${errors}`)
  // read_since: one reader pages through every channel from seq 0
  const reader = await adapter.open(P, { channels: chans })
  const pageHist = new Histogram()
  let rows = 0
  let pages = 0
  const r0 = nowUs()
  for (const channel of chans) {
    let since = 0
    for (;;) {
      const p0 = nowUs()
      reader.conn.sendText(JSON.stringify({ type: "read_since", id: `r${pages}`, channel, since_seq: since }))
      const m = await reader.expect(["history"], "history page")
      pageHist.record(nowUs() - p0)
      pages++
      rows += m.messages.length
      if (m.messages.length === 0 || !m.more) break
      since = m.messages[m.messages.length - 1].seq
    }
    if (nowUs() - r0 > 60e6) break
  }
  const readSecs = (nowUs() - r0) / 1e6
  const pp = pageHist.percentiles([50, 99])
  log(`read_since: ${rows} rows in ${pages} pages, ${Math.round(rows / readSecs)} rows/s`)
  reader.conn.close()
  for (const s of sessions) s.conn.close()
  await sleep(200)
  return {
    sessions: P,
    in_flight_per_session: W,
    append_acks_per_s: round((acks * 1e6) / c.wallUs),
    ack_p50_us: ap.p50,
    ack_p99_us: ap.p99,
    append_errors: errors,
    append_first_error: firstError,
    append_server_cpu_cores: round(c.serverCores, 3),
    append_us_cpu_per_msg: c.serverCpuUs === null || acks === 0 ? null : round(c.serverCpuUs / acks, 1),
    read_rows: rows,
    read_pages: pages,
    read_rows_per_s: round(rows / readSecs),
    read_page_p50_us: pp.p50,
    read_page_p99_us: pp.p99
  }
}

const main = async () => {
  const fn = scenarios[cfg.scenario]
  if (!fn) throw new Error(`unknown scenario ${cfg.scenario}`)
  const result = await fn()
  result.server_mem_end = procMem(cfg.serverPid)
  return result
}

main().then(
  (result) => {
    process.stdout.write(JSON.stringify({ ok: true, result }) + "\n")
    process.exit(0)
  },
  (e) => {
    process.stdout.write(JSON.stringify({ ok: false, error: String(e?.stack ?? e) }) + "\n")
    process.exit(1)
  }
)
