// Package aws is a fake of the two AWS APIs the aws provider uses: Elastic
// Load Balancing v2 (the awsquery protocol) and EC2 (the ec2query protocol).
// It is an http.Handler that keeps its state in memory, so tests point the
// real aws-sdk-go-v2 clients at an httptest.Server running it.
//
// It implements exactly the calls the provider makes, with the checks AWS
// applies that matter to a caller (idempotent creates and duplicate names,
// target groups in use, one target group per load balancer, unknown
// resources by type), the states a new NLB and a new target go through
// (lifecycle.go), a call log that tells reads from writes, and fault
// injection (throttling, server errors, latency, dropped connections,
// answers lost after the write) by action and count or rate.
package aws

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// API versions the two services speak; requests are routed by them.
const (
	ELBv2Version = "2015-12-01"
	EC2Version   = "2016-11-15"
)

// Service names used in the call log.
const (
	ServiceELBv2 = "elasticloadbalancing"
	ServiceEC2   = "ec2"
)

// Call is one request the fake answered.
type Call struct {
	// Service is ServiceELBv2 or ServiceEC2.
	Service string
	// Action is the API action, e.g. "DescribeLoadBalancers".
	Action string
	// Write is false for Describe* actions and true for everything else.
	Write bool
	// ErrorCode is the error the fake returned, or "".
	ErrorCode string
	// AccessKeyID is the access key the request was signed with.
	AccessKeyID string
	// Dropped is true when a fault closed the connection instead of
	// answering (see Fault.Drop); ErrorCode is then "".
	Dropped bool
	// Applied is true when a fault with AfterApply hit the call: it ran
	// (and, unless it failed, changed the state) before the fault's answer.
	Applied bool
}

// IAMAction is the action as an IAM policy names it ("ec2:DescribeSubnets").
func (c Call) IAMAction() string { return c.Service + ":" + c.Action }

// Server is the fake. Create it with New; it is safe for concurrent use.
type Server struct {
	mu      sync.Mutex
	region  string
	account string
	seq     int
	rng     *rand.Rand

	loadBalancers map[string]*LoadBalancer // by ARN
	targetGroups  map[string]*TargetGroup  // by ARN
	listeners     map[string]*Listener     // by ARN
	subnets       map[string]*Subnet
	instances     map[string]*Instance
	groups        map[string]*SecurityGroup
	rules         map[string]*SecurityGroupRule

	// See lifecycle.go.
	provisioningDescribes  int
	initialHealthDescribes int
	provisioning           map[string]int  // load balancer ARN -> describes left in provisioning
	initialChecks          map[string]int  // targetKey -> describes left in initial
	unhealthy              map[string]bool // instance IDs that fail health checks

	calls  []Call
	seen   map[string]bool // IAM actions ever called; ResetCalls keeps them
	faults []*faultState
	// pageSize limits the items of paginated Describe answers; 0 means all.
	pageSize int
}

// SetPageSize makes the paginated Describe calls (DescribeTargetGroups,
// DescribeListeners, DescribeInstances, DescribeSubnets,
// DescribeSecurityGroupRules) answer at most n items per page, with a
// NextMarker/NextToken for the rest; 0 turns paging off.
func (s *Server) SetPageSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// page returns the bounds of the page starting at token (an item index)
// among total items, and the token of the next page ("" at the end).
func (s *Server) page(total int, token string) (start, end int, next string, err *apiError) {
	if token != "" {
		n, perr := strconv.Atoi(token)
		if perr != nil || n < 0 || n > total {
			return 0, 0, "", errorf(400, "InvalidPaginationToken", "invalid pagination token %q", token)
		}
		start = n
	}
	end = total
	if s.pageSize > 0 && start+s.pageSize < total {
		end = start + s.pageSize
		next = strconv.Itoa(end)
	}
	return start, end, next, nil
}

// New returns an empty fake for region. Seed it with AddSubnet, AddInstance
// and AddSecurityGroup.
func New(region string) *Server {
	return &Server{
		region:        region,
		account:       "123456789012",
		rng:           rand.New(rand.NewPCG(1, 2)),
		loadBalancers: map[string]*LoadBalancer{},
		targetGroups:  map[string]*TargetGroup{},
		listeners:     map[string]*Listener{},
		subnets:       map[string]*Subnet{},
		instances:     map[string]*Instance{},
		groups:        map[string]*SecurityGroup{},
		rules:         map[string]*SecurityGroupRule{},
		seen:          map[string]bool{},

		provisioningDescribes:  1,
		initialHealthDescribes: 1,
		provisioning:           map[string]int{},
		initialChecks:          map[string]int{},
		unhealthy:              map[string]bool{},
	}
}

// Calls returns a copy of the call log.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// ResetCalls empties the call log.
func (s *Server) ResetCalls() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

// CallCounts returns how many read and write calls the log holds.
func (s *Server) CallCounts() (reads, writes int) {
	for _, c := range s.Calls() {
		if c.Write {
			writes++
		} else {
			reads++
		}
	}
	return reads, writes
}

// ServeHTTP answers one awsquery or ec2query request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	form, err := url.ParseQuery(string(body))
	if err != nil || r.Method != http.MethodPost {
		http.Error(w, "expected a form-encoded POST", http.StatusBadRequest)
		return
	}
	action, version := form.Get("Action"), form.Get("Version")
	var service string
	switch version {
	case ELBv2Version:
		service = ServiceELBv2
	case EC2Version:
		service = ServiceEC2
	default:
		http.Error(w, fmt.Sprintf("unknown API version %q", version), http.StatusBadRequest)
		return
	}
	call := Call{Service: service, Action: action, Write: !strings.HasPrefix(action, "Describe")}
	q := query(form)

	// The fake does not verify signatures, but it insists on a SigV4
	// Authorization header scoped to its region and the called service, as
	// AWS does before anything else.
	key, aerr := s.checkSignature(r.Header.Get("Authorization"), service)
	call.AccessKeyID = key
	if aerr != nil {
		call.ErrorCode = aerr.code
		s.log(call)
		s.writeError(w, service, aerr)
		return
	}

	f := s.takeFault(action)
	if f != nil {
		if f.Latency > 0 {
			select {
			case <-time.After(f.Latency):
			case <-r.Context().Done():
			}
		}
		if !f.AfterApply && (f.Drop || f.Code != "") {
			s.answerFault(w, service, call, f)
			return
		}
	}

	s.mu.Lock()
	var result any
	if service == ServiceELBv2 {
		result, aerr = s.elbv2(action, q)
	} else {
		result, aerr = s.ec2(action, q)
	}
	s.mu.Unlock()
	if f != nil && f.AfterApply && (f.Drop || f.Code != "") {
		call.Applied = true
		s.answerFault(w, service, call, f)
		return
	}
	if aerr != nil {
		call.ErrorCode = aerr.code
	}
	s.log(call)
	if aerr != nil {
		s.writeError(w, service, aerr)
		return
	}
	if service == ServiceELBv2 {
		s.writeELBv2(w, action, result)
	} else {
		s.writeEC2(w, action, result)
	}
}

// answerFault logs call and answers it with the fault: its error, or no
// answer at all.
func (s *Server) answerFault(w http.ResponseWriter, service string, call Call, f *faultState) {
	if f.Drop {
		call.Dropped = true
		s.log(call)
		dropConnection(w)
		return
	}
	call.ErrorCode = f.Code
	s.log(call)
	s.writeError(w, service, &apiError{status: f.status(), code: f.Code, message: f.message()})
}

// checkSignature returns the access key ID of a SigV4 Authorization header
// ("AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/ec2/aws4_request,
// SignedHeaders=..., Signature=...") whose scope names the fake's region and
// service.
func (s *Server) checkSignature(auth, service string) (string, *apiError) {
	code := "MissingAuthenticationToken"
	if service == ServiceEC2 {
		code = "AuthFailure"
	}
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 Credential=")
	if !ok {
		return "", errorf(403, code, "the request is not signed with AWS Signature Version 4")
	}
	credential, _, _ := strings.Cut(rest, ",")
	parts := strings.Split(credential, "/")
	if len(parts) != 5 || parts[0] == "" || parts[4] != "aws4_request" {
		return "", errorf(403, "IncompleteSignature", "malformed credential scope %q", credential)
	}
	if parts[2] != s.region || parts[3] != service {
		return parts[0], errorf(403, "SignatureDoesNotMatch", "credential scope %s/%s, want %s/%s", parts[2], parts[3], s.region, service)
	}
	return parts[0], nil
}

func (s *Server) log(c Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	s.seen[c.IAMAction()] = true
}

// ActionsSeen returns every action called since New, as IAM names it
// ("elasticloadbalancing:CreateListener"), sorted; ResetCalls does not
// forget them. Tests use it to check a documented IAM policy.
func (s *Server) ActionsSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sortedKeys(s.seen)
}

// nextID returns a fresh hex id of n digits (unique within the server).
func (s *Server) nextID(n int) string {
	s.seq++
	return fmt.Sprintf("%0*x", n, s.seq)
}

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("00000000-0000-4000-8000-%012x", s.rng.Uint64()&0xffffffffffff)
}

// apiError is an error answer in either protocol.
type apiError struct {
	status  int
	code    string
	message string
}

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func copyTags(in map[string]string) map[string]string {
	out := make(map[string]string, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}
