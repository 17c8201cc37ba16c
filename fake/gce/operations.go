package gce

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"cloud.google.com/go/compute/apiv1/computepb"
	"google.golang.org/protobuf/proto"
)

// apiError is an error the fake answers with, synchronously as an HTTP error
// or, when inOperation, as the error of a DONE operation.
type apiError struct {
	code        int
	reason      string
	message     string
	inOperation bool
}

func notFound(rel string) *apiError {
	return &apiError{code: http.StatusNotFound, reason: "notFound", message: fmt.Sprintf("The resource '%s' was not found", rel)}
}

func alreadyExists(rel string) *apiError {
	return &apiError{code: http.StatusConflict, reason: "alreadyExists", message: fmt.Sprintf("The resource '%s' already exists", rel)}
}

func invalid(format string, args ...any) *apiError {
	return &apiError{code: http.StatusBadRequest, reason: "invalid", message: fmt.Sprintf(format, args...)}
}

func inUse(rel, user string) *apiError {
	return &apiError{code: http.StatusBadRequest, reason: "resourceInUseByAnotherResource",
		message: fmt.Sprintf("The resource '%s' is already being used by '%s'", rel, user)}
}

// operation is a long-running operation: RUNNING until polled enough.
type operation struct {
	pb      *computepb.Operation
	polls   int
	failure *apiError
}

// accept runs a mutation and answers with its operation. scope is
// "global" or "regions/{r}"; target is the path of the resource below the
// project. apply changes the state, or returns an error: a synchronous one
// is sent as the HTTP answer and nothing changes; one marked inOperation
// becomes the operation's error. Callers hold s.mu.
func (s *Server) accept(w http.ResponseWriter, r *http.Request, scope, opType, target string, fault *Fault, apply func() *apiError) {
	requestID := r.URL.Query().Get("requestId")
	var failure *apiError
	if fault != nil && fault.InOperation {
		failure = &apiError{code: fault.Status, reason: faultReason(fault), message: "injected operation fault for " + target, inOperation: true}
	} else if err := apply(); err != nil {
		if !err.inOperation {
			writeError(w, err.code, err.reason, err.message)
			return
		}
		failure = err
	}
	id := s.id()
	name := fmt.Sprintf("operation-%d-%x", id, time.Now().UnixNano()&0xffffff)
	now := time.Now().Format(time.RFC3339)
	pb := &computepb.Operation{
		Kind:          proto.String("compute#operation"),
		Id:            proto.Uint64(id),
		Name:          proto.String(name),
		OperationType: proto.String(opType),
		TargetLink:    proto.String(s.link(target)),
		TargetId:      proto.Uint64(id + 1),
		Status:        computepb.Operation_RUNNING.Enum(),
		Progress:      proto.Int32(0),
		InsertTime:    proto.String(now),
		StartTime:     proto.String(now),
		User:          proto.String("fake@" + s.project + ".iam.gserviceaccount.com"),
		SelfLink:      proto.String(s.link(scope + "/operations/" + name)),
	}
	if strings.HasPrefix(scope, "regions/") {
		pb.Region = proto.String(s.link(scope))
	}
	key := scope + "/operations/" + name
	s.ops[key] = &operation{pb: pb, polls: s.opPolls, failure: failure}
	if requestID != "" {
		s.requestIDs[requestID] = key
	}
	writeProto(w, pb)
}

// getOperation answers an operation get (wait=false) or wait (wait=true).
// Callers hold s.mu.
func (s *Server) getOperation(w http.ResponseWriter, key string, wait bool) {
	op, ok := s.ops[key]
	if !ok {
		e := notFound("projects/" + s.project + "/" + key)
		writeError(w, e.code, e.reason, e.message)
		return
	}
	if op.pb.GetStatus() != computepb.Operation_DONE {
		op.polls--
		if wait || op.polls <= 0 {
			s.finish(op)
		}
	}
	writeProto(w, op.pb)
}

func (s *Server) finish(op *operation) {
	op.pb.Status = computepb.Operation_DONE.Enum()
	op.pb.Progress = proto.Int32(100)
	op.pb.EndTime = proto.String(time.Now().Format(time.RFC3339))
	if f := op.failure; f != nil {
		code := strings.ToUpper(f.reason)
		if f.reason == "quotaExceeded" {
			code = "QUOTA_EXCEEDED"
		}
		op.pb.Error = &computepb.Error{Errors: []*computepb.Errors{{Code: proto.String(code), Message: proto.String(f.message)}}}
		op.pb.HttpErrorStatusCode = proto.Int32(int32(f.code))
		op.pb.HttpErrorMessage = proto.String(strings.ToUpper(strings.ReplaceAll(http.StatusText(f.code), " ", "_")))
	}
}
