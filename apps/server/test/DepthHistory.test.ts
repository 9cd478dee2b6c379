import { describe, expect, it } from "@effect/vitest"
import { Schemas } from "@keel/queue"
import { DateTime, Duration } from "effect"
import * as DepthHistory from "../src/DepthHistory.js"
import { statusOf } from "../src/handlers/Dashboard.js"

/** The worker timeout of the workers below: each worker is judged by its own. */
const staleAfterMs = 45_000

const sample = (at: number, sent: number, acknowledged = 0): DepthHistory.Sample => ({
  at,
  depth: 0,
  sent,
  acknowledged
})

describe("DepthHistory.perMinute", () => {
  it("is the counter's growth per minute from the oldest sample of the last five minutes to now", () => {
    const now = sample(10 * 60_000, 100)
    const samples = [sample(0, 0), sample(6 * 60_000, 40), sample(8 * 60_000, 70)]
    // 6 min is older than the 5-minute span: the rate runs from the 8-minute sample.
    expect(DepthHistory.perMinute(samples, now, (s) => s.sent)).toBe(15)
    expect(
      DepthHistory.perMinute(
        [sample(9 * 60_000, 90, 30)],
        sample(10 * 60_000, 100, 60),
        (s) => s.acknowledged
      )
    ).toBe(30)
  })

  it("is null without a sample at least a second older than now", () => {
    const now = sample(60_000, 5)
    expect(DepthHistory.perMinute([], now, (s) => s.sent)).toBeNull()
    expect(DepthHistory.perMinute([sample(59_500, 1)], now, (s) => s.sent)).toBeNull()
    expect(DepthHistory.perMinute([sample(0, 0)], sample(6 * 60_000, 5), (s) => s.sent)).toBeNull()
  })
})

describe("DepthHistory.upTo", () => {
  it("ends with now and leaves out a sample stamped after it (taken while the request ran)", () => {
    const now = sample(1_000, 3)
    const samples = [sample(600, 0), sample(800, 1), sample(1_000, 2), sample(1_007, 3)]
    expect(DepthHistory.upTo(samples, now).map((s) => s.at)).toEqual([600, 800, 1_000, 1_000])
    expect(DepthHistory.upTo(samples, now).at(-1)).toBe(now)
    expect(DepthHistory.upTo([], now)).toEqual([now])
  })
})

describe("the dashboard's worker status", () => {
  const worker = (heartbeatAt: number) =>
    Schemas.Worker.make({
      id: "w",
      queue: null,
      host: "h",
      pid: 1,
      startedAt: DateTime.unsafeMake(0),
      heartbeatAt: DateTime.unsafeMake(heartbeatAt),
      timeout: Duration.millis(staleAfterMs),
      inFlight: 2
    })

  it("marks a worker stale only once its heartbeat is older than its own worker timeout", () => {
    const now = 1_000_000
    expect(statusOf(worker(now - staleAfterMs), now)).toMatchObject({
      heartbeatAgeMs: staleAfterMs,
      stale: false
    })
    expect(statusOf(worker(now - staleAfterMs - 1), now)).toMatchObject({ stale: true })
    // A heartbeat written by a clock slightly ahead of the server's is no age, not a negative one.
    expect(statusOf(worker(now + 500), now)).toMatchObject({ heartbeatAgeMs: 0, stale: false })
  })
})
