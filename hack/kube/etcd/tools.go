//go:build tools

// Package tools pins etcd's server module so `go build go.etcd.io/etcd/server/v3`
// resolves inside this wrapper module. The build tag keeps it out of every normal build.
package tools

import _ "go.etcd.io/etcd/server/v3"
