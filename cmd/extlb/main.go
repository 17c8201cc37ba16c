// Command extlb is extlb's single binary: the service controller, the
// bare-metal speaker, the local fake cloud and the demo, as subcommands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	logsapi "k8s.io/component-base/logs/api/v1"
	logsjson "k8s.io/component-base/logs/json"
	"k8s.io/klog/v2"
)

// version is stamped at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := logsapi.RegisterLogFormat(logsapi.JSONLogFormat, logsjson.Factory{}, logsapi.LoggingBetaOptions); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRootCommand()
	if err := root.ExecuteContext(ctx); err != nil {
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "extlb",
		Short:         "External load balancers for Kubernetes Services of type LoadBalancer",
		SilenceUsage:  true,
		SilenceErrors: false,
		Version:       version,
	}
	root.AddCommand(newControllerCommand(defaultRegistry()), newSpeakerCommand())
	for _, c := range extraCommands() {
		root.AddCommand(c)
	}
	return root
}
