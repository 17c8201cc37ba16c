package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/component-base/featuregate"
	logsapi "k8s.io/component-base/logs/api/v1"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/controller/manager"
	"github.com/extlb/extlb/providers"
)

func newControllerCommand(registry providers.Registry) *cobra.Command {
	opts := manager.DefaultOptions()
	logging := logsapi.NewLoggingConfiguration()
	var kubeconfig, providerName string
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the service controller: provision external load balancers for LoadBalancer Services",
		Long: `Run the service controller. It watches Services of type LoadBalancer whose
spec.loadBalancerClass is --load-balancer-class (and, with --default-class,
those with no class), gives them node ports when the provider needs them,
creates their load balancers through --provider, and writes the address into
status.loadBalancer.ingress.

Providers: ` + strings.Join(registry.Names(), ", ") + `. Each provider's own flags start with its name.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyLogging(logging); err != nil {
				return err
			}
			builder, err := registry.Get(providerName)
			if err != nil {
				return fmt.Errorf("--provider: %w", err)
			}
			if !cmd.Flags().Changed("load-balancer-class") {
				opts.Controller.Class.Name = providers.DefaultClass(providerName)
			}
			if err := opts.Validate(); err != nil {
				return err
			}
			cfg, err := restConfig(kubeconfig)
			if err != nil {
				return err
			}
			ctx := klog.NewContext(cmd.Context(), klog.Background().WithName("extlb"))
			klog.FromContext(ctx).Info("Starting extlb controller", "version", version, "provider", providerName, "class", opts.Controller.Class.Name, "defaultClass", opts.Controller.Class.Default)
			return manager.Run(ctx, opts, cfg, func(ctx context.Context, env providers.Env) (providers.LoadBalancer, error) {
				return builder.Build(ctx, env)
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&kubeconfig, "kubeconfig", "", "Path to a kubeconfig; in-cluster configuration when empty.")
	fs.StringVar(&providerName, "provider", "fake", "Load-balancer provider: one of "+strings.Join(registry.Names(), ", ")+".")
	opts.Controller.Class.Name = providers.DefaultClass("<provider>")
	opts.AddFlags(fs)
	for _, name := range registry.Names() {
		pfs := pflag.NewFlagSet(name, pflag.ContinueOnError)
		registry[name].AddFlags(pfs)
		fs.AddFlagSet(pfs)
	}
	logsapi.AddFlags(logging, fs)
	return cmd
}

// restConfig loads the kubeconfig at path, or the in-cluster configuration.
func restConfig(path string) (*rest.Config, error) {
	if path == "" {
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig not given and not running in a cluster: %w", err)
		}
		return cfg, nil
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("--kubeconfig %s: %w", path, err)
	}
	return cfg, nil
}

// applyLogging validates and applies the klog flags (--logging-format=json
// included).
func applyLogging(c *logsapi.LoggingConfiguration) error {
	gate := featuregate.NewFeatureGate()
	if err := logsapi.AddFeatureGates(gate); err != nil {
		return fmt.Errorf("logging feature gates: %w", err)
	}
	if err := logsapi.ValidateAndApply(c, gate); err != nil {
		return fmt.Errorf("logging flags: %w", err)
	}
	return nil
}
