package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"github.com/extlb/extlb/fake/cluster"
	"github.com/extlb/extlb/providers"
)

// controllerStopTimeout bounds the wait for the controller on shutdown.
const controllerStopTimeout = 30 * time.Second

// session is one run of the demo and what it must stop.
type session struct {
	opts        Options
	out         *printer
	cluster     *cluster.Cluster
	exampleKeys []string

	cancel        context.CancelFunc
	controller    <-chan error
	controllerEnd bool // the controller's result was received
	factory       informers.SharedInformerFactory
	fleet         *fleet
	loops         sync.WaitGroup // the fleet's and the reporter's loops
	kubeconfig    string
}

// run starts the nodes, the controller and the examples, reports them, and
// then reports every new Service until ctx ends or the controller fails.
func (s *session) run(ctx context.Context, examples, controllerObjs []*unstructured.Unstructured, builder providers.Builder) error {
	ctx, s.cancel = context.WithCancel(ctx)
	c, opts, out := s.cluster, s.opts, s.out

	if err := os.MkdirAll(filepath.Dir(opts.KubeconfigOut), 0o700); err != nil {
		return fmt.Errorf("--kubeconfig-out %s: %w", opts.KubeconfigOut, err)
	}
	if err := cluster.WriteKubeconfig(opts.KubeconfigOut, c.AdminConfig()); err != nil {
		return fmt.Errorf("--kubeconfig-out: %w", err)
	}
	s.kubeconfig = opts.KubeconfigOut

	admin := c.AdminClient()
	var err error
	if s.fleet, err = startFleet(ctx, admin, opts.Nodes, opts.FirstNodeIP, out); err != nil {
		return err
	}
	s.factory = informers.NewSharedInformerFactory(admin, 0)
	services := s.factory.Core().V1().Services()
	fleetTrigger, reportTrigger := make(chan struct{}, 1), make(chan struct{}, 1)
	poke := func() {
		for _, ch := range []chan struct{}{fleetTrigger, reportTrigger} {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	if _, err := services.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { poke() },
		UpdateFunc: func(any, any) { poke() },
		DeleteFunc: func(any) { poke() },
	}); err != nil {
		return fmt.Errorf("watching Services: %w", err)
	}
	s.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), services.Informer().HasSynced) {
		return fmt.Errorf("watching Services: cache not synced: %w", ctx.Err())
	}
	rep := newReporter(services.Lister(), s.fleet, opts.Probe)
	s.loops.Add(2)
	go func() { defer s.loops.Done(); s.fleet.syncLoop(ctx, services.Lister(), fleetTrigger) }()
	go func() { defer s.loops.Done(); rep.loop(ctx, reportTrigger) }()
	poke()

	a, err := newApplier(c.AdminConfig())
	if err != nil {
		return err
	}
	saConfig, err := installControllerIdentity(ctx, c, a, controllerObjs)
	if err != nil {
		return err
	}
	s.controller = runController(ctx, saConfig, builder)
	var nodes []string
	for _, n := range s.fleet.nodes {
		nodes = append(nodes, fmt.Sprintf("%s (%s)", n.Name, n.IP))
	}
	out.Printf("Control plane at %s. Nodes: %s.\n", c.URL(), strings.Join(nodes, ", "))
	out.Printf("Controller running as ServiceAccount %s/%s with the fake provider (in-process fake cloud, addresses from %s).\n",
		controllerNamespace, controllerServiceAccount, opts.VIPRange)
	if h := opts.Hooks.Started; h != nil {
		h(Info{Kubeconfig: s.kubeconfig, APIServer: c.URL(), ControlPlaneDir: c.DataDir(), ControlPlanePIDs: c.PIDs(), Nodes: s.fleet.nodes})
	}

	if err := a.apply(ctx, namespacesFirst(examples)); err != nil {
		return fmt.Errorf("--examples %s: %w", opts.ExamplesDir, err)
	}
	out.Printf("Applied %d example Services from %s; waiting for their addresses, then sending %d TCP connections and %d UDP datagrams through each port...\n",
		len(s.exampleKeys), opts.ExamplesDir, opts.Probe.Connections, opts.Probe.Datagrams)
	rows, err := s.collectExamples(ctx, rep.rows)
	if err != nil {
		return err
	}
	out.writeTable(rows)
	if h := opts.Hooks.Examples; h != nil {
		h(rows)
	}
	s.printUsage(rows)

	for {
		select {
		case row := <-rep.rows:
			s.reportService(row)
		case err := <-s.controller:
			return s.controllerExited(ctx, err)
		case <-ctx.Done():
			return nil
		}
	}
}

// collectExamples waits (at most ReadyTimeout) for the examples' rows and
// returns them in the kustomization's order; a Service with no address in
// time gets a row with no ExternalIP. Other Services' rows are reported
// as they come.
func (s *session) collectExamples(ctx context.Context, rows <-chan Row) ([]Row, error) {
	got := map[string]Row{}
	timeout := time.NewTimer(s.opts.ReadyTimeout)
	defer timeout.Stop()
wait:
	for len(got) < len(s.exampleKeys) {
		select {
		case row := <-rows:
			if isExample := contains(s.exampleKeys, row.Service); isExample {
				got[row.Service] = row
			} else {
				s.reportService(row)
			}
		case err := <-s.controller:
			return nil, s.controllerExited(ctx, err)
		case <-timeout.C:
			s.out.Printf("Not every example Service got an address within %s; see `kubectl describe svc` for their events.\n", s.opts.ReadyTimeout)
			break wait
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	ordered := make([]Row, 0, len(s.exampleKeys))
	for _, key := range s.exampleKeys {
		row, ok := got[key]
		if !ok {
			row = Row{Service: key}
		}
		ordered = append(ordered, row)
	}
	return ordered, nil
}

// controllerExited records the controller's end and turns it into the
// demo's error.
func (s *session) controllerExited(ctx context.Context, err error) error {
	s.controllerEnd = true
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		err = errors.New("returned without error")
	}
	return fmt.Errorf("the controller stopped: %w", err)
}

// reportService prints a Service probed after the examples.
func (s *session) reportService(row Row) {
	if row.ExternalIP == "" {
		return
	}
	var ports []string
	for _, p := range row.Ports {
		ports = append(ports, fmt.Sprintf("%d/%s: %s", p.Port, p.Protocol, describeAnswers(row, p)))
	}
	s.out.Printf("Service %s has address %s. %s\n", row.Service, row.ExternalIP, strings.Join(ports, ". "))
	if h := s.opts.Hooks.Service; h != nil {
		h(row)
	}
}

func (s *session) printUsage(rows []Row) {
	kubeconfig := s.kubeconfig
	if abs, err := filepath.Abs(kubeconfig); err == nil {
		kubeconfig = abs
	}
	try := "nc <EXTERNAL-IP> <PORT>"
	for _, r := range rows {
		if p, ok := firstTCPPort(r); ok && r.ExternalIP != "" {
			try = fmt.Sprintf("nc %s %d        # %s", r.ExternalIP, p, r.Service)
			break
		}
	}
	s.out.Printf(`
The demo keeps running until Ctrl-C. The cluster is yours to try with kubectl
(any recent kubectl; none is bundled):

  export KUBECONFIG=%s
  kubectl get svc
  kubectl create service loadbalancer hello --tcp=9090:8080
  kubectl get svc hello --watch        # EXTERNAL-IP appears within seconds

Every LoadBalancer Service you add gets an address and is tested the same way;
the result is printed here. Nodes answer TCP with their name, then echo:

  %s

`, kubeconfig, try)
}

func firstTCPPort(r Row) (int32, bool) {
	for _, p := range r.Ports {
		if p.Protocol == "TCP" {
			return p.Port, true
		}
	}
	return 0, false
}

// stop stops everything run started, in order: the controller (and with
// it the in-process fake cloud), the loops, the informers, the node agents,
// the kubeconfig and the control plane.
func (s *session) stop() error {
	var errs []error
	if s.cancel != nil {
		s.cancel()
	}
	if s.controller != nil && !s.controllerEnd {
		select {
		case err := <-s.controller:
			if err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, fmt.Errorf("controller: %w", err))
			}
		case <-time.After(controllerStopTimeout):
			errs = append(errs, fmt.Errorf("controller did not stop within %s", controllerStopTimeout))
		}
	}
	s.loops.Wait()
	if s.factory != nil {
		s.factory.Shutdown()
	}
	if s.fleet != nil {
		s.fleet.close()
	}
	if s.kubeconfig != "" {
		if err := os.Remove(s.kubeconfig); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing kubeconfig: %w", err))
		}
	}
	if err := s.cluster.Stop(); err != nil {
		errs = append(errs, fmt.Errorf("stopping control plane: %w", err))
	}
	return errors.Join(errs...)
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
