package proxy

// The PROXY protocol (HAProxy's, v1 text and v2 binary), for a load
// balancer in front that passes TCP through (an AWS NLB, HAProxy in tcp
// mode): each connection starts with a header naming the real client, which
// becomes the request's RemoteAddr, so it lands in X-Forwarded-For, the
// access log and the trusted-proxy check.

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/pires/go-proxyproto"
)

// ProxyProtocolListener wraps ln (Listen's, so that the connection limit
// and tracking still apply underneath) so that every connection from a
// sender in from must start with a PROXY protocol header, v1 or v2, within
// headerTimeout (0: DefaultReadHeaderTimeout); one without it is closed at
// its first read. Connections from any other address are closed at once:
// only the load balancer may connect. A LOCAL header (the balancer's own
// health check) keeps the connection's own address.
func ProxyProtocolListener(ln net.Listener, from []netip.Prefix, headerTimeout time.Duration) (net.Listener, error) {
	if len(from) == 0 {
		return nil, errors.New("proxy protocol: no trusted senders: name the load balancers' addresses (CIDRs)")
	}
	if headerTimeout <= 0 {
		headerTimeout = DefaultReadHeaderTimeout
	}
	trusted := append([]netip.Prefix(nil), from...)
	return &proxyproto.Listener{
		Listener:          ln,
		ReadHeaderTimeout: headerTimeout,
		ConnPolicy: func(o proxyproto.ConnPolicyOptions) (proxyproto.Policy, error) {
			if ip, ok := addrIP(o.Upstream); ok {
				for _, p := range trusted {
					if p.Contains(ip) {
						return proxyproto.REQUIRE, nil
					}
				}
			}
			// Closed by the listener, which goes on accepting.
			return proxyproto.REJECT, proxyproto.ErrInvalidUpstream
		},
	}, nil
}

func addrIP(a net.Addr) (netip.Addr, bool) {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, ok := netip.AddrFromSlice(ta.IP)
		return ip.Unmap(), ok
	}
	if a == nil {
		return netip.Addr{}, false
	}
	ap, err := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap(), err == nil
}
