// Package rollout moves the canary's share of the managed VirtualService
// route along an explicit plan of steps (by default shadow only, then 5, 10,
// 25, 50 and 100 percent), on the evidence of the comparisons, and rolls it
// back to 0 when the evidence says the canary is worse.
//
// Layers, each testable on its own:
//
//   - Next is the whole state machine: a pure function from the current
//     State and one Observation (weights read back from the VirtualService,
//     evidence, an operator command) to the next State and a Decision with
//     its reason. No I/O, no clock.
//   - The gates inside Next judge agreement with an always-valid sequential
//     test (a mixture likelihood ratio, see seqtest.go and docs/rollout.md),
//     so checking on every tick does not inflate false decisions.
//   - Controller.Tick is the thin shell: read the VirtualService (the cluster
//     is the source of truth), read the evidence, call Next, write weights
//     and state in one conditional update, emit an Event and metrics. The
//     VirtualService is reached through internal/istio's backends (Kube,
//     File): Observe for the read, SetRoutes with IfVersion and
//     WithAnnotations for the fenced write (see Target).
//   - Leader runs Tick in a loop only while holding a coordination.k8s.io
//     Lease; every replica still serves. Leader election is not fencing:
//     each write is conditional on the resourceVersion of the read it was
//     decided on, so a stale leader's write fails instead of stepping twice.
//
// The State lives in the annotation shadowsplit.io/rollout on the
// VirtualService, written in the same update as the weights, so a restarted
// router resumes at the step the cluster shows.
package rollout
