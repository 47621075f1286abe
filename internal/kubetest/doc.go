// Package kubetest runs a real Kubernetes API server for tests: etcd and
// kube-apiserver as child processes on free 127.0.0.1 ports, with Istio's
// CustomResourceDefinitions installed and Established, so tests prove their
// behaviour against the server's own validation, RBAC and optimistic
// concurrency instead of a fake.
//
// The binaries are built from Go module sources by hack/kube/build.sh
// (`make kube-bin`) into <repo>/bin/kube; the CRDs are the
// kubernetes/customresourcedefinitions.gen.yaml file of the istio.io/api
// module version that the repository's go.mod pins, read from the module
// cache. Nothing is downloaded at test time.
//
// controller-runtime's envtest manages the processes underneath: it already
// picks free ports, generates the serving and client certificates, mints
// client-certificate identities for RBAC tests and stops the API server before
// etcd (the other order takes about 30 s to exit). This package only points
// it at the self-built binaries, adds the Istio CRDs and the Established
// wait, and decides what a missing binary means (see Main).
//
// Starting costs about 6 s, so share one Env per test package through
// TestMain:
//
//	var env *kubetest.Env
//
//	func TestMain(m *testing.M) { os.Exit(kubetest.Main(m, &env)) }
//
// Tests sharing an Env must isolate themselves by namespace (or object
// name): the server is not reset between tests.
package kubetest
