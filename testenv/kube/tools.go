//go:build tools

// Package tools pins the upstream commands this module builds, so that
// `go mod tidy` keeps their dependencies. Build with:
//
//	go build -o BIN/ k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager ./cmd/etcd
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
