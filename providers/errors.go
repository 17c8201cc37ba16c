package providers

import (
	"errors"
	"fmt"
)

// InputError says that a Service cannot be served as written: an invalid
// annotation, an unsupported protocol, an invalid source range, a port
// conflict. Field names what is wrong, in the form a user would look for it
// ("metadata.annotations[service.beta.kubernetes.io/aws-load-balancer-internal]",
// "spec.ports[1].protocol"). Retrying without a change to the Service cannot
// succeed, so the controller reports it as an Event and waits for the next
// change instead of backing off hot.
//
// A provider returns an InputError before it creates anything in the cloud.
type InputError struct {
	Field  string
	Reason string
}

func (e *InputError) Error() string {
	return fmt.Sprintf("%s: %s", e.Field, e.Reason)
}

// NewInputError returns an InputError for field with a formatted reason.
func NewInputError(field, format string, args ...any) *InputError {
	return &InputError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// IsInputError reports whether err wraps an *InputError, and returns it.
func IsInputError(err error) (*InputError, bool) {
	var ie *InputError
	if errors.As(err, &ie) {
		return ie, true
	}
	return nil, false
}
