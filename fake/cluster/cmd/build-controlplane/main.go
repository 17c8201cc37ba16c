// Command build-controlplane builds (or finds in the cache) the
// kube-apiserver and etcd executables that fake/cluster runs, and prints
// their paths. `make controlplane` runs it so that tests do not pay for the
// first build.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/extlb/extlb/fake/cluster"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bins, err := cluster.EnsureBinaries(ctx, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "build-controlplane: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("kube-apiserver: %s\netcd: %s\n", bins.APIServer, bins.Etcd)
}
