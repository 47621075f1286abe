//go:build tools

// Package tools pins kube-apiserver's main package so `go build
// k8s.io/kubernetes/cmd/kube-apiserver` resolves inside this wrapper module. The
// build tag keeps it out of every normal build.
package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
