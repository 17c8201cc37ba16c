package controller

// Event reasons. The load-balancer ones are the upstream service
// controller's, so existing dashboards and alerts keep working.
const (
	EventEnsuringLoadBalancer     = "EnsuringLoadBalancer"
	EventEnsuredLoadBalancer      = "EnsuredLoadBalancer"
	EventSyncLoadBalancerFailed   = "SyncLoadBalancerFailed"
	EventUpdatedLoadBalancer      = "UpdatedLoadBalancer"
	EventUpdateLoadBalancerFailed = "UpdateLoadBalancerFailed"
	EventDeletingLoadBalancer     = "DeletingLoadBalancer"
	EventDeletedLoadBalancer      = "DeletedLoadBalancer"
	EventDeleteLoadBalancerFailed = "DeleteLoadBalancerFailed"
	// EventUnAvailableLoadBalancer: no node is eligible as a backend.
	EventUnAvailableLoadBalancer = "UnAvailableLoadBalancer"

	// EventAllocatedNodePorts: the controller wrote node ports it picked.
	EventAllocatedNodePorts = "AllocatedNodePorts"
	// EventNodePortsMissing: the provider needs node ports and the Service
	// has none, and the controller may not (or could not) pick them.
	EventNodePortsMissing = "NodePortsMissing"
	// EventLoadBalancerImplementedElsewhere: the provider said another
	// component owns this Service's load balancer.
	EventLoadBalancerImplementedElsewhere = "LoadBalancerImplementedElsewhere"
)
