// Package api holds the wire types of the fake cloud's HTTP API (version v1),
// their strict JSON decoding and their validation. The server (fake/cloud)
// and the client (providers/fake) share it.
//
// Routes, all JSON:
//
//	GET    /v1/loadbalancers          list (ListResponse)
//	GET    /v1/loadbalancers/{name}   get one (LoadBalancer)
//	PUT    /v1/loadbalancers/{name}   create (201) or update (200); body: LoadBalancer with Spec
//	DELETE /v1/loadbalancers/{name}   delete (204; 404 when absent)
//	GET    /v1/faults                 current fault injection (Faults)
//	PUT    /v1/faults                 replace fault injection (Faults)
//	GET    /metrics                   Prometheus text
//	GET    /healthz                   liveness, never faulted, no token
//
// Errors are an Error body with the HTTP status.
package api

import "time"

// Protocols a port may carry.
const (
	ProtocolTCP = "TCP"
	ProtocolUDP = "UDP"
)

// Health check kinds.
const (
	// HealthCheckTCP connects to the backend's address on Port.
	HealthCheckTCP = "TCP"
	// HealthCheckHTTP sends GET Path to the backend's address on Port and
	// wants a 200.
	HealthCheckHTTP = "HTTP"
	// HealthCheckNone treats every backend as healthy.
	HealthCheckNone = "None"
)

// SessionAffinityClientIP pins each client address to one backend.
const SessionAffinityClientIP = "ClientIP"

// LoadBalancer is the object the API creates, reads and lists. Clients send
// only Spec (Name comes from the path); the server fills Name and Status.
type LoadBalancer struct {
	// Name is a DNS label, unique in the fake cloud.
	Name string `json:"name,omitempty"`
	// Spec is what the client asked for.
	Spec LoadBalancerSpec `json:"spec"`
	// Status is what the fake cloud made of it.
	Status LoadBalancerStatus `json:"status,omitzero"`
}

// LoadBalancerSpec is what a client asks for.
type LoadBalancerSpec struct {
	// Ports the load balancer listens on, each forwarded to BackendPort on
	// every healthy backend. At least one.
	Ports []Port `json:"ports"`
	// Backends receive the traffic. May be empty (connections are refused).
	Backends []Backend `json:"backends,omitempty"`
	// HealthCheck decides which backends are healthy. Absent: None.
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
	// SourceRanges, when not empty, are the only client networks (CIDR)
	// allowed; other clients' connections are reset and packets dropped.
	SourceRanges []string `json:"sourceRanges,omitempty"`
	// SessionAffinity pins clients to a backend when set.
	SessionAffinity *SessionAffinity `json:"sessionAffinity,omitempty"`
	// Tags are free-form labels the client uses to recognise its objects.
	Tags map[string]string `json:"tags,omitempty"`
}

// Port is one listener of a load balancer.
type Port struct {
	// Name is optional and only informative.
	Name string `json:"name,omitempty"`
	// Protocol is TCP or UDP. The same Port number may appear twice with
	// different protocols.
	Protocol string `json:"protocol"`
	// Port is the port on the load balancer's address (1-65535).
	Port int `json:"port"`
	// BackendPort is the port traffic is sent to on each backend (the
	// Service's nodePort).
	BackendPort int `json:"backendPort"`
}

// Backend is one target of a load balancer (a node).
type Backend struct {
	// Name identifies the backend (the node name). Unique per load balancer.
	Name string `json:"name"`
	// Address is the backend's IP address.
	Address string `json:"address"`
}

// HealthCheck describes how the load balancer probes backends.
type HealthCheck struct {
	// Type is TCP, HTTP or None.
	Type string `json:"type"`
	// Port is the backend port probed. Required for TCP and HTTP.
	Port int `json:"port,omitempty"`
	// Path is the HTTP path (default /healthz).
	Path string `json:"path,omitempty"`
	// IntervalMillis between probes of one backend (default 2000).
	IntervalMillis int `json:"intervalMillis,omitempty"`
	// TimeoutMillis of one probe (default 1000, at most IntervalMillis).
	TimeoutMillis int `json:"timeoutMillis,omitempty"`
	// HealthyThreshold is how many consecutive successes make an unhealthy
	// backend healthy (default 2).
	HealthyThreshold int `json:"healthyThreshold,omitempty"`
	// UnhealthyThreshold is how many consecutive failures make a healthy
	// backend unhealthy (default 2).
	UnhealthyThreshold int `json:"unhealthyThreshold,omitempty"`
}

// SessionAffinity pins each client IP to one backend for TimeoutSeconds
// after its last connection or packet.
type SessionAffinity struct {
	// Type is ClientIP.
	Type string `json:"type"`
	// TimeoutSeconds is 1-86400 (default 10800, like Kubernetes).
	TimeoutSeconds int `json:"timeoutSeconds,omitempty"`
}

// LoadBalancerStatus is filled by the server.
type LoadBalancerStatus struct {
	// Address is the virtual IP the load balancer listens on.
	Address string `json:"address,omitempty"`
	// Backends reports each backend's health.
	Backends []BackendStatus `json:"backends,omitempty"`
}

// BackendStatus is the health of one backend.
type BackendStatus struct {
	// Name is the backend's name from the spec.
	Name string `json:"name"`
	// Healthy is true when the backend receives new traffic.
	Healthy bool `json:"healthy"`
}

// ListResponse is the body of GET /v1/loadbalancers.
type ListResponse struct {
	// Items are sorted by name.
	Items []LoadBalancer `json:"items"`
}

// Error is the body of every error response.
type Error struct {
	// Code is the HTTP status.
	Code int `json:"code"`
	// Message is the whole error, "<field>: <reason>" for validation errors.
	Message string `json:"message"`
	// Field names the request field at fault, for 400s ("spec.ports[1].protocol").
	Field string `json:"field,omitempty"`
	// Reason is Message without the field.
	Reason string `json:"reason,omitempty"`
}

// Faults configures the fault injection on the load-balancer routes. Rates
// are probabilities in [0, 1] applied per request, in this order: outage,
// throttle, error; Latency is added before any of them.
type Faults struct {
	// ErrorRate is the share of requests answered 500.
	ErrorRate float64 `json:"errorRate,omitempty"`
	// ThrottleRate is the share of requests answered 429 with Retry-After.
	ThrottleRate float64 `json:"throttleRate,omitempty"`
	// RetryAfterSeconds is sent with 429s (default 1).
	RetryAfterSeconds int `json:"retryAfterSeconds,omitempty"`
	// LatencyMillis is added to every request.
	LatencyMillis int `json:"latencyMillis,omitempty"`
	// Outages are windows during which every request gets 503 with a
	// Retry-After until the window ends.
	Outages []Outage `json:"outages,omitempty"`
}

// Outage is a window of unavailability. When set through PUT /v1/faults,
// StartAfterMillis counts from the moment of the request; the server answers
// with Start filled in.
type Outage struct {
	// StartAfterMillis delays the window's start (from the request, or from
	// the server's start for flags).
	StartAfterMillis int `json:"startAfterMillis,omitempty"`
	// DurationMillis is the window's length.
	DurationMillis int `json:"durationMillis"`
	// Start is the absolute start; the server fills it in.
	Start time.Time `json:"start,omitzero"`
}
