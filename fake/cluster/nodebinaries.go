package cluster

import (
	"context"
	"io"
	"os"
)

// EnvKubeNode names a prebuilt kube-node executable (see NodeBinaries) to
// use instead of building one.
const EnvKubeNode = "EXTLB_KUBE_NODE"

// versionLDFlags stamp the version as release builds do, so that the
// programs report v1.37.2 rather than v0.0.0-master. Keep in step with the
// build modules' go.mod.
const versionLDFlags = "-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"

// nodeComponents are the programs a cluster with real nodes needs besides
// the control plane's API server and etcd, in one multicall executable.
var nodeComponents = []component{{
	name: "kube-node", envVar: EnvKubeNode,
	note:    "kubelet, kube-proxy, kube-controller-manager and kube-scheduler in one executable; about 5 minutes the first time on 2 cores, less when kube-apiserver was built before",
	ldflags: versionLDFlags,
}}

// NodeBinaries are the executables of the node and controller programs.
type NodeBinaries struct {
	// KubeNode runs kubelet, kube-proxy, kube-controller-manager or
	// kube-scheduler, named by its first argument (kube-node kubelet ...).
	KubeNode string
}

// EnsureNodeBinaries returns the node executables, building them from
// fake/cluster/build/kube-node (k8s.io/kubernetes at the API server's
// version) on first use and caching them under
// $EXTLB_CACHE_DIR/node/<key>, like EnsureBinaries.
func EnsureNodeBinaries(ctx context.Context, progress io.Writer) (NodeBinaries, error) {
	if progress == nil {
		progress = io.Discard
	}
	b := builder{set: nodeComponents, progress: progress, build: goBuild}
	if os.Getenv(EnvKubeNode) == "" {
		srcRoot, err := buildSourceDir()
		if err != nil {
			return NodeBinaries{}, err
		}
		cacheDir, err := cacheDirOf("node", nodeComponents)
		if err != nil {
			return NodeBinaries{}, err
		}
		b.srcRoot, b.cacheDir = srcRoot, cacheDir
	}
	paths, err := b.ensurePaths(ctx)
	if err != nil {
		return NodeBinaries{}, err
	}
	return NodeBinaries{KubeNode: paths["kube-node"]}, nil
}
