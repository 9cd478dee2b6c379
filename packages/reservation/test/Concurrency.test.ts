/**
 * The TOCTOU test with real processes: many processes reserving at the same instant never receive
 * the same port, exactly as many succeed as there are free ports, and the rest fail cleanly with
 * `NoPortAvailable`. On SQLite (file locks bite only across connections) and PostgreSQL (the
 * advisory lock serializes allocation across the pool of every process).
 *
 * Booting a child through tsx costs about two seconds of CPU (far more wall time when 20 boot at
 * once on a busy machine), so the 20 processes boot once and play every round: the test starts
 * them in lockstep over a Unix socket — each round begins at one instant sent to all of them
 * once all are idle. After the last round each process exits the way the CLI will (the port on
 * stdout and code 0, or the typed error on stderr and code 1), which the test checks too.
 */
import * as net from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, layer } from "@effect/vitest"
import { Reservation, type Schemas } from "@keel/reservation"
import { Processes, TestDatabase } from "@keel/testkit"
import { Duration, Effect, Queue, type Scope } from "effect"
import { type Message, onMessages, type Reply, send } from "./fixtures/control.js"
import { countInRange, freshDirectory, layer as registryLayer } from "./support/ReservationTest.js"

const childScript = fileURLToPath(new URL("./fixtures/reserve-child.ts", import.meta.url))

const processes = 20
const rounds = 20
const freePorts = 11
const bootTimeout = Duration.minutes(4)

interface Control {
  readonly hellos: Queue.Queue<{ readonly index: number; readonly socket: net.Socket }>
  readonly replies: Queue.Queue<Reply>
}

/** The control socket the children connect to; closed (and every connection destroyed) with the scope. */
const serveControl = (path: string): Effect.Effect<Control, never, Scope.Scope> =>
  Effect.gen(function* () {
    const hellos = yield* Queue.unbounded<{ readonly index: number; readonly socket: net.Socket }>()
    const replies = yield* Queue.unbounded<Reply>()
    const sockets = new Set<net.Socket>()
    yield* Effect.acquireRelease(
      Effect.async<net.Server>((resume) => {
        const server = net.createServer((socket) => {
          sockets.add(socket)
          onMessages(socket, (message: Message) => {
            if (message.type === "hello") Queue.unsafeOffer(hellos, { index: message.index, socket })
            if (message.type === "reply") Queue.unsafeOffer(replies, message)
          })
        })
        server.listen(path, () => resume(Effect.succeed(server)))
      }),
      (server) =>
        Effect.async<void>((resume) => {
          for (const socket of sockets) socket.destroy()
          server.close(() => resume(Effect.void))
        })
    )
    return { hellos, replies }
  })

/** Starts `count` children and waits until every one has booted and said hello. */
const startChildren = (control: Control, count: number, socketPath: string) =>
  Effect.gen(function* () {
    const info = yield* TestDatabase.TestDatabase
    const children = yield* Effect.forEach(
      Array.from({ length: count }, (_, index) => index),
      (index) =>
        Processes.spawn({
          script: childScript,
          env: {
            KEEL_DB: info.dsn,
            KEEL_CONTROL_SOCKET: socketPath,
            KEEL_CHILD_INDEX: String(index)
          }
        })
    )
    const sockets = new Map<number, net.Socket>()
    const allHello = Effect.gen(function* () {
      while (sockets.size < count) {
        const hello = yield* Queue.take(control.hellos)
        sockets.set(hello.index, hello.socket)
      }
    })
    // A child that dies while booting must fail the test with its stderr, not hang it.
    const earlyExit = Effect.flatMap(Effect.raceAll(children.map((child) => child.exited)), (exited) =>
      Effect.dieMessage(`a child exited while booting (code ${exited.code}): ${exited.stderr}`)
    )
    yield* Effect.raceFirst(allHello, earlyExit).pipe(
      Effect.timeoutFail({
        duration: bootTimeout,
        onTimeout: () => new Error("children did not boot in time")
      }),
      Effect.orDie
    )
    return { children, sockets }
  })

/** Sends one round to the given children, all starting at one instant, and collects every reply. */
const playRound = (
  control: Control,
  sockets: ReadonlyMap<number, net.Socket>,
  round: number,
  requestFor: (index: number) => Schemas.ReserveRequest,
  final = false
) =>
  Effect.gen(function* () {
    const startAt = Date.now() + 300
    for (const [index, socket] of sockets) {
      yield* send(socket, { type: "round", round, startAt, request: requestFor(index), final })
    }
    const replies: Array<Reply> = []
    while (replies.length < sockets.size) replies.push(yield* Queue.take(control.replies))
    expect(replies.every((reply) => reply.round === round)).toBe(true)
    return replies.sort((a, b) => a.index - b.index)
  }).pipe(
    Effect.timeoutFail({
      duration: Duration.minutes(1),
      onTimeout: () => new Error(`round ${round} stalled`)
    })
  )

/**
 * A round's setup: 15 ports of which 2 are held by earlier reservations and 2 are excluded by
 * the request, so exactly 11 are free.
 */
const tightRound = (round: number, base: number) =>
  Effect.gen(function* () {
    const registry = yield* Reservation.Reservations
    const dir = yield* freshDirectory(`round-${round}`)
    const range = { min: base, max: base + 14 }
    const held = [base + 3, base + 9]
    const exclude = [base + 5, base + 12]
    for (const [i, port] of held.entries()) {
      const pre = yield* registry.reserve({ path: dir, cwd: dir, tag: `held-${i}`, range, preferred: port })
      expect(pre.reservation.port).toBe(port)
    }
    const free = new Set<number>()
    for (let port = range.min; port <= range.max; port++) {
      if (!held.includes(port) && !exclude.includes(port)) free.add(port)
    }
    expect(free.size).toBe(freePorts)
    const request = (index: number): Schemas.ReserveRequest => ({
      path: dir,
      cwd: dir,
      tag: `child-${index}`,
      range,
      exclude
    })
    return { dir, range, free, request }
  })

/** Exactly the free ports were handed out, once each; everyone else got NoPortAvailable. */
const checkTightRound = (
  replies: ReadonlyArray<Reply>,
  setup: {
    readonly range: { readonly min: number; readonly max: number }
    readonly free: ReadonlySet<number>
  }
) =>
  Effect.gen(function* () {
    const won = replies.flatMap((reply) => (reply.ok ? [reply.port] : []))
    const lost = replies.flatMap((reply) => (reply.ok ? [] : [reply]))
    expect(won.length).toBe(freePorts)
    expect(new Set(won).size).toBe(won.length)
    expect([...won].sort((a, b) => a - b)).toEqual([...setup.free].sort((a, b) => a - b))
    expect(lost.length).toBe(processes - freePorts)
    for (const failure of lost) {
      expect(failure.tag).toBe("NoPortAvailable")
      expect(failure.message).toContain(`no free port in ${setup.range.min}-${setup.range.max}`)
    }
    // 11 won + the 2 held before the round: nothing more, nothing less.
    expect(yield* countInRange(setup.range)).toBe(freePorts + 2)
  })

const kinds = TestDatabase.kinds.filter((kind) => kind === "sqlite" || kind === "postgres")

for (const kind of kinds) {
  describe(`Reservation across processes [${kind}]`, () => {
    layer(registryLayer(kind), { timeout: 120_000, excludeTestServices: true })((it) => {
      it.scoped(
        "20 processes at one instant, 11 free ports, 20 rounds: 11 distinct ports each time, 9 clean NoPortAvailable; 10 in a roomy range all succeed",
        () =>
          Effect.gen(function* () {
            const info = yield* TestDatabase.TestDatabase
            const socketPath = join(info.dir, "control.sock")
            const control = yield* serveControl(socketPath)
            const { children, sockets } = yield* startChildren(control, processes, socketPath)
            for (let round = 1; round < rounds; round++) {
              const setup = yield* tightRound(round, 21_000 + round * 20)
              const replies = yield* playRound(control, sockets, round, setup.request)
              yield* checkTightRound(replies, setup)
            }

            const roomyDir = yield* freshDirectory("roomy")
            const roomy = { min: 22_000, max: 22_099 }
            const ten = new Map([...sockets].filter(([index]) => index < 10))
            const roomyReplies = yield* playRound(control, ten, rounds + 1, (index) => ({
              path: roomyDir,
              cwd: roomyDir,
              tag: `roomy-${index}`,
              range: roomy
            }))
            const roomyPorts = roomyReplies.flatMap((reply) => (reply.ok ? [reply.port] : []))
            expect(roomyPorts.length).toBe(10)
            expect(new Set(roomyPorts).size).toBe(10)
            expect(yield* countInRange(roomy)).toBe(10)

            // The last tight round ends every process: its exit code and output are the verdict.
            const setup = yield* tightRound(rounds, 21_000 + rounds * 20)
            const replies = yield* playRound(control, sockets, rounds, setup.request, true)
            yield* checkTightRound(replies, setup)
            const exits = yield* Effect.forEach(children, (child) => child.exited)
            const succeeded = exits.filter((exit) => exit.code === 0)
            const failed = exits.filter((exit) => exit.code !== 0)
            expect(succeeded.length).toBe(freePorts)
            const printed = succeeded.map((exit) => Number(exit.stdout.trim()))
            expect([...printed].sort((a, b) => a - b)).toEqual([...setup.free].sort((a, b) => a - b))
            expect(failed.length).toBe(processes - freePorts)
            for (const exit of failed) {
              expect(exit.code).toBe(1)
              expect(exit.stdout).toBe("")
              expect(exit.stderr.trim()).toMatch(
                new RegExp(
                  `^NoPortAvailable: no free port in ${setup.range.min}-${setup.range.max} for .+ \\[child-\\d+\\]: `
                )
              )
            }
          }),
        900_000
      )
    })
  })
}
