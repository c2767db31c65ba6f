package config

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Hosts is what ALLOWED_HOSTS says: the names a request's Host may carry.
// A page on another site can make a browser send requests here by pointing
// its own name at this service's address (DNS rebinding: evil.example
// answers 127.0.0.1 once its page is loaded); the browser then treats the
// answers as evil.example's, readable by its page, and the request's Host
// is evil.example. Refusing names that are not this service's closes that
// door (README, "Security and timeouts").
//
// An IP address as Host always passes: rebinding needs a name, a page of
// an IP origin can only reach that address, and load balancers' and
// kubelet's probes and `telemetry healthcheck` send one. So does a request
// without Host (HTTP/1.0; no browser sends one).
//
// The zero Hosts allows every name.
type Hosts struct {
	restrict bool // false: any name
	patterns []hostPattern
}

// hostPattern is one entry: a name, or with wildcard every name under it
// (not the name itself), and a port when the entry has one.
type hostPattern struct {
	name     string // lower case, no trailing dot; an IPv6 address in brackets
	wildcard bool
	port     string // "" for any
}

// AnyHost is the Hosts that allows every name.
var AnyHost = Hosts{}

// LocalHosts is the default of a service that listens on loopback only:
// localhost (and IP addresses, as always).
var LocalHosts = Hosts{restrict: true, patterns: []hostPattern{{name: "localhost"}}}

// Any reports whether every Host passes.
func (h Hosts) Any() bool { return !h.restrict }

// String writes the entries back as ALLOWED_HOSTS would list them (for the
// start-up log); "*" for any host.
func (h Hosts) String() string {
	if !h.restrict {
		return "*"
	}
	parts := make([]string, len(h.patterns))
	for i, p := range h.patterns {
		s := p.name
		if p.wildcard {
			s = "*." + s
		}
		if p.port != "" {
			s += ":" + p.port
		}
		parts[i] = s
	}
	return strings.Join(parts, ",")
}

// Allow reports whether a request whose Host header (or HTTP/2 :authority)
// is host may be answered.
func (h Hosts) Allow(host string) bool {
	if !h.restrict || host == "" {
		return true
	}
	name, port := splitHost(host)
	if _, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(name, "["), "]")); err == nil {
		return true
	}
	name = strings.TrimSuffix(strings.ToLower(name), ".")
	for _, p := range h.patterns {
		if p.port != "" && p.port != port {
			continue
		}
		if p.wildcard {
			if len(name) > len(p.name)+1 && strings.HasSuffix(name, "."+p.name) {
				return true
			}
		} else if name == p.name {
			return true
		}
	}
	return false
}

// splitHost splits a Host value into its name (an IPv6 address keeps its
// brackets) and port ("" when it has none, or when the value is not
// host[:port]: then the whole value is the name, which matches no entry).
func splitHost(host string) (name, port string) {
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
		name, port = host[:i], host[i+1:]
		if strings.Contains(name, ":") && !strings.HasPrefix(name, "[") {
			return host, "" // a bare IPv6 address
		}
		return name, port
	}
	return host, ""
}

// parseHosts reads ALLOWED_HOSTS: a comma list of host names (telemetry.
// example.com, localhost), IP addresses ([::1] in brackets), *.example.com
// for every name under example.com, each with an optional :port that Host
// must then carry; or * for any host.
func parseHosts(v string) (Hosts, error) {
	h, anyHost := Hosts{restrict: true}, false
	for _, e := range strings.Split(v, ",") {
		e = strings.ToLower(strings.TrimSpace(e))
		if e == "" {
			continue
		}
		if e == "*" {
			anyHost = true
			continue
		}
		p, ok := parseHostPattern(e)
		if !ok {
			return Hosts{}, errors.New("must be host names such as telemetry.example.com, *.example.com (every name under it) or localhost:8080, " +
				"comma separated, or * for any host")
		}
		h.patterns = append(h.patterns, p)
	}
	if anyHost {
		return AnyHost, nil
	}
	if len(h.patterns) == 0 {
		return Hosts{}, errors.New("lists no host: leave it unset for the default, or write * for any host")
	}
	return h, nil
}

func parseHostPattern(e string) (hostPattern, bool) {
	var p hostPattern
	name, hasPort := e, false
	if strings.HasPrefix(e, "[") {
		// [IPv6] or [IPv6]:port
		end := strings.IndexByte(e, ']')
		if end < 0 {
			return p, false
		}
		name, rest := e[:end+1], e[end+1:]
		if _, err := netip.ParseAddr(name[1:end]); err != nil {
			return p, false
		}
		if rest != "" {
			if p.port, hasPort = strings.CutPrefix(rest, ":"); !hasPort {
				return p, false
			}
		}
		if hasPort && !validPort(p.port) {
			return p, false
		}
		p.name = name
		return p, true
	}
	switch strings.Count(e, ":") {
	case 0:
	case 1:
		name, p.port, _ = strings.Cut(e, ":")
		if !validPort(p.port) {
			return p, false
		}
	default:
		return p, false // an IPv6 address wants brackets, as in Host
	}
	if rest, ok := strings.CutPrefix(name, "*."); ok {
		p.wildcard, name = true, rest
	}
	name = strings.TrimSuffix(name, ".")
	if !validHostName(name) {
		return p, false
	}
	p.name = name
	return p, true
}

func validPort(s string) bool {
	n, err := strconv.Atoi(s)
	return err == nil && n >= 1 && n <= 65535 && s[0] >= '1' && s[0] <= '9'
}

// validHostName accepts DNS names (letters, digits, - and _ in labels of 1
// to 63 bytes, 253 in all) and IPv4 addresses, which are such names.
func validHostName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// LoopbackAddr reports whether a host:port listens on loopback only: an IP
// literal in 127.0.0.0/8 or ::1, or localhost. An empty host (":8080") is
// every interface; other names are not resolved here and count as not
// loopback.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// hostsFor is the Hosts a listener on addr answers to: ALLOWED_HOSTS when
// set, else LocalHosts for a loopback address and AnyHost for any other.
func (c Config) hostsFor(addr string) Hosts {
	switch {
	case c.allowedHostsVar != nil:
		return *c.allowedHostsVar
	case LoopbackAddr(addr):
		return LocalHosts
	}
	return AnyHost
}

// PprofHosts is the Hosts the profiler's listener (PPROF_ADDR) answers to:
// like the API's, its default follows its own address, and a loopback one
// answers to localhost whatever ALLOWED_HOSTS lists (the service's public
// names): `go tool pprof http://localhost:6060/...` on the host itself got
// a 421 once ALLOWED_HOSTS was set. localhost names this machine, so no
// page elsewhere can rebind it to another.
func (c Config) PprofHosts() Hosts {
	h := c.hostsFor(c.PprofAddr)
	if !h.restrict || !LoopbackAddr(c.PprofAddr) || h.Allow("localhost") {
		return h
	}
	h.patterns = append(slices.Clip(h.patterns), LocalHosts.patterns...)
	return h
}
