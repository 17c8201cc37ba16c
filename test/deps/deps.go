//go:build tools

// Package deps pins the modules that packages under construction will import,
// so that parallel work does not edit go.mod at the same time. Removed once
// every module is imported by real code.
package deps

import (
	_ "cloud.google.com/go/compute/apiv1"
	_ "github.com/aws/aws-sdk-go-v2/aws"
	_ "github.com/aws/aws-sdk-go-v2/config"
	_ "github.com/aws/aws-sdk-go-v2/service/ec2"
	_ "github.com/aws/aws-sdk-go-v2/service/elasticloadbalancingv2"
	_ "github.com/hashicorp/go-retryablehttp"
	_ "github.com/hashicorp/memberlist"
	_ "github.com/mdlayher/arp"
	_ "github.com/mdlayher/ndp"
	_ "github.com/mdlayher/packet"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/spf13/cobra"
	_ "github.com/spf13/pflag"
	_ "github.com/vishvananda/netlink"
	_ "google.golang.org/api/option"
	_ "k8s.io/api/core/v1"
	_ "k8s.io/apimachinery/pkg/apis/meta/v1"
	_ "k8s.io/client-go/kubernetes"
	_ "k8s.io/cloud-provider"
	_ "k8s.io/cloud-provider/controllers/service"
	_ "k8s.io/component-base/logs"
	_ "k8s.io/klog/v2"
)
