/**
 * trop's git guess through the built `keel` binary, in repositories made by real `git init` and
 * `git worktree add` (skipped when git is not installed), on SQLite and PostgreSQL: a reservation
 * records the repository's name and the branch — or, in a linked worktree, the worktree's
 * directory —; `TROP_PROJECT`, `TROP_TASK` and `--project` win over the guess; the guess is sent as
 * the request's `guess`, so a new tag gets it even where another reservation holds a different
 * project, and an existing reservation — one made with another project, or before the directory
 * became a repository — is refreshed with its own labels, not refused as a sticky change.
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdirSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, expect, it } from "vitest"
import * as Keel from "./support/Keel.js"

const hasGit = spawnSync("git", ["--version"]).status === 0

const git = (cwd: string, ...args: ReadonlyArray<string>): void => {
  execFileSync(
    "git",
    ["-c", "init.defaultBranch=trunk", "-c", "user.email=keel@example.com", "-c", "user.name=keel", ...args],
    { cwd, stdio: "pipe", env: { ...process.env, GIT_CONFIG_NOSYSTEM: "1", GIT_CONFIG_GLOBAL: "/dev/null" } }
  )
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value)

for (const kind of Keel.kinds) {
  Keel.describeBackend(`git guess of project and task [${kind}]`, () => {
    const min = 28_000 + 100 * Keel.kinds.indexOf(kind)
    let database: Awaited<ReturnType<typeof Keel.freshDatabase>>
    let env: Record<string, string>
    let repo: string
    let worktree: string

    beforeAll(async () => {
      await Keel.ensureBuilt()
      database = await Keel.freshDatabase(kind)
      env = {
        KEEL_DB: database.dsn,
        KEEL_USER_CONFIG: join(database.dir, "no-user-config.yaml"),
        XDG_DATA_HOME: database.dir
      }
      repo = join(database.dir, "keel-shop")
      worktree = join(database.dir, "wt-login")
      if (hasGit) {
        mkdirSync(join(repo, "src"), { recursive: true })
        git(repo, "init", "-q")
        git(repo, "commit", "-q", "--allow-empty", "-m", "start")
        git(repo, "worktree", "add", "-q", "-b", "login", worktree)
      }
    })

    afterAll(async () => {
      await database?.close()
    })

    /** `keel port reserve --json`'s document. */
    const reserveDocument = async (
      cwd: string,
      args: ReadonlyArray<string>,
      extra: Record<string, string> = {}
    ): Promise<Record<string, unknown>> => {
      const result = await Keel.keel(
        ["port", "reserve", "--range", `${min}-${min + 49}`, "--no-occupancy-check", "--json", ...args],
        { cwd, env: { ...env, ...extra } }
      )
      Keel.ok(result)
      return Keel.json(result)
    }

    const reserve = async (
      cwd: string,
      args: ReadonlyArray<string>,
      extra: Record<string, string> = {}
    ): Promise<Record<string, unknown>> => {
      const document = await reserveDocument(cwd, args, extra)
      const reservation = document.reservation
      if (!isRecord(reservation)) throw new Error(`no reservation in ${JSON.stringify(document)}`)
      return reservation
    }

    it.runIf(hasGit)(
      "a reservation in a repository records its name and branch, from a subdirectory too",
      async () => {
        expect(await reserve(repo, ["--tag", "web"])).toMatchObject({ project: "keel-shop", task: "trunk" })
        expect(await reserve(join(repo, "src"), ["--path", repo, "--tag", "web"])).toMatchObject({
          project: "keel-shop",
          task: "trunk"
        })
      }
    )

    it.runIf(hasGit)(
      "in a linked worktree: the main repository's name and the worktree's directory",
      async () => {
        expect(await reserve(worktree, ["--tag", "web"])).toMatchObject({
          project: "keel-shop",
          task: "wt-login"
        })
      }
    )

    it.runIf(hasGit)("TROP_PROJECT, TROP_TASK and --project win over the guess", async () => {
      const byEnv = join(worktree, "by-env")
      const byTask = join(worktree, "by-task")
      const byFlag = join(worktree, "by-flag")
      for (const dir of [byEnv, byTask, byFlag]) mkdirSync(dir)
      expect(await reserve(byEnv, ["--tag", "api"], { TROP_PROJECT: "shared-infra" })).toMatchObject({
        project: "shared-infra",
        task: "wt-login"
      })
      expect(await reserve(byTask, ["--tag", "db"], { TROP_TASK: "night-build" })).toMatchObject({
        project: "keel-shop",
        task: "night-build"
      })
      expect(
        await reserve(byFlag, ["--tag", "cache", "--project", "by-flag"], { TROP_PROJECT: "by-env" })
      ).toMatchObject({ project: "by-flag", task: "wt-login" })
    })

    it.runIf(hasGit)(
      "where a key holds another project: it is refreshed keeping it, and a new tag gets the guess",
      async () => {
        const byEnv = join(worktree, "by-env")
        const again = await reserveDocument(byEnv, ["--tag", "api"])
        expect(again.outcome).toBe("refreshed")
        expect(again.reservation).toMatchObject({ project: "shared-infra", task: "wt-login" })
        const added = await reserveDocument(byEnv, ["--tag", "other"])
        expect(added.outcome).toBe("created")
        expect(added.reservation).toMatchObject({ project: "keel-shop", task: "wt-login" })
      }
    )

    it.runIf(hasGit)(
      "a key reserved from a checkout whose guess differs is refreshed with its own labels, not refused",
      async () => {
        // From the linked worktree the guessed task is `wt-login`; the repository's `web` holds `trunk`.
        const again = await reserveDocument(worktree, ["--path", repo, "--tag", "web", "--allow-unrelated"])
        expect(again.outcome).toBe("refreshed")
        expect(again.reservation).toMatchObject({ project: "keel-shop", task: "trunk" })
      }
    )

    it.runIf(hasGit)(
      "a reservation made before git init is refreshed later, keeping its empty project and task",
      async () => {
        const legacy = join(database.dir, "legacy")
        mkdirSync(legacy)
        const before = await reserve(legacy, ["--tag", "web"])
        expect(before).toMatchObject({ project: null, task: null })
        git(legacy, "init", "-q")
        const after = await reserve(legacy, ["--tag", "web"])
        expect(after).toMatchObject({ project: null, task: null, port: before.port })
      }
    )
  })
}
