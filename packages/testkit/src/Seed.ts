/**
 * Fixed seeds for fault tests: a test that injects faults at random points draws them from a
 * generator seeded here, and names the seed in every failure, so a failing run can be replayed
 * exactly (`KEEL_FAULT_SEED=<seed>`).
 */

/** The seed of this run: `KEEL_FAULT_SEED` when set, else a fresh one. */
export const current = (): number => {
  const fixed = Number(process.env.KEEL_FAULT_SEED)
  return Number.isSafeInteger(fixed) ? fixed : Math.floor(Math.random() * 2 ** 31)
}

/** A deterministic generator (mulberry32) of floats in [0, 1) and integers in [min, max]. */
export interface Generator {
  readonly seed: number
  readonly next: () => number
  readonly int: (min: number, max: number) => number
  /** `message` with the seed and how to replay it. */
  readonly explain: (message: string) => string
}

/** A generator from `seed`. */
export const generator = (seed: number = current()): Generator => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  return {
    seed,
    next,
    int: (min, max) => min + Math.floor(next() * (max - min + 1)),
    explain: (message) => `${message} (seed ${seed}; replay with KEEL_FAULT_SEED=${seed})`
  }
}
