// Command speakerproc runs speaker.Config the way `extlb speaker` does
// (flags, a Kubernetes client, SIGTERM for a graceful stop), for the tests
// that run whole speaker processes inside network namespaces. --api-socket
// reaches the test's API server through a unix-socket relay, since the
// root namespace's loopback is out of reach from inside a namespace.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/providers/metal/speaker"
)

func main() {
	var cfg speaker.Config
	fs := pflag.NewFlagSet("speakerproc", pflag.ExitOnError)
	cfg.AddFlags(fs)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig of the API server")
	socket := fs.String("api-socket", "", "unix socket relaying to the API server")
	fs.Parse(os.Args[1:])

	if err := run(&cfg, *kubeconfig, *socket); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(cfg *speaker.Config, kubeconfig, socket string) error {
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	if socket != "" {
		rc = cluster.RelayConfig(rc, socket)
	}
	if cfg.KubeClient, err = kubernetes.NewForConfig(rc); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	ctx = klog.NewContext(ctx, klog.Background())
	return cfg.Run(ctx)
}
