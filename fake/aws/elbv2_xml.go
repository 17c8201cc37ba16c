package aws

import "sort"

// The awsquery result shapes, as the SDK's deserializers read them
// (elasticloadbalancingv2/deserializers.go): lists are <Name><member>...</member></Name>.

type loadBalancersXML struct {
	LoadBalancers []lbXML `xml:"LoadBalancers>member"`
}

type lbXML struct {
	LoadBalancerArn       string   `xml:"LoadBalancerArn"`
	LoadBalancerName      string   `xml:"LoadBalancerName"`
	DNSName               string   `xml:"DNSName"`
	CanonicalHostedZoneID string   `xml:"CanonicalHostedZoneId"`
	Scheme                string   `xml:"Scheme"`
	Type                  string   `xml:"Type"`
	VpcID                 string   `xml:"VpcId"`
	IPAddressType         string   `xml:"IpAddressType"`
	State                 stateXML `xml:"State"`
	AvailabilityZones     []azXML  `xml:"AvailabilityZones>member"`
}

type stateXML struct {
	Code string `xml:"Code"`
}

type azXML struct {
	ZoneName  string         `xml:"ZoneName"`
	SubnetID  string         `xml:"SubnetId"`
	Addresses []lbAddressXML `xml:"LoadBalancerAddresses>member"`
}

type lbAddressXML struct {
	IPAddress    string `xml:"IpAddress,omitempty"`
	AllocationID string `xml:"AllocationId,omitempty"`
}

// lbXML renders lb in the given state (see advanceLoadBalancer).
func (s *Server) lbXML(lb *LoadBalancer, state string) lbXML {
	out := lbXML{
		LoadBalancerArn: lb.ARN, LoadBalancerName: lb.Name, DNSName: lb.DNSName, CanonicalHostedZoneID: "Z26RNL4JYFTOTI",
		Scheme: lb.Scheme, Type: lb.Type, VpcID: lb.VPCID, IPAddressType: lb.IPAddressType, State: stateXML{Code: state},
	}
	for _, id := range lb.Subnets {
		az := azXML{SubnetID: id}
		if sn := s.subnets[id]; sn != nil {
			az.ZoneName = sn.AvailabilityZone
		}
		if a := lb.AllocationIDs[id]; a != "" {
			az.Addresses = []lbAddressXML{{AllocationID: a}}
		}
		out.AvailabilityZones = append(out.AvailabilityZones, az)
	}
	return out
}

type attributesXML struct {
	Attributes []keyValueXML `xml:"Attributes>member"`
}

type keyValueXML struct {
	Key   string `xml:"Key"`
	Value string `xml:"Value"`
}

func attributeList(m map[string]string) []keyValueXML {
	var out []keyValueXML
	for _, k := range sortedKeys(m) {
		out = append(out, keyValueXML{Key: k, Value: m[k]})
	}
	return out
}

func tagList(m map[string]string) []keyValueXML { return attributeList(m) }

type targetGroupsXML struct {
	TargetGroups []tgXML `xml:"TargetGroups>member"`
	NextMarker   string  `xml:"NextMarker,omitempty"`
}

type tgXML struct {
	TargetGroupArn             string   `xml:"TargetGroupArn"`
	TargetGroupName            string   `xml:"TargetGroupName"`
	Protocol                   string   `xml:"Protocol"`
	Port                       int32    `xml:"Port"`
	VpcID                      string   `xml:"VpcId"`
	TargetType                 string   `xml:"TargetType"`
	HealthCheckEnabled         bool     `xml:"HealthCheckEnabled"`
	HealthCheckProtocol        string   `xml:"HealthCheckProtocol"`
	HealthCheckPort            string   `xml:"HealthCheckPort"`
	HealthCheckPath            string   `xml:"HealthCheckPath,omitempty"`
	HealthCheckIntervalSeconds int32    `xml:"HealthCheckIntervalSeconds"`
	HealthCheckTimeoutSeconds  int32    `xml:"HealthCheckTimeoutSeconds"`
	HealthyThresholdCount      int32    `xml:"HealthyThresholdCount"`
	UnhealthyThresholdCount    int32    `xml:"UnhealthyThresholdCount"`
	LoadBalancerArns           []string `xml:"LoadBalancerArns>member"`
}

func tgToXML(tg *TargetGroup) tgXML {
	arns := append([]string(nil), tg.LoadBalancerARNs...)
	sort.Strings(arns)
	return tgXML{
		TargetGroupArn: tg.ARN, TargetGroupName: tg.Name, Protocol: tg.Protocol, Port: tg.Port, VpcID: tg.VPCID,
		TargetType: tg.TargetType, HealthCheckEnabled: true, HealthCheckProtocol: tg.HealthCheckProtocol,
		HealthCheckPort: tg.HealthCheckPort, HealthCheckPath: tg.HealthCheckPath,
		HealthCheckIntervalSeconds: tg.HealthCheckIntervalSeconds, HealthCheckTimeoutSeconds: tg.HealthCheckTimeoutSeconds,
		HealthyThresholdCount: tg.HealthyThresholdCount, UnhealthyThresholdCount: tg.UnhealthyThresholdCount,
		LoadBalancerArns: arns,
	}
}

type targetHealthXML struct {
	Descriptions []targetHealthDescXML `xml:"TargetHealthDescriptions>member"`
}

type targetHealthDescXML struct {
	Target          targetXML            `xml:"Target"`
	HealthCheckPort string               `xml:"HealthCheckPort"`
	Health          targetHealthStateXML `xml:"TargetHealth"`
}

type targetHealthStateXML struct {
	State       string `xml:"State"`
	Reason      string `xml:"Reason,omitempty"`
	Description string `xml:"Description,omitempty"`
}

type targetXML struct {
	ID   string `xml:"Id"`
	Port int32  `xml:"Port"`
}

type listenersXML struct {
	Listeners  []listenerXML `xml:"Listeners>member"`
	NextMarker string        `xml:"NextMarker,omitempty"`
}

type listenerXML struct {
	ListenerArn     string      `xml:"ListenerArn"`
	LoadBalancerArn string      `xml:"LoadBalancerArn"`
	Port            int32       `xml:"Port"`
	Protocol        string      `xml:"Protocol"`
	DefaultActions  []actionXML `xml:"DefaultActions>member"`
}

type actionXML struct {
	Type           string `xml:"Type"`
	TargetGroupArn string `xml:"TargetGroupArn"`
}

func listenerToXML(l *Listener) listenerXML {
	return listenerXML{
		ListenerArn: l.ARN, LoadBalancerArn: l.LoadBalancerARN, Port: l.Port, Protocol: l.Protocol,
		DefaultActions: []actionXML{{Type: "forward", TargetGroupArn: l.TargetGroupARN}},
	}
}

type tagDescriptionsXML struct {
	Descriptions []tagDescriptionXML `xml:"TagDescriptions>member"`
}

type tagDescriptionXML struct {
	ResourceARN string        `xml:"ResourceArn"`
	Tags        []keyValueXML `xml:"Tags>member"`
}
