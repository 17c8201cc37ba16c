package manager

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	v1 "k8s.io/api/core/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/controller"
	"github.com/extlb/extlb/controller/endpoints"
	"github.com/extlb/extlb/providers"
)

// BuildProvider builds the provider once this replica is active.
type BuildProvider func(ctx context.Context, env providers.Env) (providers.LoadBalancer, error)

// Run runs the controller until ctx ends. With leader election it runs only
// while it holds the Lease and returns an error when it loses it, so that
// the process exits and restarts as a standby.
func Run(ctx context.Context, o Options, cfg *rest.Config, build BuildProvider) error {
	if err := o.Validate(); err != nil {
		return err
	}
	logger := klog.FromContext(ctx)
	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = o.QPS, o.Burst
	cfg.UserAgent = "extlb-controller"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("building Kubernetes client: %w", err)
	}
	eventClient, err := kubernetes.NewForConfig(rest.CopyConfig(cfg)) // own rate limiter
	if err != nil {
		return fmt.Errorf("building Kubernetes events client: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := controller.NewMetrics(reg)
	var ready atomic.Pointer[func() bool]
	notLeading := func() bool { return true } // a standby is ready: it is doing its job
	ready.Store(&notLeading)
	srv, err := endpoints.Start(ctx, o.MetricsAddr, reg, func() error {
		if !(*ready.Load())() {
			return errors.New("informer caches not synced")
		}
		return nil
	})
	if err != nil {
		return err
	}
	defer srv.Stop()

	run := func(ctx context.Context) error {
		factory := informers.NewSharedInformerFactory(client, o.ResyncPeriod)
		provider, err := build(ctx, providers.Env{ClusterName: o.Controller.ClusterName, KubeClient: client, RESTConfig: cfg, Informers: factory})
		if err != nil {
			return fmt.Errorf("building provider: %w", err)
		}
		broadcaster := record.NewBroadcaster(record.WithContext(ctx))
		broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: eventClient.CoreV1().Events("")})
		defer broadcaster.Shutdown()
		recorder := broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "extlb-controller"})
		ctrl, err := controller.New(o.Controller, client, factory, provider, recorder, metrics)
		if err != nil {
			return err
		}
		synced := ctrl.HasSynced
		ready.Store(&synced)
		factory.Start(ctx.Done())
		defer factory.Shutdown()
		return ctrl.Run(ctx)
	}

	if !o.LeaderElection.Enabled {
		return run(ctx)
	}
	return runWithLeaderElection(ctx, o.LeaderElection, client, run, logger)
}

// runWithLeaderElection runs run while this replica holds the Lease. On
// shutdown it stops run first and releases the Lease only after run has
// returned, so that a standby never starts while a worker of ours is still
// inside a provider call. Losing the Lease is an error: the process exits
// and restarts as a standby.
func runWithLeaderElection(ctx context.Context, le LeaderElection, client kubernetes.Interface, run func(context.Context) error, logger klog.Logger) error {
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, le.Namespace, le.Name, client.CoreV1(), client.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: le.Identity})
	if err != nil {
		return fmt.Errorf("creating leader-election lock %s/%s: %w", le.Namespace, le.Name, err)
	}
	// The election has a context of its own: ending it releases the Lease
	// (ReleaseOnCancel), which must wait for run.
	electionCtx, stopElection := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElection()
	// started says run began; ended that the election is over, after
	// which a late OnStartedLeading (the elector starts it on a goroutine
	// of its own) must not start run.
	var mu sync.Mutex
	var started, ended bool
	runDone := make(chan error, 1)
	stopIfIdle := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !started {
			stopElection() // never led: nothing to wait for
		}
	})
	defer stopIfIdle()
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(leading context.Context) {
				mu.Lock()
				if ended || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				started = true
				mu.Unlock()
				logger.Info("Started leading", "lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
				runCtx, cancel := context.WithCancel(leading)
				stop := context.AfterFunc(ctx, cancel) // shutdown stops run first
				err := run(runCtx)
				stop()
				cancel()
				runDone <- err
				stopElection() // now the Lease may go
			},
			OnStoppedLeading: func() {
				logger.Info("Stopped leading", "lease", le.Namespace+"/"+le.Name, "identity", le.Identity)
			},
			OnNewLeader: func(identity string) {
				if identity != le.Identity {
					logger.Info("Another replica leads", "leader", identity)
				}
			},
		},
	})
	if err != nil {
		return fmt.Errorf("configuring leader election: %w", err)
	}
	elector.Run(electionCtx)
	mu.Lock()
	ended = true
	led := started
	mu.Unlock()
	if !led {
		return nil
	}
	// Lost the Lease, or shut down: wait until run has stopped.
	if err := <-runDone; err != nil {
		return err
	}
	if ctx.Err() == nil {
		return errors.New("lost the leader-election lease")
	}
	return nil
}
