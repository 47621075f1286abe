// Package deploytest renders the Kustomize overlays in deploy/kustomize and
// checks them against a real kube-apiserver with Istio's CRDs
// (internal/kubetest): every rendered object is server-side applied with
// strict field validation, the pod templates pass the API server's own Pod
// Security admission at level "restricted", the rendered Role lets the
// router's identity move the weights of the rendered VirtualService through
// internal/istio and nothing more, and the rendered router config starts the
// real router binary.
//
// The tests are in _test files; this file and render.go hold the small
// rendering helper they share (exported so other packages' tests may render
// the same manifests).
//
// Rendering needs kustomize. FindRenderer looks, in order, at
// $SHADOWSPLIT_KUSTOMIZE, <repo>/bin/tools/kustomize (built from the Go
// module proxy by hack/deps.d/30-kustomize.sh, `make kustomize-bin`), and
// `kubectl kustomize`. With none of them the tests skip locally and fail in
// CI (CI=true) or with SHADOWSPLIT_REQUIRE_KUBE=1, like internal/kubetest.
package deploytest
