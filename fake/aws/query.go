package aws

import (
	"fmt"
	"net/url"
	"strconv"
)

// query reads the parameters of an awsquery or ec2query request. awsquery
// lists are "Name.member.N[.Field]"; ec2query lists are "Name.N[.Field]".
type query url.Values

func (q query) str(key string) string { return url.Values(q).Get(key) }

func (q query) has(key string) bool {
	_, ok := q[key]
	return ok
}

// int32 returns the integer at key, or def when the key is absent.
func (q query) int32(key string, def int32) (int32, *apiError) {
	v := q.str(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, errorf(400, "ValidationError", "%s: %q is not an integer", key, v)
	}
	return int32(n), nil
}

// members returns the prefixes prefix.1, prefix.2, ... that have at least
// one key, in order, stopping at the first gap.
func (q query) members(prefix string) []string {
	var out []string
	for i := 1; ; i++ {
		p := fmt.Sprintf("%s.%d", prefix, i)
		if q.has(p) || q.hasPrefix(p+".") {
			out = append(out, p)
			continue
		}
		return out
	}
}

func (q query) hasPrefix(p string) bool {
	for k := range q {
		if len(k) > len(p) && k[:len(p)] == p {
			return true
		}
	}
	return false
}

// strings returns the scalar list at prefix.1, prefix.2, ...
func (q query) strings(prefix string) []string {
	var out []string
	for _, p := range q.members(prefix) {
		out = append(out, q.str(p))
	}
	return out
}

// elbList returns the awsquery list "name.member.N".
func (q query) elbList(name string) []string { return q.members(name + ".member") }

// elbTags reads an awsquery "Tags.member.N.Key/Value" list.
func (q query) elbTags(name string) map[string]string {
	tags := map[string]string{}
	for _, p := range q.elbList(name) {
		tags[q.str(p+".Key")] = q.str(p + ".Value")
	}
	return tags
}

// ec2Filters reads "Filter.N.Name" and "Filter.N.Value.M".
func (q query) ec2Filters() map[string][]string {
	filters := map[string][]string{}
	for _, p := range q.members("Filter") {
		filters[q.str(p+".Name")] = append(filters[q.str(p+".Name")], q.strings(p+".Value")...)
	}
	return filters
}
