/**
 * Effect metrics in the Prometheus text exposition format (version 0.0.4), for `GET /metrics`.
 * Every metric registered through `effect/Metric` in the process is rendered; names and label
 * values are sanitized and escaped so no input can break the format.
 */
import * as Effect from "effect/Effect"
import * as Metric from "effect/Metric"
import type { MetricPair } from "effect/MetricPair"
import * as MetricState from "effect/MetricState"
import * as Option from "effect/Option"

/** The content type Prometheus scrapes. */
export const contentType = "text/plain; version=0.0.4; charset=utf-8"

/** A valid Prometheus metric or label name: invalid characters become `_`. */
export const sanitizeName = (name: string): string => {
  const cleaned = name.replace(/[^a-zA-Z0-9_:]/g, "_")
  return /^[a-zA-Z_:]/.test(cleaned) ? cleaned : `_${cleaned}`
}

const escapeLabel = (value: string): string =>
  value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"')

const escapeHelp = (value: string): string => value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n")

const labels = (tags: ReadonlyArray<readonly [string, string]>): string =>
  tags.length === 0
    ? ""
    : `{${tags.map(([key, value]) => `${sanitizeName(key)}="${escapeLabel(value)}"`).join(",")}}`

const number = (value: number | bigint): string => {
  if (typeof value === "bigint") return value.toString()
  if (Number.isNaN(value)) return "NaN"
  if (value === Number.POSITIVE_INFINITY) return "+Inf"
  if (value === Number.NEGATIVE_INFINITY) return "-Inf"
  return String(value)
}

interface Family {
  readonly type: "counter" | "gauge" | "histogram" | "summary"
  readonly help: string | undefined
  readonly lines: Array<string>
}

/** Renders metric pairs (from `Metric.snapshot`) as Prometheus text. */
export const render = (pairs: ReadonlyArray<MetricPair.Untyped>): string => {
  const families = new Map<string, Family>()
  const family = (name: string, type: Family["type"], help: string | undefined): Family => {
    const existing = families.get(name)
    if (existing !== undefined) return existing
    const created: Family = { type, help, lines: [] }
    families.set(name, created)
    return created
  }
  for (const pair of pairs) {
    const key = pair.metricKey
    const name = sanitizeName(key.name)
    const tags = key.tags.map((tag) => [tag.key, tag.value] as const)
    const help = Option.getOrUndefined(key.description)
    const state: unknown = pair.metricState
    if (MetricState.isCounterState(state)) {
      family(name, "counter", help).lines.push(`${name}${labels(tags)} ${number(state.count)}`)
    } else if (MetricState.isGaugeState(state)) {
      family(name, "gauge", help).lines.push(`${name}${labels(tags)} ${number(state.value)}`)
    } else if (MetricState.isHistogramState(state)) {
      const lines = family(name, "histogram", help).lines
      for (const [bound, count] of state.buckets) {
        lines.push(`${name}_bucket${labels([...tags, ["le", number(bound)]])} ${count}`)
      }
      if (!state.buckets.some(([bound]) => bound === Number.POSITIVE_INFINITY)) {
        lines.push(`${name}_bucket${labels([...tags, ["le", "+Inf"]])} ${state.count}`)
      }
      lines.push(
        `${name}_sum${labels(tags)} ${number(state.sum)}`,
        `${name}_count${labels(tags)} ${state.count}`
      )
    } else if (MetricState.isSummaryState(state)) {
      const lines = family(name, "summary", help).lines
      for (const [quantile, value] of state.quantiles) {
        if (Option.isSome(value)) {
          lines.push(`${name}${labels([...tags, ["quantile", number(quantile)]])} ${number(value.value)}`)
        }
      }
      lines.push(
        `${name}_sum${labels(tags)} ${number(state.sum)}`,
        `${name}_count${labels(tags)} ${state.count}`
      )
    } else if (MetricState.isFrequencyState(state)) {
      const lines = family(name, "counter", help).lines
      for (const [value, count] of state.occurrences) {
        lines.push(`${name}${labels([...tags, ["value", value]])} ${count}`)
      }
    }
  }
  const out: Array<string> = []
  for (const [name, { type, help, lines }] of [...families.entries()].sort(([a], [b]) =>
    a.localeCompare(b)
  )) {
    if (help !== undefined) out.push(`# HELP ${name} ${escapeHelp(help)}`)
    out.push(`# TYPE ${name} ${type}`, ...lines)
  }
  return out.length === 0 ? "" : `${out.join("\n")}\n`
}

/** The current value of every metric in the process, as Prometheus text. */
export const scrape: Effect.Effect<string> = Effect.map(Metric.snapshot, render)
