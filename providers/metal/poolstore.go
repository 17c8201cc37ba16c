package metal

import (
	"context"
	"fmt"
	"sort"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"
)

// poolStore is the provider's view of the IPPool objects: a synced cache and
// a status writer. The dynamic-client implementation below is the real one.
type poolStore interface {
	// HasSynced reports whether List reflects the API server.
	HasSynced() bool
	// List returns every IPPool, sorted by creation time, then name.
	List() ([]*IPPool, error)
	// UpdateStatus replaces the status of the named pool.
	UpdateStatus(ctx context.Context, name string, status IPPoolStatus) error
}

// dynamicPoolStore reads IPPools through a dynamic informer and writes their
// status through the dynamic client.
type dynamicPoolStore struct {
	client   dynamic.NamespaceableResourceInterface
	informer cache.SharedIndexInformer
}

var _ poolStore = (*dynamicPoolStore)(nil)

// newDynamicPoolStore returns a store and the informer factory it uses; the
// caller calls onChange's registration and starts the factory.
func newDynamicPoolStore(client dynamic.Interface, resync time.Duration, onChange func()) (*dynamicPoolStore, dynamicinformer.DynamicSharedInformerFactory, error) {
	factory := dynamicinformer.NewDynamicSharedInformerFactory(client, resync)
	informer := factory.ForResource(IPPoolGVR).Informer()
	_, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { onChange() },
		UpdateFunc: func(any, any) { onChange() },
		DeleteFunc: func(any) { onChange() },
	})
	if err != nil {
		return nil, nil, fmt.Errorf("watching IPPools: %w", err)
	}
	return &dynamicPoolStore{client: client.Resource(IPPoolGVR), informer: informer}, factory, nil
}

func (s *dynamicPoolStore) HasSynced() bool { return s.informer.HasSynced() }

func (s *dynamicPoolStore) List() ([]*IPPool, error) {
	objs := s.informer.GetStore().List()
	pools := make([]*IPPool, 0, len(objs))
	for _, o := range objs {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			return nil, fmt.Errorf("IPPool cache holds a %T", o)
		}
		p, err := ipPoolFromUnstructured(u)
		if err != nil {
			return nil, err
		}
		pools = append(pools, p)
	}
	sortPools(pools)
	return pools, nil
}

func (s *dynamicPoolStore) UpdateStatus(ctx context.Context, name string, status IPPoolStatus) error {
	o, exists, err := s.informer.GetStore().GetByKey(name)
	if err != nil || !exists {
		return fmt.Errorf("updating status of IPPool %q: not in the cache", name)
	}
	u := o.(*unstructured.Unstructured).DeepCopy()
	st, err := statusToUnstructured(status)
	if err != nil {
		return fmt.Errorf("updating status of IPPool %q: %w", name, err)
	}
	u.Object["status"] = st
	if _, err := s.client.UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating status of IPPool %q: %w", name, err)
	}
	return nil
}

// sortPools orders pools oldest first, then by name: when two pools
// overlap, the older one is used.
func sortPools(pools []*IPPool) {
	sort.Slice(pools, func(i, j int) bool {
		ti, tj := pools[i].CreationTimestamp, pools[j].CreationTimestamp
		if !ti.Equal(&tj) {
			return ti.Before(&tj)
		}
		return pools[i].Name < pools[j].Name
	})
}
