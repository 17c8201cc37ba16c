// Command build-controlplane builds (or finds in the cache) the
// kube-apiserver and etcd executables that fake/cluster runs, and with
// -nodes also the kube-node executable (kubelet, kube-proxy,
// kube-controller-manager, kube-scheduler), and prints their paths. `make
// controlplane` runs it so that tests do not pay for the first build.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/extlb/extlb/fake/cluster"
)

func main() {
	nodes := flag.Bool("nodes", false, "also build the node programs (kube-node)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bins, err := cluster.EnsureBinaries(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "build-controlplane: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("kube-apiserver: %s\netcd: %s\n", bins.APIServer, bins.Etcd)
	if *nodes {
		nb, err := cluster.EnsureNodeBinaries(ctx, os.Stderr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "build-controlplane: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("kube-node: %s\n", nb.KubeNode)
	}
}
