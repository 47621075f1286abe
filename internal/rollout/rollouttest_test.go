package rollout

import (
	"time"

	"github.com/shadowsplit/shadowsplit/internal/istio"
	"github.com/shadowsplit/shadowsplit/internal/rollout/rollouttest"
)

// testRoute is the managed route of the fixtures (inline shape).
var testRoute = istio.Config{Name: "model", Hosts: istio.Hosts{Router: "model-router", Canary: "model-canary"}}

const testManifest = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: model
spec:
  hosts: [model]
  http:
  - name: other
    route:
    - destination: {host: elsewhere}
  - name: shadowsplit
    route:
    - destination: {host: model-router}
      weight: 100
    - destination: {host: model-canary}
      weight: 0
`

// The shared fixtures, under the names these tests use.
type (
	clock        = rollouttest.Clock
	steadyCanary = rollouttest.SteadyCanary
)

var newClock = rollouttest.NewClock

// testGates decide within a few ticks of a minute at 1000 exchanges/min.
var testGates = Gates{MinPairs: 500, MinDwell: 2 * time.Minute}
