package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/klog/v2"
)

// maxNodePortAttempts bounds how often one sync re-picks node ports after
// the API server refused a choice.
const maxNodePortAttempts = 5

// missingNodePorts returns the indexes of the Service's ports without a
// node port.
func missingNodePorts(svc *v1.Service) []int {
	var idx []int
	for i, p := range svc.Spec.Ports {
		if p.NodePort == 0 {
			idx = append(idx, i)
		}
	}
	return idx
}

// ensureNodePorts gives every port of svc a node port, for providers whose
// load balancers target node ports. It returns the updated Service, or nil
// and no error when there is nothing to do until the Service changes.
func (c *Controller) ensureNodePorts(ctx context.Context, key string, svc *v1.Service) (*v1.Service, error) {
	logger := klog.FromContext(ctx)
	if !c.cfg.AllocateNodePorts {
		fields := missingFields(svc)
		logger.Error(nil, "Service has ports without a node port and node-port allocation is disabled", "fields", fields)
		c.recorder.Eventf(svc, v1.EventTypeWarning, EventNodePortsMissing,
			"%s: the load balancer sends traffic to node ports and this Service has none; set allocateLoadBalancerNodePorts: true or explicit nodePorts (extlb's node-port allocation is disabled)", strings.Join(fields, ", "))
		return nil, nil
	}
	cur := svc
	for attempt := 1; attempt <= maxNodePortAttempts; attempt++ {
		want := cur.DeepCopy()
		var picked []string
		for _, i := range missingNodePorts(want) {
			p, err := c.allocator.AllocateNext(key)
			if err != nil {
				c.allocator.SetOwner(key, nodePortsOf(cur))
				c.recorder.Eventf(svc, v1.EventTypeWarning, EventNodePortsMissing, "spec.ports[%d].nodePort: %v", i, err)
				return nil, fmt.Errorf("allocating node port for service %s port %d: %w", key, i, err)
			}
			want.Spec.Ports[i].NodePort = int32(p)
			picked = append(picked, fmt.Sprintf("%d/%s→%d", want.Spec.Ports[i].Port, want.Spec.Ports[i].Protocol, p))
		}
		out, err := c.writeNodePorts(ctx, cur, want)
		if err == nil {
			c.allocator.SetOwner(key, nodePortsOf(out))
			c.recorder.Eventf(out, v1.EventTypeNormal, EventAllocatedNodePorts, "Allocated node ports %s: this provider's load balancers can only send traffic to node ports (a provider that reaches endpoints directly leaves allocateLoadBalancerNodePorts: false as it is)", strings.Join(picked, ", "))
			logger.Info("Allocated node ports", "ports", picked)
			return out, nil
		}
		// Give back what we picked before deciding what to do next.
		c.allocator.SetOwner(key, nodePortsOf(cur))
		switch {
		case apierrors.IsConflict(err):
			logger.V(2).Info("Service changed while allocating node ports; retrying", "attempt", attempt)
			cur, err = c.client.CoreV1().Services(cur.Namespace).Get(ctx, cur.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("getting service %s after a conflict: %w", key, err)
			}
			if !c.serves(cur) || cur.DeletionTimestamp != nil || len(missingNodePorts(cur)) == 0 {
				return nil, nil // the informer brings the new state
			}
		case apierrors.IsInvalid(err):
			taken := portsTaken(err, want)
			if len(taken) == 0 {
				return nil, c.failSync(ctx, svc, fmt.Errorf("writing node ports: %w", err))
			}
			logger.V(2).Info("API server says node ports are taken; picking again", "ports", taken, "attempt", attempt)
			for _, p := range taken {
				c.allocator.MarkTaken(p)
			}
		default:
			return nil, fmt.Errorf("writing node ports of service %s: %w", key, err)
		}
	}
	err := fmt.Errorf("could not allocate node ports for service %s after %d attempts", key, maxNodePortAttempts)
	c.recorder.Eventf(svc, v1.EventTypeWarning, EventNodePortsMissing, "%v", err)
	return nil, err
}

func missingFields(svc *v1.Service) []string {
	var fields []string
	for _, i := range missingNodePorts(svc) {
		fields = append(fields, fmt.Sprintf("spec.ports[%d].nodePort", i))
	}
	return fields
}

var nodePortField = regexp.MustCompile(`^spec\.ports\[(\d+)\]\.nodePort$`)

// portsTaken returns the node ports an Invalid error from the API server
// reports as already allocated.
func portsTaken(err error, want *v1.Service) []int {
	var status apierrors.APIStatus
	if !errors.As(err, &status) || status.Status().Details == nil {
		return nil
	}
	var taken []int
	for _, cause := range status.Status().Details.Causes {
		m := nodePortField.FindStringSubmatch(cause.Field)
		if m == nil || !strings.Contains(cause.Message, "already allocated") {
			continue
		}
		i, _ := strconv.Atoi(m[1])
		if i < len(want.Spec.Ports) {
			taken = append(taken, int(want.Spec.Ports[i].NodePort))
		}
	}
	return taken
}

// writeNodePorts writes the node ports of want with a JSON patch that sets
// only those fields, guarded by cur's resourceVersion: a Service changed
// meanwhile is a Conflict, and fields this client does not know (a newer
// API server's) are kept, which a full Update of the cached object would
// drop.
func (c *Controller) writeNodePorts(ctx context.Context, cur, want *v1.Service) (*v1.Service, error) {
	ops := []map[string]any{{"op": "replace", "path": "/metadata/resourceVersion", "value": cur.ResourceVersion}}
	for i := range want.Spec.Ports {
		if cur.Spec.Ports[i].NodePort != want.Spec.Ports[i].NodePort {
			ops = append(ops,
				map[string]any{"op": "test", "path": fmt.Sprintf("/spec/ports/%d/port", i), "value": want.Spec.Ports[i].Port},
				map[string]any{"op": "add", "path": fmt.Sprintf("/spec/ports/%d/nodePort", i), "value": want.Spec.Ports[i].NodePort})
		}
	}
	patch, err := json.Marshal(ops)
	if err != nil {
		return nil, fmt.Errorf("encoding node ports of service %s/%s: %w", cur.Namespace, cur.Name, err)
	}
	out, err := c.client.CoreV1().Services(cur.Namespace).Patch(ctx, cur.Name, types.JSONPatchType, patch, metav1.PatchOptions{})
	c.metrics.observeAPIWrite("patch", "", err)
	return out, err
}
