package aws

// The ec2query result shapes, as the SDK's deserializers read them
// (ec2/deserializers.go): lower-camel names, lists are <xxxSet><item>...</item></xxxSet>.

type tagXML struct {
	Key   string `xml:"key"`
	Value string `xml:"value"`
}

func ec2Tags(m map[string]string) []tagXML {
	var out []tagXML
	for _, k := range sortedKeys(m) {
		out = append(out, tagXML{Key: k, Value: m[k]})
	}
	return out
}

type describeInstancesXML struct {
	Reservations []reservationXML `xml:"reservationSet>item"`
	NextToken    string           `xml:"nextToken,omitempty"`
}

type reservationXML struct {
	ReservationID string        `xml:"reservationId"`
	OwnerID       string        `xml:"ownerId"`
	Instances     []instanceXML `xml:"instancesSet>item"`
}

type instanceXML struct {
	ID        string               `xml:"instanceId"`
	VPCID     string               `xml:"vpcId"`
	SubnetID  string               `xml:"subnetId"`
	PrivateIP string               `xml:"privateIpAddress,omitempty"`
	AZ        string               `xml:"placement>availabilityZone"`
	StateCode int                  `xml:"instanceState>code"`
	StateName string               `xml:"instanceState>name"`
	Groups    []groupIdentifierXML `xml:"groupSet>item"`
}

type groupIdentifierXML struct {
	ID   string `xml:"groupId"`
	Name string `xml:"groupName"`
}

type describeSubnetsXML struct {
	Subnets   []subnetXML `xml:"subnetSet>item"`
	NextToken string      `xml:"nextToken,omitempty"`
}

type subnetXML struct {
	ID    string   `xml:"subnetId"`
	VPCID string   `xml:"vpcId"`
	CIDR  string   `xml:"cidrBlock"`
	AZ    string   `xml:"availabilityZone"`
	State string   `xml:"state"`
	Tags  []tagXML `xml:"tagSet>item"`
}

type describeSecurityGroupsXML struct {
	Groups []securityGroupXML `xml:"securityGroupInfo>item"`
}

type securityGroupXML struct {
	ID                 string            `xml:"groupId"`
	Name               string            `xml:"groupName"`
	VPCID              string            `xml:"vpcId"`
	OwnerID            string            `xml:"ownerId"`
	Description        string            `xml:"groupDescription"`
	IngressPermissions []ipPermissionXML `xml:"ipPermissions>item"`
	Tags               []tagXML          `xml:"tagSet>item"`
}

type ipPermissionXML struct {
	Protocol string       `xml:"ipProtocol"`
	FromPort *int32       `xml:"fromPort,omitempty"`
	ToPort   *int32       `xml:"toPort,omitempty"`
	IPRanges []ipRangeXML `xml:"ipRanges>item"`
}

type ipRangeXML struct {
	CIDR        string `xml:"cidrIp"`
	Description string `xml:"description,omitempty"`
}

type describeRulesXML struct {
	Rules     []ruleXML `xml:"securityGroupRuleSet>item"`
	NextToken string    `xml:"nextToken,omitempty"`
}

type ruleXML struct {
	ID          string   `xml:"securityGroupRuleId"`
	GroupID     string   `xml:"groupId"`
	OwnerID     string   `xml:"groupOwnerId"`
	IsEgress    bool     `xml:"isEgress"`
	Protocol    string   `xml:"ipProtocol"`
	FromPort    int32    `xml:"fromPort"`
	ToPort      int32    `xml:"toPort"`
	CIDRv4      string   `xml:"cidrIpv4"`
	Description string   `xml:"description,omitempty"`
	Tags        []tagXML `xml:"tagSet>item"`
}

type authorizeXML struct {
	Return bool      `xml:"return"`
	Rules  []ruleXML `xml:"securityGroupRuleSet>item"`
}

type revokeXML struct {
	Return bool `xml:"return"`
}
