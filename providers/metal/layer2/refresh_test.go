package layer2

import (
	"slices"
	"strings"
	"testing"
)

func TestRefreshFollowsInterfaceChanges(t *testing.T) {
	eth0 := newLink("eth0", macEth0, "192.0.2.11/24")
	tests := []struct {
		desc      string
		after     []Link
		wantOn    string // interface with the fresh socket and announcement; "" = none
		wantErr   string
		oldClosed bool
	}{
		{
			desc:  "nothing changed: nothing sent",
			after: []Link{eth0},
		},
		{
			desc:      "subnet moved to another interface",
			after:     []Link{newLink("eth0", macEth0), newLink("bond0", macEth1, "192.0.2.11/24")},
			wantOn:    "bond0",
			oldClosed: true,
		},
		{
			desc:      "interface recreated under the same name",
			after:     []Link{{Name: "eth0", Index: 99, MAC: macEth1, Prefixes: eth0.Prefixes}},
			wantOn:    "eth0",
			oldClosed: true,
		},
		{
			desc:      "interface gone: error naming the address",
			after:     []Link{newLink("eth1", macEth1, "198.51.100.11/24")},
			wantErr:   "address 192.0.2.200",
			oldClosed: true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			n := newFakeNetwork(eth0)
			a := newAnnouncer(t, n)
			if err := a.SetBalancer("default/web", vip); err != nil {
				t.Fatal(err)
			}
			old := n.arp(t, "eth0")
			old.next(t)
			n.setLinks(tc.after...)
			err := a.Refresh()
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Refresh error = %v, want one containing %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Refresh: %v", err)
			}
			if old.isClosed() != tc.oldClosed {
				t.Errorf("old socket closed = %v, want %v", old.isClosed(), tc.oldClosed)
			}
			if tc.wantOn == "" {
				if !old.isClosed() {
					if got := probe(t, old); len(got) != 0 {
						t.Errorf("unchanged interfaces: %d frames sent, want none", len(got))
					}
				}
				return
			}
			c := n.arp(t, tc.wantOn)
			if c == old {
				t.Fatalf("no new socket on %s", tc.wantOn)
			}
			s := c.next(t)
			if s.p.SenderIP != vip || s.p.TargetIP != vip {
				t.Errorf("first frame on %s = %+v, want an announcement of %s", tc.wantOn, s.p, vip)
			}
			c.in <- request(macClient, clientIP, vip)
			if r := c.next(t); r.p.SenderHardwareAddr.String() != macEth1.String() {
				t.Errorf("answer from %s, want the new interface's %s", r.p.SenderHardwareAddr, macEth1)
			}
			got := n.opened()
			slices.Sort(got)
			if !slices.Contains(got, tc.wantOn+"/arp") {
				t.Errorf("sockets = %v, want one on %s", got, tc.wantOn)
			}
		})
	}
}
