/**
 * Request validation: every check an operation makes before the database is touched, turning a
 * request into a validated `Allocation` (or a typed error naming the field).
 */
import type * as FileSystem from "@effect/platform/FileSystem"
import type * as Path from "@effect/platform/Path"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Port from "../Port.js"
import * as ReservationConfig from "../ReservationConfig.js"
import { InvalidRequest } from "../ReservationError.js"
import type { Allocation, Want } from "../ReservationStore.js"
import { untagged } from "../ReservationStore.js"
import {
  type GroupRequest,
  maxGroupSize,
  type ReservationPath,
  type ReserveRequest,
  validateLabel,
  validateTag
} from "../Schemas.js"
import * as Paths from "./paths.js"

/** The longest ttl (or `unusedFor`) accepted: ten years. */
export const maxTtl = Duration.days(3650)

/** A duration given as milliseconds or Effect duration text, positive and at most `maxTtl`. */
export const durationOf = (
  input: number | string | undefined,
  field: string
): Effect.Effect<number | undefined, InvalidRequest> => {
  if (input === undefined) return Effect.succeed(undefined)
  const decoded =
    typeof input === "number" ? Option.some(Duration.millis(input)) : Duration.decodeUnknown(input)
  const millis = Option.map(decoded, Duration.toMillis)
  if (
    Option.isSome(millis) &&
    Number.isInteger(millis.value) &&
    millis.value > 0 &&
    millis.value <= Duration.toMillis(maxTtl)
  ) {
    return Effect.succeed(millis.value)
  }
  return Effect.fail(
    new InvalidRequest({
      field,
      reason: `${JSON.stringify(input)} is not a duration from 1 millisecond to 3650 days (milliseconds, or text such as "90 minutes")`
    })
  )
}

/** An optional project or task label. */
export const optionalLabel = (raw: string | undefined, field: string) =>
  raw === undefined ? Effect.succeed(undefined) : validateLabel(raw, field)

/** An optional tag, as stored (`''` for the untagged reservation). */
export const storedTag = (raw: string | undefined, field: string) =>
  raw === undefined ? Effect.succeed(untagged) : validateTag(raw, field)

/** The range, exclusions and occupancy one allocation runs with: the config with the request's overrides. */
export const settingsFor = (
  config: ReservationConfig.ReservationConfig,
  request: {
    readonly range?: Port.RangeInput | undefined
    readonly exclude?: ReadonlyArray<Port.ExclusionInput> | undefined
    readonly occupancy?: ReserveRequest["occupancy"]
  }
) =>
  Effect.gen(function* () {
    const range = request.range === undefined ? config.range : yield* Port.parseRange(request.range, "range")
    const extra = yield* ReservationConfig.parseExclusions(request.exclude ?? [], "exclude")
    const occupancy = yield* ReservationConfig.applyOccupancy(
      config.occupancy,
      request.occupancy,
      "occupancy"
    )
    return { range, exclude: [...config.exclude, ...extra], occupancy }
  })

/** The reservation's directory (existing, canonical) and the guard against an unrelated working directory. */
export const placeFor = (
  paths: Paths.Cached,
  request: {
    readonly path: string
    readonly cwd: string
    readonly allowUnrelated?: boolean | undefined
    readonly force?: boolean | undefined
  }
): Effect.Effect<ReservationPath, Paths.PathError, FileSystem.FileSystem | Path.Path> =>
  Effect.gen(function* () {
    const path = yield* paths.existingDirectory("path", request.path)
    const cwd = request.cwd === request.path ? path : yield* paths.anyPath("cwd", request.cwd)
    yield* Paths.checkRelated(path, cwd, request.allowUnrelated === true || request.force === true)
    return path
  })

/** What `reserve` and `reserveGroup` share, validated. */
export const commonFor = (
  config: ReservationConfig.ReservationConfig,
  paths: Paths.Cached,
  request: ReserveRequest | GroupRequest
) =>
  Effect.gen(function* () {
    const path = yield* placeFor(paths, request)
    const settings = yield* settingsFor(config, request)
    const project = yield* optionalLabel(request.project, "project")
    const task = yield* optionalLabel(request.task, "task")
    const guess = {
      project: yield* optionalLabel(request.guess?.project, "guess.project"),
      task: yield* optionalLabel(request.guess?.task, "guess.task")
    }
    const ttlMs = yield* durationOf(request.ttl, "ttl")
    const expireUnusedMs = yield* durationOf(request.expireOnExhaustion, "expireOnExhaustion")
    const force = request.force === true
    return {
      path,
      range: settings.range,
      exclude: settings.exclude,
      occupancy: settings.occupancy,
      checkOccupancy: settings.occupancy.enabled,
      project,
      task,
      guess,
      ttlMs,
      force,
      move: request.overwrite === true,
      allowProjectChange: force || request.allowProjectChange === true,
      allowTaskChange: force || request.allowTaskChange === true,
      ignoreExclusions: request.ignoreExclusions === true,
      dryRun: request.dryRun === true,
      expireUnusedMs,
      prune: request.pruneOnExhaustion === true
    }
  })

/** The validated services of a group: 1–100, no tag, preferred port or offset twice. */
export const groupWants = (services: GroupRequest["services"]) =>
  Effect.gen(function* () {
    if (services.length === 0 || services.length > maxGroupSize) {
      return yield* new InvalidRequest({
        field: "services",
        reason: `a group has from 1 to ${maxGroupSize} services, not ${services.length}`
      })
    }
    const wants: Array<Want> = []
    for (const [index, service] of services.entries()) {
      const field = `services[${index}]`
      const tag = yield* validateTag(service.tag, `${field}.tag`)
      const preferred =
        service.preferred === undefined
          ? undefined
          : yield* Port.validate(service.preferred, `${field}.preferred`)
      const offset = service.offset
      if (offset !== undefined && !(Number.isInteger(offset) && offset >= 0 && offset < Port.highest)) {
        return yield* new InvalidRequest({
          field: `${field}.offset`,
          reason: `${offset} is not a whole number from 0 to ${Port.highest - 1}`
        })
      }
      const duplicate = (reason: string, subfield: string) =>
        new InvalidRequest({ field: `${field}.${subfield}`, reason })
      if (wants.some((want) => want.tag === tag)) return yield* duplicate(`tag "${tag}" appears twice`, "tag")
      if (preferred !== undefined && wants.some((want) => want.preferred === preferred)) {
        return yield* duplicate(`port ${preferred} is preferred twice`, "preferred")
      }
      if (offset !== undefined && wants.some((want) => want.offset === offset)) {
        return yield* duplicate(`offset ${offset} appears twice`, "offset")
      }
      wants.push({ tag, preferred, offset })
    }
    return wants
  })

/** An allocation of what `commonFor` validated. */
export const allocationOf = (
  operation: string,
  common: Effect.Effect.Success<ReturnType<typeof commonFor>>,
  wants: ReadonlyArray<Want>,
  base?: Port.Port | undefined
): Allocation => ({
  operation,
  path: common.path,
  wants,
  range: common.range,
  exclude: common.ignoreExclusions ? [] : common.exclude,
  checkOccupancy: common.checkOccupancy,
  base,
  project: common.project,
  task: common.task,
  guess: common.guess,
  ttlMs: common.ttlMs,
  force: common.force,
  move: common.move,
  allowProjectChange: common.allowProjectChange,
  allowTaskChange: common.allowTaskChange,
  dryRun: common.dryRun,
  expireUnusedMs: common.expireUnusedMs,
  prune: common.prune
})
