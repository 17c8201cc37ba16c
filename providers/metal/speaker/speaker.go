// Package speaker is the Kubernetes side of the metal load balancer's
// announcements: it watches Services, Nodes and EndpointSlices, hears which
// speakers are alive (package liveness), lets package election pick the node
// for each address and drives this node's announcer (package layer2) for the
// addresses it won. It runs on every node as `extlb speaker`.
package speaker

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync/atomic"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	discoverylisters "k8s.io/client-go/listers/discovery/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/providers/metal/election"
	"github.com/extlb/extlb/providers/metal/layer2"
	"github.com/extlb/extlb/providers/metal/speaker/liveness"
)

// Announcer makes this node answer for addresses (see layer2.Announcer).
type Announcer interface {
	SetBalancer(name string, ip netip.Addr) error
	DeleteBalancer(name string)
	// Refresh re-reads the node's interfaces and moves addresses whose
	// interfaces changed.
	Refresh() error
	Close() error
}

// Members tells which speakers are alive (see liveness.Members).
type Members interface {
	Run(ctx context.Context) error
	SetPeers(peers map[string]netip.AddrPort)
	Live() map[string]bool
	Ready() bool
	Changes() <-chan struct{}
	Leave()
	Close() error
}

var (
	_ Announcer = (*layer2.Announcer)(nil)
	_ Members   = (*liveness.Members)(nil)
)

// Event reasons recorded on Services.
const (
	ReasonNodeAssigned   = "nodeAssigned"
	ReasonAnnounceFailed = "AnnounceFailed"
)

// handoffOverlap is how long a leaving speaker keeps answering after telling
// its peers: long enough for them to take over, so no request goes
// unanswered; a stale answer inside it loses to the new node's gratuitous ARP.
const handoffOverlap = 50 * time.Millisecond

// interfaceRecheck is how often the announcer re-reads the node's
// interfaces (see layer2.Announcer.Refresh).
const interfaceRecheck = 10 * time.Second

// Options are what a Speaker is built from.
type Options struct {
	Client   kubernetes.Interface
	NodeName string
	// Class selects the Services to announce (see Config).
	Class providers.ClassFilter
	// HeartbeatPort is where the peers' speakers listen.
	HeartbeatPort uint16
	Announcer     Announcer
	Members       Members
}

// Speaker announces the addresses this node wins. Build it with New.
type Speaker struct {
	client    kubernetes.Interface
	nodeName  string
	filter    providers.ClassFilter
	started   atomic.Bool // caches synced and the first sync done
	port      uint16
	announcer Announcer
	members   Members

	services  corelisters.ServiceLister
	nodes     corelisters.NodeLister
	slices    discoverylisters.EndpointSliceLister
	recorder  record.EventRecorder
	kick      chan struct{}
	announced map[string]netip.Addr // balancer name -> address
	owned     map[netip.Addr]bool
	failed    map[string]string // balancer name -> last error reported
}

// New returns a Speaker; it takes ownership of the announcer and members.
func New(o Options) (*Speaker, error) {
	if o.Client == nil || o.Announcer == nil || o.Members == nil {
		return nil, fmt.Errorf("speaker: client, announcer and members are required")
	}
	if o.NodeName == "" {
		return nil, fmt.Errorf("speaker: node name is required")
	}
	return &Speaker{
		client:    o.Client,
		nodeName:  o.NodeName,
		filter:    o.Class,
		port:      o.HeartbeatPort,
		announcer: o.Announcer,
		members:   o.Members,
		kick:      make(chan struct{}, 1),
		announced: map[string]netip.Addr{},
		owned:     map[netip.Addr]bool{},
		failed:    map[string]string{},
	}, nil
}

// Run announces until ctx ends, then hands over gracefully: it tells the
// peers it leaves, so they take over at once, and then stops answering.
func (s *Speaker) Run(ctx context.Context) error {
	log := klog.FromContext(ctx).WithValues("node", s.nodeName)
	ctx = klog.NewContext(ctx, log)

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: s.client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	s.recorder = broadcaster.NewRecorder(scheme.Scheme, v1.EventSource{Component: "extlb-speaker", Host: s.nodeName})

	factory, err := s.startInformers(ctx)
	if factory != nil {
		defer factory.Shutdown()
	}
	if err != nil || ctx.Err() != nil {
		s.announcer.Close()
		s.members.Close()
		return err // nil when stopped before announcing anything
	}
	// Peers must be known before the liveness clock starts (see
	// liveness.Members.Ready).
	s.sync(ctx)
	s.started.Store(true)
	membersCtx, stopMembers := context.WithCancel(klog.NewContext(context.Background(), log))
	membersDone := make(chan struct{})
	go func() {
		defer close(membersDone)
		if err := s.members.Run(membersCtx); err != nil {
			log.Error(err, "Liveness stopped")
		}
	}()
	log.Info("Speaker started")

	recheck := time.NewTicker(interfaceRecheck)
	defer recheck.Stop()
	var lastRefreshErr string
	for {
		select {
		case <-ctx.Done():
			s.shutdown(log.WithValues("announced", len(s.announced)))
			stopMembers()
			<-membersDone
			return nil
		case <-recheck.C:
			err := s.announcer.Refresh()
			if err != nil && err.Error() != lastRefreshErr {
				log.Error(err, "Re-reading interfaces")
			}
			lastRefreshErr = ""
			if err != nil {
				lastRefreshErr = err.Error()
			}
			continue
		case <-s.kick:
		case <-s.members.Changes():
		}
		s.sync(ctx)
	}
}

// Ready reports, for /readyz, whether the speaker has synced its caches and
// announced what it owns.
func (s *Speaker) Ready() error {
	if !s.started.Load() {
		return errors.New("speaker: informer caches not synced yet")
	}
	return nil
}

// startInformers starts the informers on Services, Nodes and EndpointSlices,
// each change of which triggers a sync, and waits for their caches.
func (s *Speaker) startInformers(ctx context.Context) (informers.SharedInformerFactory, error) {
	factory := informers.NewSharedInformerFactory(s.client, 0)
	svcInformer := factory.Core().V1().Services()
	nodeInformer := factory.Core().V1().Nodes()
	sliceInformer := factory.Discovery().V1().EndpointSlices()
	s.services, s.nodes, s.slices = svcInformer.Lister(), nodeInformer.Lister(), sliceInformer.Lister()
	kick := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { s.trigger() },
		UpdateFunc: func(any, any) { s.trigger() },
		DeleteFunc: func(any) { s.trigger() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcInformer.Informer(), nodeInformer.Informer(), sliceInformer.Informer()} {
		if _, err := inf.AddEventHandler(kick); err != nil {
			return nil, fmt.Errorf("speaker: add event handler: %w", err)
		}
	}
	factory.Start(ctx.Done())
	for typ, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok && ctx.Err() == nil {
			return factory, fmt.Errorf("speaker: cache for %v did not sync", typ)
		}
	}
	return factory, nil
}

func (s *Speaker) shutdown(log klog.Logger) {
	log.Info("Leaving: handing addresses over to the other speakers")
	s.members.Leave()
	time.Sleep(handoffOverlap)
	if err := s.announcer.Close(); err != nil {
		log.Error(err, "Closing announcer")
	}
	if err := s.members.Close(); err != nil {
		log.Error(err, "Closing liveness socket")
	}
}

func (s *Speaker) trigger() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// sync recomputes the election and makes the announcer match this node's
// share of it.
func (s *Speaker) sync(ctx context.Context) {
	log := klog.FromContext(ctx)
	nodes, err := s.nodes.List(labels.Everything())
	if err != nil {
		log.Error(err, "Listing nodes")
		return
	}
	s.members.SetPeers(peerAddresses(nodes, s.port))
	if !s.members.Ready() {
		// Until every live peer had a chance to be heard, this node would
		// think itself alone and claim every address.
		return
	}
	svcs, err := s.services.List(labels.Everything())
	if err != nil {
		log.Error(err, "Listing services")
		return
	}
	slices, err := s.slices.List(labels.Everything())
	if err != nil {
		log.Error(err, "Listing endpoint slices")
		return
	}
	esvcs, byName := electionServices(s.filter, svcs, slices)
	result := election.Elect(electionNodes(nodes, s.members.Live()), esvcs)

	desired := map[string]netip.Addr{}
	for ip, a := range result {
		if a.Node != s.nodeName {
			continue
		}
		for _, svc := range a.Services {
			desired[balancerName(svc, ip)] = ip
		}
	}
	for name := range s.announced {
		if _, ok := desired[name]; !ok {
			s.announcer.DeleteBalancer(name)
			delete(s.announced, name)
		}
	}
	owned := map[netip.Addr]bool{}
	for ip, a := range result {
		if a.Node != s.nodeName {
			continue
		}
		for _, svcName := range a.Services {
			name := balancerName(svcName, ip)
			if _, ok := s.announced[name]; ok {
				owned[ip] = true
				continue
			}
			svc := byName[svcName]
			if err := s.announcer.SetBalancer(name, ip); err != nil {
				s.reportFailure(log, svc, name, err)
				continue
			}
			delete(s.failed, name)
			s.announced[name] = ip
			owned[ip] = true
			if !s.owned[ip] {
				log.Info("Announcing address", "service", svcName, "address", ip)
			}
			s.recorder.Eventf(svc, v1.EventTypeNormal, ReasonNodeAssigned, "announcing %s from node %s", ip, s.nodeName)
		}
	}
	for name := range s.failed {
		if _, ok := desired[name]; !ok {
			delete(s.failed, name)
		}
	}
	s.owned = owned
}

// reportFailure logs and records a failure to announce, once per distinct
// error.
func (s *Speaker) reportFailure(log klog.Logger, svc *v1.Service, name string, err error) {
	if s.failed[name] == err.Error() {
		return
	}
	s.failed[name] = err.Error()
	log.Error(err, "Announcing address", "balancer", name)
	s.recorder.Eventf(svc, v1.EventTypeWarning, ReasonAnnounceFailed, "node %s cannot announce: %v", s.nodeName, err)
}

// balancerName names one address of one Service for the announcer.
func balancerName(service string, ip netip.Addr) string {
	return service + "@" + ip.String()
}
