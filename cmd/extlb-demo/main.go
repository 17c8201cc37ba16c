// Command extlb-demo (make run) is a whole extlb setup on one machine with
// nothing but Go. It starts a real kube-apiserver and etcd (fake/cluster),
// registers simulated nodes whose node agents (fake/nodeagent) serve every
// Service's node ports on loopback addresses, runs the service controller
// with the fake provider and an in-process fake cloud under the
// controller's own ServiceAccount and RBAC, applies the example Services,
// sends a bounded amount of traffic through each load balancer and prints
// which nodes answered. It then keeps running and reports every Service a
// user adds, until its context ends; then it stops everything and removes
// the control plane.
//
// All traffic stays on 127.0.0.0/8.
//
// It is a program of its own, apart from cmd/extlb, so that the shipped
// binary carries no demo and no test harness.
package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"
	"k8s.io/klog/v2/textlogger"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newDemoCommand().ExecuteContext(ctx); err != nil {
		klog.Flush()
		os.Exit(1)
	}
	klog.Flush()
}

func newDemoCommand() *cobra.Command {
	opts := DefaultOptions()
	var firstNode, vipRange, logFile string
	logVerbosity := 2
	cmd := &cobra.Command{
		Use:          "extlb-demo",
		SilenceUsage: true,
		Short:        "Run extlb end to end on this machine: a local control plane, simulated nodes, the controller with the fake cloud, and example Services",
		Long: `Run a whole extlb setup on this machine with nothing but Go (make run):

  - a real kube-apiserver and etcd on 127.0.0.1 (built on first use, about
    6 minutes; later starts take seconds),
  - --nodes simulated nodes (Node objects node-1, node-2, ... with InternalIPs
    from --node-ip), each with a node agent that serves every Service's node
    ports on its address like kube-proxy; externalTrafficPolicy: Local
    Services get their endpoints on one node,
  - the extlb controller with the fake provider and an in-process fake cloud
    (addresses from --vip-range), under the ServiceAccount and RBAC of
    --controller-manifests,
  - the example Services of --examples.

It waits for the examples' EXTERNAL-IPs, sends a bounded amount of TCP and UDP
traffic through every load-balancer port and prints which nodes answered. Then
it keeps running: the kubeconfig written to --kubeconfig-out lets kubectl add
Services, and each new one is tested and reported the same way. Ctrl-C stops
everything and removes the control plane and the kubeconfig.

All traffic stays on 127.0.0.0/8. The example ports are above 1024.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if opts.FirstNodeIP, err = netip.ParseAddr(firstNode); err != nil {
				return flagError("--node-ip", err)
			}
			if opts.VIPRange, err = netip.ParsePrefix(vipRange); err != nil {
				return flagError("--vip-range", err)
			}
			opts.Out = cmd.OutOrStdout()
			opts.Progress = cmd.ErrOrStderr()
			ctx := cmd.Context()
			if logFile != "" {
				f, err := openLogFile(logFile)
				if err != nil {
					return flagError("--log-file", err)
				}
				defer f.Close()
				logger := textlogger.NewLogger(textlogger.NewConfig(textlogger.Output(f), textlogger.Verbosity(logVerbosity)))
				opts.Logger = &logger
				// Libraries that log through klog's global logger
				// (client-go's informers) write there too.
				klog.SetLogger(logger)
				defer klog.ClearLogger()
				cmd.Printf("Logs of the controller and the fake cloud go to %s.\n", logFile)
			} else {
				logger := klog.Background()
				opts.Logger = &logger
			}
			return Run(ctx, opts)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&opts.ExamplesDir, "examples", opts.ExamplesDir, "Directory of the example Services, with a kustomization.yaml listing them.")
	fs.StringVar(&opts.ControllerManifests, "controller-manifests", opts.ControllerManifests, "Directory of the controller's kustomization; its ServiceAccount and RBAC are applied and the controller runs as that ServiceAccount.")
	fs.StringVar(&opts.KubeconfigOut, "kubeconfig-out", opts.KubeconfigOut, "Where to write the admin kubeconfig of the demo cluster (removed on exit).")
	fs.IntVar(&opts.Nodes, "nodes", opts.Nodes, "Number of simulated nodes.")
	fs.StringVar(&firstNode, "node-ip", opts.FirstNodeIP.String(), "InternalIP of node-1; the other nodes take the following addresses. Must be in 127.0.0.0/8.")
	fs.StringVar(&vipRange, "vip-range", opts.VIPRange.String(), "CIDR the fake cloud takes load-balancer addresses from. Must be in 127.0.0.0/8.")
	fs.DurationVar(&opts.HealthCheckInterval, "health-check-interval", opts.HealthCheckInterval, "Interval of the load balancers' backend health checks.")
	fs.DurationVar(&opts.ReadyTimeout, "ready-timeout", opts.ReadyTimeout, "How long to wait for the example Services' addresses.")
	fs.IntVar(&opts.Probe.Connections, "connections", opts.Probe.Connections, "TCP connections sent through each TCP load-balancer port.")
	fs.IntVar(&opts.Probe.Datagrams, "datagrams", opts.Probe.Datagrams, "UDP datagrams sent through each UDP load-balancer port.")
	fs.DurationVar(&opts.Probe.Timeout, "probe-timeout", opts.Probe.Timeout, "Timeout of each test connection or datagram.")
	fs.StringVar(&logFile, "log-file", ".demo/extlb.log", "File for the logs of the controller, the fake cloud and the control plane (empty: standard error).")
	fs.IntVar(&logVerbosity, "log-verbosity", logVerbosity, "Verbosity of the logs in --log-file.")
	return cmd
}

func flagError(flag string, err error) error { return fmt.Errorf("%s: %w", flag, err) }

// openLogFile creates (or truncates) path, with its directory.
func openLogFile(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	return os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
}
