package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

// fieldManager is the server-side-apply field manager of everything the
// demo applies.
const fieldManager = "extlb-demo"

// renderKustomization builds the kustomization in dir as `kubectl apply -k`
// would. flag names the command-line flag dir came from, for errors.
func renderKustomization(flag, dir string) ([]*unstructured.Unstructured, error) {
	info, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s %s: no such directory (run from the repository's top directory, or pass %s)", flag, dir, flag)
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w", flag, dir, err)
	case !info.IsDir():
		return nil, fmt.Errorf("%s %s: not a directory", flag, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "kustomization.yaml")); err != nil {
		return nil, fmt.Errorf("%s %s: no kustomization.yaml listing the manifests: %w", flag, dir, err)
	}
	res, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, dir, err)
	}
	var objs []*unstructured.Unstructured
	for _, r := range res.Resources() {
		m, err := r.Map()
		if err != nil {
			return nil, fmt.Errorf("%s %s: %s: %w", flag, dir, r.CurId(), err)
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
	if len(objs) == 0 {
		return nil, fmt.Errorf("%s %s: the kustomization renders no objects", flag, dir)
	}
	return objs, nil
}

// applier server-side-applies objects of any kind.
type applier struct {
	mapper *restmapper.DeferredDiscoveryRESTMapper
	client dynamic.Interface
}

func newApplier(cfg *rest.Config) (*applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("discovery client: %w", err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("dynamic client: %w", err)
	}
	return &applier{mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)), client: dyn}, nil
}

// apply applies objs in order (Namespaces first is the caller's business).
func (a *applier) apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	force := true
	for _, obj := range objs {
		gvk := obj.GroupVersionKind()
		mapping, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
		}
		data, err := obj.MarshalJSON()
		if err != nil {
			return fmt.Errorf("%s %s: %w", gvk.Kind, obj.GetName(), err)
		}
		var ri dynamic.ResourceInterface = a.client.Resource(mapping.Resource)
		if obj.GetNamespace() != "" {
			ri = a.client.Resource(mapping.Resource).Namespace(obj.GetNamespace())
		}
		if _, err := ri.Patch(ctx, obj.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: fieldManager, Force: &force}); err != nil {
			return fmt.Errorf("applying %s %s: %w", gvk.Kind, objectKey(obj), err)
		}
	}
	return nil
}

func objectKey(obj *unstructured.Unstructured) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

// namespacesFirst returns objs with Namespaces moved to the front.
func namespacesFirst(objs []*unstructured.Unstructured) []*unstructured.Unstructured {
	var ns, rest []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == "Namespace" {
			ns = append(ns, o)
		} else {
			rest = append(rest, o)
		}
	}
	return append(ns, rest...)
}
