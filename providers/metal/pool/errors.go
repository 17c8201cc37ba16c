package pool

// Reason classifies why the allocator could not serve a Request.
type Reason string

// The reasons an allocation fails.
const (
	// ReasonInvalid: the Request contradicts itself (a requested address of
	// a family the Service does not have, two addresses of one family).
	ReasonInvalid Reason = "Invalid"
	// ReasonUnknownPool: the requested pool does not exist.
	ReasonUnknownPool Reason = "UnknownPool"
	// ReasonNotSelected: the pool exists but its selectors exclude the
	// Service, or no pool selects it.
	ReasonNotSelected Reason = "NotSelected"
	// ReasonNotInPool: a requested address lies outside every usable pool.
	ReasonNotInPool Reason = "NotInPool"
	// ReasonInUse: a requested address is held by a Service that may not
	// share it.
	ReasonInUse Reason = "InUse"
	// ReasonNoFamily: no pool offers addresses of a family the Service needs.
	ReasonNoFamily Reason = "NoFamily"
	// ReasonExhausted: the pools that may serve the Service have no free
	// address.
	ReasonExhausted Reason = "Exhausted"
)

// Subject says which part of the Service an Error is about.
type Subject string

// The parts of a Service an Error can be about.
const (
	SubjectRequestedIP   Subject = "RequestedIP"
	SubjectPool          Subject = "Pool"
	SubjectSharingKey    Subject = "SharingKey"
	SubjectPort          Subject = "Port"
	SubjectTrafficPolicy Subject = "TrafficPolicy"
	SubjectFamilies      Subject = "Families"
)

// Error is returned by the Allocator when a Request cannot be served.
type Error struct {
	Reason  Reason
	Subject Subject
	// PortIndex is the index in Request.Ports when Subject is SubjectPort.
	PortIndex int
	Msg       string
}

func (e *Error) Error() string { return e.Msg }
