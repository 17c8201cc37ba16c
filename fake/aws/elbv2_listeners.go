package aws

import (
	"slices"
	"strings"
)

func (s *Server) createListener(q query) (any, *apiError) {
	lb, err := s.lbByARN(q.str("LoadBalancerArn"))
	if err != nil {
		return nil, err
	}
	port, err := q.int32("Port", 0)
	if err != nil {
		return nil, err
	}
	l := &Listener{LoadBalancerARN: lb.ARN, Port: port, Protocol: q.str("Protocol"), Tags: q.elbTags("Tags")}
	tg, err := s.forwardTarget(l, lb, q)
	if err != nil {
		return nil, err
	}
	// AWS: "If you attempt to create multiple listeners with the same
	// settings, each call succeeds": the existing listener on the port is
	// returned when protocol and default action are the same.
	for _, arn := range sortedKeys(s.listeners) {
		if other := s.listeners[arn]; other.LoadBalancerARN == lb.ARN && other.Port == port {
			if other.Protocol == l.Protocol && other.TargetGroupARN == tg.ARN {
				return listenersXML{Listeners: []listenerXML{listenerToXML(other)}}, nil
			}
			return nil, errorf(400, "DuplicateListener", "A listener already exists on this port for this load balancer '%s'", lb.ARN)
		}
	}
	s.attach(l, lb, tg)
	l.ARN = "arn:aws:elasticloadbalancing:" + s.region + ":" + s.account + ":listener/net/" + lb.Name + "/" + s.nextID(16)
	s.listeners[l.ARN] = l
	return listenersXML{Listeners: []listenerXML{listenerToXML(l)}}, nil
}

// forwardTarget validates the forward default action in q for l on lb and
// returns its target group; it changes nothing.
func (s *Server) forwardTarget(l *Listener, lb *LoadBalancer, q query) (*TargetGroup, *apiError) {
	actions := q.elbList("DefaultActions")
	if len(actions) != 1 || q.str(actions[0]+".Type") != "forward" {
		return nil, errorf(400, "ValidationError", "exactly one forward default action is supported")
	}
	tg, err := s.tgByARN(q.str(actions[0] + ".TargetGroupArn"))
	if err != nil {
		return nil, err
	}
	if tg.Protocol != l.Protocol {
		return nil, errorf(400, "IncompatibleProtocols", "listener protocol %s and target group protocol %s differ", l.Protocol, tg.Protocol)
	}
	if tg.VPCID != lb.VPCID {
		return nil, errorf(400, "InvalidConfigurationRequest", "target group and load balancer are in different VPCs")
	}
	if len(tg.LoadBalancerARNs) > 0 && !slices.Contains(tg.LoadBalancerARNs, lb.ARN) {
		return nil, errorf(400, "TargetGroupAssociationLimit", "target group %q is already associated with another load balancer", tg.Name)
	}
	return tg, nil
}

// attach points l at tg and records that lb forwards to tg.
func (s *Server) attach(l *Listener, lb *LoadBalancer, tg *TargetGroup) {
	l.TargetGroupARN = tg.ARN
	if !slices.Contains(tg.LoadBalancerARNs, lb.ARN) {
		tg.LoadBalancerARNs = append(tg.LoadBalancerARNs, lb.ARN)
	}
}

func (s *Server) describeListeners(q query) (any, *apiError) {
	lbARN, arns := q.str("LoadBalancerArn"), q.strings("ListenerArns.member")
	if lbARN != "" {
		if _, err := s.lbByARN(lbARN); err != nil {
			return nil, err
		}
	}
	var out listenersXML
	for _, arn := range sortedKeys(s.listeners) {
		l := s.listeners[arn]
		if (lbARN != "" && l.LoadBalancerARN == lbARN) || slices.Contains(arns, arn) {
			out.Listeners = append(out.Listeners, listenerToXML(l))
		}
	}
	if len(arns) > 0 && len(out.Listeners) < len(arns) {
		return nil, errorf(400, "ListenerNotFound", "one or more listeners not found")
	}
	start, end, next, err := s.page(len(out.Listeners), q.str("Marker"))
	if err != nil {
		return nil, err
	}
	out.Listeners, out.NextMarker = out.Listeners[start:end], next
	return out, nil
}

func (s *Server) modifyListener(q query) (any, *apiError) {
	l, ok := s.listeners[q.str("ListenerArn")]
	if !ok {
		return nil, errorf(400, "ListenerNotFound", "listener %q not found", q.str("ListenerArn"))
	}
	changed := *l
	if p := q.str("Protocol"); p != "" {
		changed.Protocol = p
	}
	if q.has("Port") {
		port, err := q.int32("Port", 0)
		if err != nil {
			return nil, err
		}
		changed.Port = port
	}
	lb := s.loadBalancers[l.LoadBalancerARN]
	if len(q.elbList("DefaultActions")) > 0 {
		tg, err := s.forwardTarget(&changed, lb, q)
		if err != nil {
			return nil, err
		}
		s.attach(&changed, lb, tg)
	} else if tg := s.targetGroups[changed.TargetGroupARN]; tg != nil && tg.Protocol != changed.Protocol {
		return nil, errorf(400, "IncompatibleProtocols", "listener protocol %s and target group protocol %s differ", changed.Protocol, tg.Protocol)
	}
	old := l.TargetGroupARN
	*l = changed
	if old != changed.TargetGroupARN {
		s.detachIfUnused(old, l.LoadBalancerARN)
	}
	return listenersXML{Listeners: []listenerXML{listenerToXML(l)}}, nil
}

func (s *Server) deleteListener(l *Listener) {
	delete(s.listeners, l.ARN)
	s.detachIfUnused(l.TargetGroupARN, l.LoadBalancerARN)
}

// detachIfUnused removes lbARN from the target group's load balancers when
// no listener of that load balancer forwards to it any more.
func (s *Server) detachIfUnused(tgARN, lbARN string) {
	for _, l := range s.listeners {
		if l.LoadBalancerARN == lbARN && l.TargetGroupARN == tgARN {
			return
		}
	}
	if tg := s.targetGroups[tgARN]; tg != nil {
		tg.LoadBalancerARNs = slices.DeleteFunc(tg.LoadBalancerARNs, func(a string) bool { return a == lbARN })
	}
}

// tagsOf returns the tags of a load balancer, target group or listener.
// An unknown ARN is answered with the NotFound error of its resource type,
// as AWS does (DescribeTags of a deleted target group is
// TargetGroupNotFound, not LoadBalancerNotFound).
func (s *Server) tagsOf(arn string) (map[string]string, *apiError) {
	if lb, ok := s.loadBalancers[arn]; ok {
		return lb.Tags, nil
	}
	if tg, ok := s.targetGroups[arn]; ok {
		return tg.Tags, nil
	}
	if l, ok := s.listeners[arn]; ok {
		if l.Tags == nil {
			l.Tags = map[string]string{}
		}
		return l.Tags, nil
	}
	switch arnResourceType(arn) {
	case "loadbalancer":
		return nil, errorf(400, "LoadBalancerNotFound", "One or more load balancers not found")
	case "targetgroup":
		return nil, errorf(400, "TargetGroupNotFound", "One or more target groups not found")
	case "listener":
		return nil, errorf(400, "ListenerNotFound", "One or more listeners not found")
	}
	return nil, errorf(400, "ValidationError", "'%s' is not a valid load balancer, target group or listener ARN", arn)
}

// arnResourceType returns the resource type of an ELBv2 ARN
// ("arn:aws:elasticloadbalancing:region:account:targetgroup/name/id" ->
// "targetgroup"), or "".
func arnResourceType(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[0] != "arn" || parts[2] != "elasticloadbalancing" {
		return ""
	}
	typ, _, _ := strings.Cut(parts[5], "/")
	return typ
}

func (s *Server) describeTags(q query) (any, *apiError) {
	arns := q.strings("ResourceArns.member")
	if len(arns) > 20 {
		return nil, errorf(400, "ValidationError", "at most 20 resource ARNs")
	}
	var out tagDescriptionsXML
	for _, arn := range arns {
		tags, err := s.tagsOf(arn)
		if err != nil {
			return nil, err
		}
		out.Descriptions = append(out.Descriptions, tagDescriptionXML{ResourceARN: arn, Tags: tagList(tags)})
	}
	return out, nil
}

func (s *Server) addTags(q query) (any, *apiError) {
	add := q.elbTags("Tags")
	for _, arn := range q.strings("ResourceArns.member") {
		tags, err := s.tagsOf(arn)
		if err != nil {
			return nil, err
		}
		if len(tags)+len(add) > 50 {
			return nil, errorf(400, "TooManyTags", "too many tags on %q", arn)
		}
		for k, v := range add {
			tags[k] = v
		}
	}
	return struct{}{}, nil
}
