/**
 * The settings of a `keel port` command, in trop's layers: the user's config file
 * (`$KEEL_USER_CONFIG`, else `$XDG_CONFIG_HOME/keel/config.yaml`, else
 * `~/.config/keel/config.yaml`), the project's `trop.yaml` found from the working directory
 * upward, its `trop.local.yaml`, the environment (`TROP_PATH`, `TROP_PROJECT`, `TROP_TASK`,
 * `TROP_DISABLE_AUTOPRUNE`, `TROP_DISABLE_AUTOEXPIRE`, `TROP_SKIP_OCCUPANCY_CHECK`), then the
 * command's flags. A bad file is `InvalidConfig` naming the file and the key; nothing is written.
 */
import { homedir } from "node:os"
import { join, resolve } from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { ProjectConfig, type Schemas } from "@keel/reservation"
import { Effect, Layer, Option } from "effect"

/** The user's config file. */
export const userConfigFile = (): string =>
  process.env.KEEL_USER_CONFIG ??
  join(process.env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "keel", "config.yaml")

/** Node's filesystem, for reading the layers. */
export const files = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)

/** The layers found for the working directory, and what they say merged with the environment. */
export const load = (cwd: string = process.cwd()) =>
  Effect.gen(function* () {
    const layers = yield* ProjectConfig.discover(cwd, userConfigFile())
    const effective = yield* ProjectConfig.resolve(layers, process.env)
    return { layers, effective }
  }).pipe(Effect.provide(files))

/** Flags that change how one allocation runs (trop's change control and occupancy flags). */
export interface ControlFlags {
  readonly allowProjectChange?: boolean | undefined
  readonly allowTaskChange?: boolean | undefined
  readonly overwrite?: boolean | undefined
  readonly ignoreExclusions?: boolean | undefined
  readonly dryRun?: boolean | undefined
  readonly checkAllInterfaces?: boolean | undefined
  readonly skipIpv4?: boolean | undefined
  readonly skipIpv6?: boolean | undefined
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

/** The request fields of a reserving command: each flag over the layers' setting. */
export const allocationFields = (
  effective: ProjectConfig.Effective,
  flags: AllocationFlags,
  ttl: number | undefined
) => {
  const occupancy = {
    skip: effective.occupancy.skip,
    skipIp4: effective.occupancy.skipIp4 || flags.skipIpv4 === true,
    skipIp6: effective.occupancy.skipIp6 || flags.skipIpv6 === true,
    allInterfaces: effective.occupancy.allInterfaces || flags.checkAllInterfaces === true
  }
  const hosts = ProjectConfig.hostsOf(occupancy)
  const occupancyOff = flags.noOccupancyCheck || occupancy.skip || hosts.length === 0
  const changed = occupancy.skipIp4 || occupancy.skipIp6 || occupancy.allInterfaces
  const expireDays =
    effective.autoexpire && flags.disableAutoexpire !== true ? effective.expireAfterDays : undefined
  return {
    cwd: process.cwd(),
    range: Option.getOrUndefined(flags.range) ?? effective.range,
    exclude: [...effective.exclude, ...flags.exclude.map(exclusion)],
    project: Option.getOrUndefined(flags.project) ?? effective.project,
    task: Option.getOrUndefined(flags.task) ?? effective.task,
    ttl,
    force: flags.force || undefined,
    allowUnrelated: flags.allowUnrelated || effective.allowUnrelated || undefined,
    occupancy: occupancyOff ? { enabled: false } : changed ? { hosts } : undefined,
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
