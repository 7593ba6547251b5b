// Command etcd is the etcd 3.6 server, built from the module graph that
// k8s.io/kubernetes already pins, so kube-apiserver sees the etcd it expects.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
