package main

import (
	"fmt"

	"github.com/spf13/cobra"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers/fake/cloud"
)

func newFakeCommand() *cobra.Command {
	cfg := cloud.DefaultConfig()
	logging := logsapi.NewLoggingConfiguration()
	cmd := &cobra.Command{
		Use:   "fake",
		Short: "Serve the local fake cloud: a load-balancer API whose load balancers really forward traffic",
		Long: `Serve the fake cloud as a process of its own. Its HTTP API creates load
balancers that listen on virtual IPs from --fake-vip-range (loopback by
default) and forward TCP and UDP to their backends, with health checks, source
ranges and session affinity. Point the controller at it with
  extlb controller --provider=fake --fake-endpoint=<URL printed at start>
and inject API faults with the --fake-error-rate, --fake-throttle-rate,
--fake-latency and --fake-outage flags (or PUT /v1/faults).

It listens on loopback unless told otherwise; a non-loopback
--fake-listen needs --fake-token. Ctrl-C stops it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyLogging(logging); err != nil {
				return err
			}
			if err := cfg.Complete(); err != nil {
				return err
			}
			srv, err := cloud.New(cfg)
			if err != nil {
				return err
			}
			ctx := klog.NewContext(cmd.Context(), klog.Background().WithName("fake"))
			if err := srv.Start(ctx); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Fake cloud API at %s (load-balancer addresses from %s). Ctrl-C stops it.\n", srv.URL(), cfg.VIPRange)
			<-ctx.Done()
			return srv.Close()
		},
	}
	fs := cmd.Flags()
	cfg.AddFlags(fs)
	logsapi.AddFlags(logging, fs)
	return cmd
}
