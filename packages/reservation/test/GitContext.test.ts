/**
 * trop's git guess read from `.git` itself: a normal repository (its branch), a linked worktree
 * (the main repository's name, the worktree's directory), a detached HEAD, a submodule's `.git`
 * file, a bare-style `name.git` common directory, and hostile or garbage input (no guess, never an
 * error, never a hang on a FIFO).
 */
import { execFileSync, spawnSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { afterAll, describe, expect, it } from "@effect/vitest"
import { GitContext } from "@keel/reservation"
import { Effect, FastCheck, Layer, Option } from "effect"

const files = Layer.mergeAll(NodeFileSystem.layer, NodePath.layer)
const root = mkdtempSync(join(tmpdir(), "keel-git-context-"))
afterAll(() => rmSync(root, { recursive: true, force: true }))

let counter = 0
const fresh = (name: string): string => {
  counter += 1
  const dir = join(root, String(counter), name)
  mkdirSync(dir, { recursive: true })
  return dir
}

/** A git directory as `git init` leaves it (HEAD, objects/, refs/). */
const gitDir = (dir: string, head: string): void => {
  mkdirSync(join(dir, "objects"), { recursive: true })
  mkdirSync(join(dir, "refs", "heads"), { recursive: true })
  writeFileSync(join(dir, "HEAD"), head)
}

const infer = (start: string) => Effect.provide(GitContext.infer(start), files)

describe("GitContext", () => {
  it.effect(
    "a normal repository: the project is its directory's name, the task its branch (from a subdirectory too)",
    () =>
      Effect.gen(function* () {
        const repo = fresh("shop")
        gitDir(join(repo, ".git"), "ref: refs/heads/feature/checkout\n")
        mkdirSync(join(repo, "src", "deep"), { recursive: true })
        expect(yield* infer(repo)).toEqual({ project: "shop", task: "feature/checkout" })
        expect(yield* infer(join(repo, "src", "deep"))).toEqual({ project: "shop", task: "feature/checkout" })
      })
  )

  it.effect(
    "a linked worktree: the main repository's name (through commondir), the worktree's directory as task",
    () =>
      Effect.gen(function* () {
        const main = fresh("shop")
        gitDir(join(main, ".git"), "ref: refs/heads/main\n")
        const admin = join(main, ".git", "worktrees", "wt-admin")
        mkdirSync(admin, { recursive: true })
        writeFileSync(join(admin, "HEAD"), "ref: refs/heads/fix-login\n")
        writeFileSync(join(admin, "commondir"), "../..\n")
        const worktree = join(main, "..", "fix-login-tree")
        mkdirSync(worktree)
        writeFileSync(join(worktree, ".git"), `gitdir: ${admin}\n`)
        expect(yield* infer(worktree)).toEqual({ project: "shop", task: "fix-login-tree" })
      })
  )

  it.effect("a detached HEAD gives the project and no task", () =>
    Effect.gen(function* () {
      const repo = fresh("detached")
      gitDir(join(repo, ".git"), "4b825dc642cb6eb9a060e54bf8d69288fbee4904\n")
      expect(yield* infer(repo)).toEqual({ project: "detached", task: undefined })
    })
  )

  it.effect(
    "a submodule's relative gitdir file: the module's git directory names the project, its directory the task",
    () =>
      Effect.gen(function* () {
        const outer = fresh("outer")
        gitDir(join(outer, ".git"), "ref: refs/heads/main\n")
        gitDir(join(outer, ".git", "modules", "libfoo"), "ref: refs/heads/main\n")
        const sub = join(outer, "vendor", "libfoo")
        mkdirSync(sub, { recursive: true })
        writeFileSync(join(sub, ".git"), "gitdir: ../../.git/modules/libfoo\n")
        expect(yield* infer(sub)).toEqual({ project: "libfoo", task: "libfoo" })
        expect(yield* infer(outer)).toEqual({ project: "outer", task: "main" })
      })
  )

  it.effect("a common directory named name.git gives project name", () =>
    Effect.gen(function* () {
      const bare = fresh("tools.git")
      gitDir(bare, "ref: refs/heads/main\n")
      const admin = join(bare, "worktrees", "w")
      mkdirSync(admin, { recursive: true })
      writeFileSync(join(admin, "HEAD"), "ref: refs/heads/main\n")
      writeFileSync(join(admin, "commondir"), "../..\n")
      const worktree = fresh("checkout")
      writeFileSync(join(worktree, ".git"), `gitdir: ${admin}`)
      expect(yield* infer(worktree)).toEqual({ project: "tools", task: "checkout" })
    })
  )

  it.effect("outside any repository, and for garbage .git files or directories, there is no guess", () =>
    Effect.gen(function* () {
      expect(yield* infer(fresh("plain"))).toEqual(GitContext.none)
      for (const text of [
        "",
        "gitdir:",
        "gitdir: \n",
        "not a git file",
        "gitdir: /nowhere/at/all\n",
        "gitdir: a\ngitdir: b\n"
      ]) {
        const dir = fresh("garbage")
        writeFileSync(join(dir, ".git"), text)
        expect(yield* infer(dir)).toEqual(GitContext.none)
      }
      const noHead = fresh("no-head")
      mkdirSync(join(noHead, ".git", "objects"), { recursive: true })
      expect(yield* infer(noHead)).toEqual(GitContext.none)
      const huge = fresh("huge")
      writeFileSync(join(huge, ".git"), `gitdir: ${"x".repeat(100_000)}\n`)
      expect(yield* infer(huge)).toEqual(GitContext.none)
    })
  )

  it.effect("a HEAD that is a FIFO, or a branch with a control character, is no task (and no hang)", () =>
    Effect.gen(function* () {
      const repo = fresh("fifo")
      gitDir(join(repo, ".git"), "ref: refs/heads/main\n")
      rmSync(join(repo, ".git", "HEAD"))
      const made = spawnSync("mkfifo", [join(repo, ".git", "HEAD")])
      if (made.status === 0) expect(yield* infer(repo)).toEqual(GitContext.none)
      const odd = fresh("odd")
      gitDir(join(odd, ".git"), "ref: refs/heads/a\u0007b\n")
      expect(yield* infer(odd)).toEqual({ project: "odd", task: undefined })
    })
  )

  it("parseGitFile and parseHead accept only their one-line forms", () => {
    expect(GitContext.parseGitFile("gitdir: ../x\n")).toEqual(Option.some("../x"))
    expect(GitContext.parseGitFile("gitdir: ../x\r\n")).toEqual(Option.some("../x"))
    expect(GitContext.parseGitFile("gitdir:\n")).toEqual(Option.none())
    expect(GitContext.parseHead("ref: refs/heads/main\n")).toEqual(Option.some("main"))
    expect(GitContext.parseHead("ref: refs/tags/v1\n")).toEqual(Option.none())
    expect(GitContext.parseHead("4b825dc642cb6eb9a060e54bf8d69288fbee4904\n")).toEqual(Option.none())
    FastCheck.assert(
      FastCheck.property(FastCheck.string(), (text) => {
        const target = GitContext.parseGitFile(text)
        const branch = GitContext.parseHead(text)
        return (
          (Option.isNone(target) || (text.startsWith("gitdir:") && !target.value.includes("\n"))) &&
          (Option.isNone(branch) || (text.startsWith("ref:") && !branch.value.includes("\n")))
        )
      })
    )
  })

  it.effect("any text as a .git file or HEAD is a guess or none, never a failure", () =>
    Effect.gen(function* () {
      const samples = FastCheck.sample(FastCheck.string({ maxLength: 64 }), 40)
      for (const text of samples) {
        const dir = fresh("fuzz")
        writeFileSync(join(dir, ".git"), text)
        const guess = yield* infer(dir)
        expect(guess.project === undefined || typeof guess.project === "string").toBe(true)
        const repo = fresh("fuzz-head")
        gitDir(join(repo, ".git"), text)
        const head = yield* infer(repo)
        expect(head.project).toBe("fuzz-head")
      }
    })
  )

  const hasGit = spawnSync("git", ["--version"]).status === 0
  it.runIf(hasGit)("real git init and git worktree add agree with the reading of .git", () => {
    const repo = fresh("real-repo")
    const git = (cwd: string, ...args: Array<string>) =>
      execFileSync("git", ["-c", "init.defaultBranch=trunk", ...args], { cwd, stdio: "pipe" })
    git(repo, "init", "-q")
    git(repo, "-c", "user.email=k@e.l", "-c", "user.name=keel", "commit", "-q", "--allow-empty", "-m", "x")
    const worktree = join(repo, "..", "real-wt")
    git(repo, "worktree", "add", "-q", "-b", "topic", worktree)
    const run = (start: string) => Effect.runPromise(infer(start))
    return Promise.all([run(repo), run(worktree)]).then(([main, linked]) => {
      expect(main).toEqual({ project: "real-repo", task: "trunk" })
      expect(linked).toEqual({ project: "real-repo", task: "real-wt" })
    })
  })
})
