package aws

import (
	"net"
	"net/http"
	"time"
)

// Fault makes the fake answer some calls with an error and/or a delay.
type Fault struct {
	// Action limits the fault to one API action; "" matches every action.
	Action string
	// Code is the error code to answer with ("Throttling",
	// "RequestLimitExceeded", "InternalFailure", "ResourceInUse", ...); ""
	// (without Drop) injects only Latency and lets the call proceed.
	Code string
	// Status is the HTTP status; 0 means 400 for most codes and 500 for
	// "InternalFailure", "InternalError" and "ServiceUnavailable" (503).
	Status int
	// Message is the error message; "" means a generic one.
	Message string
	// Count is how many calls the fault hits before it expires; 0 means it
	// never expires.
	Count int
	// Rate is the probability that a matching call is hit; 0 means 1. The
	// fake's random source is seeded, so a test's sequence is reproducible.
	Rate float64
	// Latency delays every hit call by this much.
	Latency time.Duration
	// AfterApply lets the call run and change the state as usual, and only
	// then answers with the fault (the error Code, or a dropped connection
	// with Drop) instead of the result: the write happened but the client
	// never learns it, as when a response is lost. A retry then meets the
	// changed state. With neither Code nor Drop it changes nothing.
	AfterApply bool
	// Drop closes the connection with a TCP reset instead of answering: the
	// client sees "connection reset by peer" (the SDK's standard retryer
	// retries it as a connection error, for writes too). Without AfterApply
	// the call is not applied (the request was lost on its way).
	Drop bool
}

type faultState struct {
	Fault
	hits int
}

func (f *faultState) status() int {
	if f.Status != 0 {
		return f.Status
	}
	switch f.Code {
	case "InternalFailure", "InternalError":
		return http.StatusInternalServerError
	case "ServiceUnavailable":
		return http.StatusServiceUnavailable
	}
	return http.StatusBadRequest
}

func (f *faultState) message() string {
	if f.Message != "" {
		return f.Message
	}
	return "injected fault: " + f.Code
}

// InjectFault adds a fault. Faults are checked in the order they were added
// and the first that hits a call applies to it.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &faultState{Fault: f})
}

// ClearFaults removes every fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// FaultHits returns how many calls the faults have hit in total.
func (s *Server) FaultHits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, f := range s.faults {
		n += f.hits
	}
	return n
}

func (s *Server) takeFault(action string) *faultState {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, f := range s.faults {
		if f.Action != "" && f.Action != action {
			continue
		}
		if f.Count > 0 && f.hits >= f.Count {
			continue
		}
		if f.Rate > 0 && s.rng.Float64() >= f.Rate {
			continue
		}
		f.hits++
		return f
	}
	return nil
}

// dropConnection closes the request's connection without an answer, with a
// reset (SO_LINGER 0) so that the client's read fails at once.
func dropConnection(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler) // net/http closes the connection unanswered
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
