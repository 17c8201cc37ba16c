package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers/metal/speaker"
)

func newSpeakerCommand() *cobra.Command {
	var cfg speaker.Config
	var kubeconfig string
	var qps float32
	var burst int
	logging := logsapi.NewLoggingConfiguration()
	cmd := &cobra.Command{
		Use:   "speaker",
		Short: "Announce the metal provider's addresses on the local network with ARP and NDP (run as a DaemonSet)",
		Long: `Run the bare-metal speaker. For every address the metal provider assigned,
exactly one eligible node answers ARP requests (IPv4) and neighbor
solicitations (IPv6) on the interface whose subnet holds the address, and sends
gratuitous ARP / unsolicited neighbor advertisements when it takes an address
over. Speakers detect each other's failure with heartbeats and move addresses
within about a second; on SIGTERM a speaker hands its addresses over first.
Needs the host network and CAP_NET_RAW. See docs/speaker.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyLogging(logging); err != nil {
				return err
			}
			rc, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			rc.QPS, rc.Burst = qps, burst
			rc.UserAgent = "extlb-speaker"
			client, err := kubernetes.NewForConfig(rc)
			if err != nil {
				return fmt.Errorf("building Kubernetes client: %w", err)
			}
			cfg.KubeClient = client
			ctx := klog.NewContext(cmd.Context(), klog.Background().WithName("extlb-speaker"))
			klog.FromContext(ctx).Info("Starting extlb speaker", "version", version)
			return cfg.Run(ctx)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "Path to a kubeconfig; in-cluster configuration when empty.")
	fs.Float32Var(&qps, "kube-api-qps", 20, "Queries per second to the Kubernetes API server.")
	fs.IntVar(&burst, "kube-api-burst", 40, "Burst of queries to the Kubernetes API server.")
	cfg.AddFlags(fs)
	logsapi.AddFlags(logging, fs)
	return cmd
}
