package layer2

import "github.com/prometheus/client_golang/prometheus"

// metrics are the announcer's Prometheus series. Labels: interface and
// protocol ("arp" or "ndp").
type metrics struct {
	requests   *prometheus.CounterVec
	responses  *prometheus.CounterVec
	gratuitous *prometheus.CounterVec
	announced  *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	labels := []string{"interface", "protocol"}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "extlb", Subsystem: "speaker",
			Name: "layer2_requests_received_total",
			Help: "ARP requests and neighbor solicitations received for an address this node announces.",
		}, labels),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "extlb", Subsystem: "speaker",
			Name: "layer2_responses_sent_total",
			Help: "ARP replies and solicited neighbor advertisements sent.",
		}, labels),
		gratuitous: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "extlb", Subsystem: "speaker",
			Name: "layer2_gratuitous_sent_total",
			Help: "Gratuitous ARP announcements and unsolicited neighbor advertisements sent.",
		}, labels),
		announced: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "extlb", Subsystem: "speaker",
			Name: "layer2_announced_addresses",
			Help: "Addresses this node currently announces.",
		}, labels),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.requests, m.responses, m.gratuitous, m.announced} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
