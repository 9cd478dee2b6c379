/**
 * The settings of a `keel port` command, in trop's layers: the user's config file
 * (`$KEEL_USER_CONFIG`, else `$XDG_CONFIG_HOME/keel/config.yaml`, else
 * `~/.config/keel/config.yaml`), the project's `trop.yaml` found from the working directory
 * upward, its `trop.local.yaml`, the environment (`TROP_PATH`, `TROP_PROJECT`, `TROP_TASK`,
 * `TROP_DISABLE_AUTOPRUNE`, `TROP_DISABLE_AUTOEXPIRE`, `TROP_SKIP_OCCUPANCY_CHECK`,
 * `TROP_SKIP_IPV4`, `TROP_SKIP_IPV6`, `TROP_SKIP_TCP`, `TROP_SKIP_UDP`,
 * `TROP_CHECK_ALL_INTERFACES`), then the command's flags. Apart from them all, the project and
 * task trop guesses from git (`withGitGuess`): sent as the request's `guess`, which the registry
 * records only on a reservation it creates and never holds against an existing one (no
 * `StickyFieldChanged` over a guess). A bad file is `InvalidConfig` naming the file and the key;
 * nothing is written.
 */
import { homedir } from "node:os"
import { join, resolve } from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import type { Occupancy, Schemas } from "@keel/reservation"
import * as GitContext from "@keel/reservation/GitContext"
import * as ProjectConfig from "@keel/reservation/ProjectConfig"
import type { Duration } from "effect"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/** The user's config file. */
export const userConfigFile = (): string =>
  process.env.KEEL_USER_CONFIG ??
  join(process.env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "keel", "config.yaml")

/** Node's filesystem, for reading the layers. */
export const files = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)

/** What the layers say, merged, and git's guess of the project and task (only where no layer sets them). */
export interface Effective extends ProjectConfig.Effective {
  /** Absent: nothing guessed. */
  readonly guess?: GitContext.Guess | undefined
}

/**
 * trop's git guess of the project and task (`GitContext`), from `TROP_PATH` or the working
 * directory, kept apart from the layers: a field some file or variable sets is not guessed (and
 * git is not read when both are set). The registry decides where a guess applies.
 */
const withGitGuess = (effective: ProjectConfig.Effective, cwd: string) =>
  Effect.gen(function* () {
    if (effective.project !== undefined && effective.task !== undefined) {
      return { ...effective, guess: GitContext.none }
    }
    const dir = effective.path === undefined ? resolve(cwd) : resolve(cwd, effective.path)
    const guess = yield* GitContext.infer(dir)
    return {
      ...effective,
      guess: {
        project: effective.project === undefined ? guess.project : undefined,
        task: effective.task === undefined ? guess.task : undefined
      }
    } satisfies Effective
  })

/** The layers found for the working directory, what they say merged with the environment, and git's guess. */
export const load = (cwd: string = process.cwd()) =>
  Effect.gen(function* () {
    const layers = yield* ProjectConfig.discover(cwd, userConfigFile())
    const resolved = yield* ProjectConfig.resolve(layers, process.env)
    const effective: Effective = yield* withGitGuess(resolved, cwd)
    return { layers, effective }
  }).pipe(Effect.provide(files))

/** trop's occupancy flags, as every command that probes takes them. */
export interface OccupancyFlags {
  readonly noOccupancyCheck?: boolean | undefined
  readonly checkAllInterfaces?: boolean | undefined
  readonly skipIpv4?: boolean | undefined
  readonly skipIpv6?: boolean | undefined
  readonly skipTcp?: boolean | undefined
  readonly skipUdp?: boolean | undefined
}

/** Flags that change how one allocation runs (trop's change control and occupancy flags). */
export interface ControlFlags extends OccupancyFlags {
  readonly allowProjectChange?: boolean | undefined
  readonly allowTaskChange?: boolean | undefined
  readonly overwrite?: boolean | undefined
  readonly ignoreExclusions?: boolean | undefined
  readonly dryRun?: boolean | undefined
  readonly disableAutoprune?: boolean | undefined
  readonly disableAutoexpire?: boolean | undefined
}

/** The allocation flags every reserving command shares. */
export interface AllocationFlags extends ControlFlags {
  readonly range: Option.Option<string>
  readonly exclude: ReadonlyArray<string>
  readonly project: Option.Option<string>
  readonly task: Option.Option<string>
  readonly force: boolean
  readonly allowUnrelated: boolean
  readonly noOccupancyCheck: boolean
}

const exclusion = (text: string): number | string => {
  const trimmed = text.trim()
  return /^\d+$/.test(trimmed) ? Number(trimmed) : trimmed
}

/** The layers' occupancy policy and the command's flags: a flag only adds a skip (or all interfaces). */
export const occupancyPolicy = (
  policy: ProjectConfig.OccupancyPolicy,
  flags: OccupancyFlags
): ProjectConfig.OccupancyPolicy => ({
  skip: policy.skip || flags.noOccupancyCheck === true,
  skipIp4: policy.skipIp4 || flags.skipIpv4 === true,
  skipIp6: policy.skipIp6 || flags.skipIpv6 === true,
  skipTcp: policy.skipTcp || flags.skipTcp === true,
  skipUdp: policy.skipUdp || flags.skipUdp === true,
  allInterfaces: policy.allInterfaces || flags.checkAllInterfaces === true
})

/**
 * A policy as a request's occupancy override: off when it probes nothing; else only what it
 * changes (hosts, protocols), so the registry's configured hosts and timeout stay in force
 * otherwise; `undefined` when it changes nothing.
 */
export const occupancyOverride = (
  policy: ProjectConfig.OccupancyPolicy
): Schemas.OccupancyOverride | undefined => {
  if (ProjectConfig.probesNothing(policy)) return { enabled: false }
  const hostsChanged = policy.skipIp4 || policy.skipIp6 || policy.allInterfaces
  const protocolsChanged = policy.skipTcp || policy.skipUdp
  if (!hostsChanged && !protocolsChanged) return undefined
  return {
    ...(hostsChanged ? { hosts: ProjectConfig.hostsOf(policy) } : {}),
    ...(protocolsChanged ? { protocols: ProjectConfig.protocolsOf(policy) } : {})
  }
}

/** What a command that probes by itself (`scan`, `port-info --include-occupancy`) binds, `timeout` each. */
export const occupancyProbe = (
  policy: ProjectConfig.OccupancyPolicy,
  timeout: Duration.Duration
): Occupancy.Probe => ({
  hosts: ProjectConfig.hostsOf(policy),
  protocols: ProjectConfig.protocolsOf(policy),
  timeout
})

const hasGuess = (guess: GitContext.Guess | undefined): guess is GitContext.Guess =>
  guess !== undefined && (guess.project !== undefined || guess.task !== undefined)

/** The request fields of a reserving command: each flag over the layers' setting, and git's guess. */
export const allocationFields = (effective: Effective, flags: AllocationFlags, ttl: number | undefined) => {
  const occupancy = occupancyOverride(occupancyPolicy(effective.occupancy, flags))
  const expireDays =
    effective.autoexpire && flags.disableAutoexpire !== true ? effective.expireAfterDays : undefined
  return {
    cwd: process.cwd(),
    range: Option.getOrUndefined(flags.range) ?? effective.range,
    exclude: [...effective.exclude, ...flags.exclude.map(exclusion)],
    project: Option.getOrUndefined(flags.project) ?? effective.project,
    task: Option.getOrUndefined(flags.task) ?? effective.task,
    guess: hasGuess(effective.guess) ? effective.guess : undefined,
    ttl,
    force: flags.force || undefined,
    allowUnrelated: flags.allowUnrelated || effective.allowUnrelated || undefined,
    occupancy,
    allowProjectChange: flags.allowProjectChange === true || effective.allowProjectChange || undefined,
    allowTaskChange: flags.allowTaskChange === true || effective.allowTaskChange || undefined,
    overwrite: flags.overwrite || undefined,
    ignoreExclusions: flags.ignoreExclusions || undefined,
    dryRun: flags.dryRun || undefined,
    expireOnExhaustion: expireDays === undefined ? undefined : `${expireDays} days`,
    pruneOnExhaustion: (effective.autoprune && flags.disableAutoprune !== true) || undefined
  } satisfies Omit<Schemas.ReserveRequest, "path">
}

/** The reservation's directory: `--path` (relative to the working directory), else `TROP_PATH`, else the working directory. */
export const pathOf = (
  effective: ProjectConfig.Effective,
  flag: Option.Option<string>,
  fallback?: string
): string =>
  Option.match(flag, {
    onNone: () =>
      effective.path === undefined ? (fallback ?? process.cwd()) : resolve(process.cwd(), effective.path),
    onSome: (given) => resolve(process.cwd(), given)
  })
