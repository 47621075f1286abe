// Package istio reads and changes the one HTTP route that shadowsplit manages
// on one Istio VirtualService, and nothing else.
//
// Why two shapes: Istio's own `mirror` cannot feed a comparison, because
// Envoy sends the mirrored copy fire-and-forget and drops its response. A
// comparison needs both answers, so the router either sits in the stable path
// and shadows the canary itself (ShapeInline: route[0] is the router, route[1]
// the canary), or Istio mirrors a share of traffic to the router, which
// replays each mirrored request to both models (ShapeTap: route[0] stable,
// route[1] canary, mirror = router with mirrorPercentage).
//
// Layers, so each can be tested on its own:
//
//   - Routes is a plain value (weights, mirror percentage) with Validate.
//   - Read and Apply are pure functions on an *unstructured.Unstructured
//     VirtualService: Apply edits only the managed route's destination
//     weights and mirror fields (and our own annotations) on a deep copy and
//     reports whether anything changed.
//   - Kube (API server) and File (a YAML manifest on disk) are thin shells
//     around them with the same contract: read, transform, write only when
//     something changed, detect drift against what we last wrote.
//
// The shells work on unstructured objects rather than the typed
// istio.io/client-go structs on purpose: the typed decoder silently drops
// fields it does not know (jsonpb AllowUnknownFields), so a router compiled
// against an older Istio API would erase fields of a newer mesh on its next
// update. Unstructured round-trips every field it does not touch.
package istio
