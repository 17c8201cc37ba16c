package netns

import (
	"github.com/extlb/extlb/providers/metal/layer2"
)

// Layer2Network returns a layer2.Network that lists the interfaces and opens
// the raw sockets inside h's namespace, so an announcer running in the test
// process speaks on h's links.
func (h *Host) Layer2Network() layer2.Network {
	return hostNetwork{h: h}
}

type hostNetwork struct {
	h *Host
}

func (n hostNetwork) Links() ([]layer2.Link, error) {
	var links []layer2.Link
	err := n.h.Do(func() error {
		var err error
		links, err = layer2.SystemNetwork{}.Links()
		return err
	})
	return links, err
}

func (n hostNetwork) ListenARP(link layer2.Link) (layer2.ARPConn, error) {
	var c layer2.ARPConn
	err := n.h.Do(func() error {
		var err error
		c, err = layer2.SystemNetwork{}.ListenARP(link)
		return err
	})
	return c, err
}

func (n hostNetwork) ListenNDP(link layer2.Link) (layer2.NDPConn, error) {
	var c layer2.NDPConn
	err := n.h.Do(func() error {
		var err error
		c, err = layer2.SystemNetwork{}.ListenNDP(link)
		return err
	})
	return c, err
}
