package speaker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/klog/v2/ktesting"

	"github.com/extlb/extlb/providers"
	"github.com/extlb/extlb/test/fixtures"
)

// Rankings (election.TestRankGolden): 192.0.2.200: node-2, node-3, node-1;
// 192.0.2.201: node-2, node-1, node-3.

func threeNodes(opts map[string][]fixtures.NodeTweak) []runtime.Object {
	var out []runtime.Object
	for i, name := range []string{"node-1", "node-2", "node-3"} {
		o := append([]fixtures.NodeTweak{fixtures.WithInternalIP(fmt.Sprintf("192.0.2.%d", 11+i))}, opts[name]...)
		out = append(out, fixtures.Node(name, o...))
	}
	return out
}

type harness struct {
	client    *fake.Clientset
	announcer *fakeAnnouncer
	members   *fakeMembers
	calls     []string
	cancel    context.CancelFunc
	done      chan error
	speaker   *Speaker
}

// runSpeaker runs a speaker for node with the given objects; all three
// nodes count as live.
func runSpeaker(t *testing.T, node string, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{client: fake.NewClientset(objs...), done: make(chan error, 1)}
	h.announcer = newFakeAnnouncer(&h.calls)
	h.members = newFakeMembers(&h.calls, "node-1", "node-2", "node-3")
	s, err := New(Options{
		Client: h.client, NodeName: node, Class: providers.ClassFilter{Name: providers.DefaultClass(ProviderName)},
		HeartbeatPort: 7947, Announcer: h.announcer, Members: h.members,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(); err == nil {
		t.Fatal("Ready before Run: nil, want not ready")
	}
	h.speaker = s
	_, ctx := ktesting.NewTestContext(t)
	ctx, h.cancel = context.WithCancel(ctx)
	go func() { h.done <- s.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel != nil {
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

// waitAnnounced waits until the announcer holds exactly want.
func (h *harness) waitAnnounced(t *testing.T, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := map[string]string{}
		for k, v := range h.announcer.snapshot() {
			got[k] = v.String()
		}
		if maps.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("announcer holds %v, want %v", got, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitEvent waits for an Event with reason on Service name whose message
// contains text.
func (h *harness) waitEvent(t *testing.T, name, reason, text string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		evs, err := h.client.CoreV1().Events("default").List(context.Background(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var seen []string
		for _, e := range evs.Items {
			if e.InvolvedObject.Name == name && e.Reason == reason && strings.Contains(e.Message, text) {
				return
			}
			seen = append(seen, e.InvolvedObject.Name+": "+e.Reason+": "+e.Message)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s Event on %s mentioning %q; events: %v", reason, name, text, seen)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestSpeakerAnnouncesWhatItWins(t *testing.T) {
	tests := []struct {
		desc  string
		node  string
		nodes map[string][]fixtures.NodeTweak
		objs  []runtime.Object
		want  map[string]string
	}{
		{
			desc: "first-ranked node announces both addresses",
			node: "node-2",
			objs: []runtime.Object{newService("web"), newService("dns", fixtures.WithIngress("192.0.2.201"))},
			want: map[string]string{"default/web@192.0.2.200": "192.0.2.200", "default/dns@192.0.2.201": "192.0.2.201"},
		},
		{
			desc: "other node announces nothing",
			node: "node-3",
			objs: []runtime.Object{newService("web"), newService("dns", fixtures.WithIngress("192.0.2.201"))},
			want: map[string]string{},
		},
		{
			desc:  "excluded first-ranked node: the next one announces",
			node:  "node-3",
			nodes: map[string][]fixtures.NodeTweak{"node-2": {excluded()}},
			objs:  []runtime.Object{newService("web")},
			want:  map[string]string{"default/web@192.0.2.200": "192.0.2.200"},
		},
		{
			desc: "Services of another class are left alone",
			node: "node-2",
			objs: []runtime.Object{newService("web", fixtures.WithClass("example.com/other"))},
			want: map[string]string{},
		},
		{
			desc: "shared address: one node holds both Services",
			node: "node-2",
			objs: []runtime.Object{newService("web"), newService("dns")},
			want: map[string]string{"default/web@192.0.2.200": "192.0.2.200", "default/dns@192.0.2.200": "192.0.2.200"},
		},
		{
			desc: "Local: the node with the endpoint, not the first-ranked",
			node: "node-1",
			objs: []runtime.Object{newService("web", fixtures.WithLocalPolicy(0)), newSlice("web", "web-1", endpoint{"node-1", true}, endpoint{"node-2", false})},
			want: map[string]string{"default/web@192.0.2.200": "192.0.2.200"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			h := runSpeaker(t, tc.node, append(threeNodes(tc.nodes), tc.objs...)...)
			h.waitAnnounced(t, tc.want)
			waitReady(t, h.speaker)
			// Ready comes after the first sync: what the announcer holds now
			// is the speaker's answer. (A want of nothing is met before the
			// speaker did anything, so the wait above alone proves nothing.)
			got := map[string]string{}
			for k, v := range h.announcer.snapshot() {
				got[k] = v.String()
			}
			if !maps.Equal(got, tc.want) {
				t.Errorf("after the first sync the announcer holds %v, want %v", got, tc.want)
			}
		})
	}
}

// waitReady waits for /readyz's answer to turn ready once the speaker has
// synced and announced.
func waitReady(t *testing.T, s *Speaker) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); s.Ready() != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("speaker not ready: %v", s.Ready())
		}
	}
}

func TestSpeakerFollowsChanges(t *testing.T) {
	h := runSpeaker(t, "node-3", append(threeNodes(nil), newService("web", fixtures.WithLocalPolicy(0)),
		newSlice("web", "web-1", endpoint{"node-2", true}))...)
	ctx := context.Background()
	h.waitAnnounced(t, map[string]string{})

	// The endpoint moves to node-3.
	if _, err := h.client.DiscoveryV1().EndpointSlices("default").Update(ctx,
		newSlice("web", "web-1", endpoint{"node-2", false}, endpoint{"node-3", true}), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitAnnounced(t, map[string]string{"default/web@192.0.2.200": "192.0.2.200"})
	h.waitEvent(t, "web", ReasonNodeAssigned, "announcing 192.0.2.200 from node node-3")

	// The Service switches to Cluster: node-2 ranks first and is live.
	svc := newService("web")
	if _, err := h.client.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitAnnounced(t, map[string]string{})

	// node-2's speaker dies: node-3 is next.
	h.members.setLive("node-1", "node-3")
	h.waitAnnounced(t, map[string]string{"default/web@192.0.2.200": "192.0.2.200"})

	// The address changes.
	svc = newService("web", fixtures.WithIngress("192.0.2.201")) // ranks node-2, node-1, node-3
	if _, err := h.client.CoreV1().Services("default").Update(ctx, svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitAnnounced(t, map[string]string{})

	// The Service goes away.
	h.members.setLive("node-3")
	h.waitAnnounced(t, map[string]string{"default/web@192.0.2.201": "192.0.2.201"})
	if err := h.client.CoreV1().Services("default").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitAnnounced(t, map[string]string{})
}

func TestSpeakerReportsAnnounceFailure(t *testing.T) {
	var calls []string
	h := &harness{client: fake.NewClientset(append(threeNodes(nil), newService("web"))...), done: make(chan error, 1)}
	h.announcer = newFakeAnnouncer(&calls)
	h.announcer.fail[netip.MustParseAddr("192.0.2.200")] = errors.New("no interface has a subnet holding the address")
	h.members = newFakeMembers(&calls, "node-1", "node-2", "node-3")
	s, err := New(Options{Client: h.client, NodeName: "node-2", Class: providers.ClassFilter{Name: providers.DefaultClass(ProviderName)}, Announcer: h.announcer, Members: h.members})
	if err != nil {
		t.Fatal(err)
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, h.cancel = context.WithCancel(ctx)
	go func() { h.done <- s.Run(ctx) }()
	t.Cleanup(h.stop)
	h.waitEvent(t, "web", ReasonAnnounceFailed, "node node-2 cannot announce: no interface has a subnet holding the address")
}

func TestSpeakerLeavesBeforeItStopsAnswering(t *testing.T) {
	h := runSpeaker(t, "node-2", append(threeNodes(nil), newService("web"))...)
	h.waitAnnounced(t, map[string]string{"default/web@192.0.2.200": "192.0.2.200"})
	peers := h.members.peersSnapshot()
	if len(peers) != 3 || peers["node-1"] != netip.MustParseAddrPort("192.0.2.11:7947") {
		t.Errorf("peers = %v, want the three nodes' InternalIPs on port 7947", peers)
	}
	h.stop()
	want := []string{"members.Leave", "announcer.Close", "members.Close"}
	if !slices.Equal(h.calls, want) {
		t.Errorf("shutdown did %v, want %v", h.calls, want)
	}
}

func TestNewRejectsMissingParts(t *testing.T) {
	var calls []string
	if _, err := New(Options{NodeName: "node-1", Announcer: newFakeAnnouncer(&calls), Members: newFakeMembers(&calls)}); err == nil {
		t.Error("New without a client succeeded")
	}
	if _, err := New(Options{Client: fake.NewClientset(), Announcer: newFakeAnnouncer(&calls), Members: newFakeMembers(&calls)}); err == nil {
		t.Error("New without a node name succeeded")
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		desc    string
		mutate  func(*Config)
		wantErr string
	}{
		{desc: "defaults are valid", mutate: func(*Config) {}},
		{desc: "no node name", mutate: func(c *Config) { c.NodeName = "" }, wantErr: "--node-name"},
		{desc: "no class", mutate: func(c *Config) { c.Class.Name = "" }, wantErr: "--load-balancer-class"},
		{desc: "dead-after not above interval", mutate: func(c *Config) { c.DeadAfter = c.HeartbeatInterval }, wantErr: "--dead-after"},
		{desc: "zero port", mutate: func(c *Config) { c.HeartbeatPort = 0 }, wantErr: "--heartbeat-port"},
		{desc: "key file missing", mutate: func(c *Config) { c.KeyFile = "/nonexistent/key" }, wantErr: "--heartbeat-key-file"},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Setenv("NODE_NAME", "")
			c := &Config{KubeClient: fake.NewClientset(), NodeName: "node-1", Class: providers.DefaultClassFilter(ProviderName),
				HeartbeatPort: 7947, HeartbeatInterval: 100 * time.Millisecond, DeadAfter: 600 * time.Millisecond}
			tc.mutate(c)
			err := c.validate()
			if err == nil {
				_, err = c.readKey()
			}
			if tc.wantErr == "" && err != nil {
				t.Fatalf("error %v, want none", err)
			}
			if tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("error %v, want one naming %s", err, tc.wantErr)
			}
		})
	}
}
