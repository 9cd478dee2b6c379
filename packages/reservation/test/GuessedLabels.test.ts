/**
 * A guessed project and task (`guess`, what trop infers from git): recorded only when a
 * reservation is created, never compared with an existing reservation's labels (so never a
 * `StickyFieldChanged`), and always behind an explicit `project`/`task`.
 */
import { expect, layer } from "@effect/vitest"
import { Reservation, type Schemas } from "@keel/reservation"
import { TestDatabase } from "@keel/testkit"
import { Effect } from "effect"
import { freshDirectory, rangesFrom, layer as registryLayer, snapshot } from "./support/ReservationTest.js"

const guessed = { guess: { project: "shop", task: "main" } }
const otherGuess = { guess: { project: "renamed", task: "feature" } }

TestDatabase.describeEach("Guessed labels", (kind) => {
  const freshRange = rangesFrom(19_500)

  /** A fresh directory and range, and `reserve` of one of its tags with the given fields. */
  const fresh = (name: string) =>
    Effect.gen(function* () {
      const registry = yield* Reservation.Reservations
      const dir = yield* freshDirectory(name)
      const range = freshRange(5)
      const reserve = (tag: string, fields: Partial<Schemas.ReserveRequest> = {}) =>
        registry.reserve({ path: dir, cwd: dir, tag, range, ...fields })
      return { registry, dir, range, reserve }
    })

  layer(registryLayer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
    it.effect("a reservation created with a guess records the guessed project and task", () =>
      Effect.gen(function* () {
        const { registry, dir, range, reserve } = yield* fresh("guess-created")
        const reserved = yield* reserve("web", guessed)
        expect(reserved.outcome).toBe("created")
        expect(reserved.reservation).toMatchObject({ port: range.min, project: "shop", task: "main" })
        expect(yield* registry.show({ path: dir, tag: "web" })).toEqual(reserved.reservation)
      })
    )

    it.effect("a re-reserve with another guess keeps the stored labels and is refreshed, not refused", () =>
      Effect.gen(function* () {
        const { registry, dir, reserve } = yield* fresh("guess-refreshed")
        const first = yield* reserve("web", guessed)
        const again = yield* reserve("web", otherGuess)
        expect(again.outcome).toBe("refreshed")
        expect(again.reservation).toMatchObject({
          port: first.reservation.port,
          project: "shop",
          task: "main"
        })
        expect(yield* registry.show({ path: dir, tag: "web" })).toMatchObject({
          project: "shop",
          task: "main"
        })
      })
    )

    it.effect("a reservation made without labels keeps them empty when a guess comes later", () =>
      Effect.gen(function* () {
        const { reserve } = yield* fresh("guess-late")
        yield* reserve("web")
        const again = yield* reserve("web", guessed)
        expect(again.outcome).toBe("refreshed")
        expect(again.reservation).toMatchObject({ project: null, task: null })
      })
    )

    it.effect("an explicit different project is still StickyFieldChanged, a guess beside it or not", () =>
      Effect.gen(function* () {
        const { reserve } = yield* fresh("guess-sticky")
        yield* reserve("web", { project: "one" })
        const before = yield* snapshot
        const error = yield* Effect.flip(reserve("web", { project: "two", guess: { project: "one" } }))
        const sticky = { field: "project", current: "one", requested: "two" }
        expect(error).toMatchObject({ _tag: "StickyFieldChanged", tag: "web", ...sticky })
        expect(yield* snapshot).toEqual(before)
      })
    )

    it.effect("an explicit project or task wins over the guess of the same field", () =>
      Effect.gen(function* () {
        const { reserve } = yield* fresh("guess-explicit")
        const reserved = yield* reserve("web", { ...guessed, project: "given" })
        expect(reserved.reservation).toMatchObject({ project: "given", task: "main" })
        const retasked = yield* reserve("api", { ...guessed, task: "given-task" })
        expect(retasked.reservation).toMatchObject({ project: "shop", task: "given-task" })
      })
    )

    it.effect("a reservation moved to its preferred port keeps its labels over a guess", () =>
      Effect.gen(function* () {
        const { range, reserve } = yield* fresh("guess-moved")
        yield* reserve("web", { project: "shop", task: "main" })
        const moved = yield* reserve("web", { ...otherGuess, preferred: range.min + 3, overwrite: true })
        expect(moved.outcome).toBe("moved")
        expect(moved.reservation).toMatchObject({ port: range.min + 3, project: "shop", task: "main" })
      })
    )

    it.effect("a group records the guess on its new services only", () =>
      Effect.gen(function* () {
        const { registry, dir, range, reserve } = yield* fresh("guess-group")
        yield* reserve("web", { project: "older" })
        const group = yield* registry.reserveGroup({
          path: dir,
          cwd: dir,
          range,
          services: [{ tag: "web" }, { tag: "db" }],
          ...guessed
        })
        expect(group.reservations.map(({ outcome, reservation }) => [outcome, reservation.project])).toEqual([
          ["refreshed", "older"],
          ["created", "shop"]
        ])
        expect(group.reservations.map(({ reservation }) => reservation.task)).toEqual([null, "main"])
      })
    )

    it.effect("a guess that is not a label is InvalidLabel naming it; nothing is written", () =>
      Effect.gen(function* () {
        const { reserve } = yield* fresh("guess-invalid")
        const before = yield* snapshot
        const error = yield* Effect.flip(reserve("web", { guess: { task: "a\nb" } }))
        expect(error).toMatchObject({ _tag: "InvalidLabel", field: "guess.task" })
        expect(yield* snapshot).toEqual(before)
      })
    )
  })
})
