package main

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"

	"github.com/extlb/extlb/controller/manager"
	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/fake"
)

// Identity of the controller, as manifests/controller defines it.
const (
	controllerNamespace      = "extlb-system"
	controllerServiceAccount = "extlb-controller"
	// ClusterName is the --cluster-name the demo's controller runs with.
	ClusterName = "demo"
)

// installControllerIdentity applies the controller's Namespace,
// ServiceAccount and RBAC (everything in objs but the Deployment: the
// controller runs in the demo's process) and returns a client configuration
// with the ServiceAccount's token.
func installControllerIdentity(ctx context.Context, c *cluster.Cluster, a *applier, objs []*unstructured.Unstructured) (*rest.Config, error) {
	var keep []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			keep = append(keep, o)
		}
	}
	if err := a.apply(ctx, namespacesFirst(keep)); err != nil {
		return nil, fmt.Errorf("installing the controller's ServiceAccount and RBAC: %w", err)
	}
	var cfg *rest.Config
	var last error
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		cfg, last = c.ServiceAccountConfig(ctx, controllerNamespace, controllerServiceAccount)
		return last == nil, nil
	})
	if err != nil {
		return nil, fmt.Errorf("token of ServiceAccount %s/%s: %w (last: %v)", controllerNamespace, controllerServiceAccount, err, last)
	}
	return cfg, nil
}

// controllerOptions are the demo controller's settings: no leader election,
// no metrics port, quick retries.
func controllerOptions() manager.Options {
	o := manager.DefaultOptions()
	o.Controller.ClusterName = ClusterName
	// The fake provider's own class and, by default, Services with none.
	o.Controller.Class = providers.DefaultClassFilter(fake.Name)
	o.Controller.Workers = 4
	o.Controller.MinRetryDelay = 200 * time.Millisecond
	o.Controller.MaxRetryDelay = 10 * time.Second
	o.MetricsAddr = ""
	o.LeaderElection.Enabled = false
	return o
}

// fakeProviderBuilder returns the fake provider's builder with its flags set
// as the demo wants them: an in-process fake cloud with VIPs from vipRange
// and health checks every interval.
func fakeProviderBuilder(vipRange string, interval time.Duration) (providers.Builder, error) {
	b := fake.NewBuilder()
	fs := pflag.NewFlagSet("fake", pflag.ContinueOnError)
	b.AddFlags(fs)
	args := []string{
		"--fake-vip-range=" + vipRange,
		"--fake-health-check-interval=" + interval.String(),
		"--fake-request-timeout=" + strconv.Itoa(30) + "s",
	}
	if err := fs.Parse(args); err != nil {
		return nil, fmt.Errorf("fake provider flags %v: %w", args, err)
	}
	return b, nil
}

// runController runs the service controller with the fake provider until
// ctx ends; the returned channel receives its result.
func runController(ctx context.Context, cfg *rest.Config, builder providers.Builder) <-chan error {
	done := make(chan error, 1)
	go func() {
		done <- manager.Run(ctx, controllerOptions(), cfg, func(ctx context.Context, env providers.Env) (providers.LoadBalancer, error) {
			return builder.Build(ctx, env)
		})
	}()
	return done
}
