package main

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/internal/proxy"
)

// httpSettings are the settings of the proxy's request path: the path
// prefix, the PROXY protocol, buffering for slow clients and its timeouts.
type httpSettings struct {
	prefix            string
	proxyProtocol     bool
	proxyProtocolFrom []netip.Prefix
	bufferRequests    bool
	bufferResponses   bool
	maxBody           int64 // 0: no limit
	bufferMemory      int64
	bufferDir         string
	noBufferPrefixes  []string
	clientBodyTimeout time.Duration
	clientSendTimeout time.Duration
	bufferTotalMemory int64 // 0: no cap
	bufferTotalDisk   int64 // 0: no cap
	http2MaxStreams   int
}

// addHTTPSettings declares its flags and environment variables.
func addHTTPSettings(s *settings, h *httpSettings) {
	s.str(&h.prefix, "prefix", []string{"SWITCHYARD_PREFIX"}, "", "path prefix the app is mounted under (e.g. /api): 404 outside it, stripped before forwarding, sent as X-Forwarded-Prefix")
	s.boolean(&h.proxyProtocol, "proxy-protocol", []string{"SWITCHYARD_PROXY_PROTOCOL"}, "false", "expect a PROXY protocol header (v1 or v2) on every connection; its client address is the request's")
	s.add("proxy-protocol-from", []string{"SWITCHYARD_PROXY_PROTOCOL_FROM"}, "", "comma-separated CIDRs of the load balancers that send PROXY headers (required with --proxy-protocol; others are refused)", func(v string) error {
		p, err := parseCIDRs(v)
		h.proxyProtocolFrom = append(h.proxyProtocolFrom, p...)
		return err
	})
	s.boolean(&h.bufferRequests, "buffer-requests", []string{"SWITCHYARD_BUFFER_REQUESTS"}, "true", "read a request body whole (memory, then a temp file) before the request takes a worker")
	s.boolean(&h.bufferResponses, "buffer-responses", []string{"SWITCHYARD_BUFFER_RESPONSES"}, "true", "read the app's response whole before sending it, so a slow client does not hold a worker")
	s.add("max-body", []string{"SWITCHYARD_MAX_BODY"}, sizeText(proxy.DefaultMaxBody), "largest request body (413 past it; 0: no limit); a buffered response past it is streamed", func(v string) error {
		n, err := parseSize(v)
		h.maxBody = n
		return err
	})
	s.add("buffer-memory", []string{"SWITCHYARD_BUFFER_MEMORY"}, sizeText(proxy.DefaultBufferMemory), "bytes of one body held in memory before the rest spills to a temp file", func(v string) error {
		n, err := parseSize(v)
		if err == nil && n < 1 {
			err = fmt.Errorf("%q: must be at least 1 byte", v)
		}
		h.bufferMemory = n
		return err
	})
	s.add("buffer-total-memory", []string{"SWITCHYARD_BUFFER_TOTAL_MEMORY"}, sizeText(proxy.DefaultBufferTotalMemory), "memory all buffered bodies together may hold; past it they spill to temp files sooner (0: no cap)", func(v string) error {
		n, err := parseSize(v)
		h.bufferTotalMemory = n
		return err
	})
	s.add("buffer-total-disk", []string{"SWITCHYARD_BUFFER_TOTAL_DISK"}, sizeText(proxy.DefaultBufferTotalDisk), "bytes all spilled bodies together may hold; past it a request body is refused (503) and a response streamed (0: no cap)", func(v string) error {
		n, err := parseSize(v)
		h.bufferTotalDisk = n
		return err
	})
	s.str(&h.bufferDir, "buffer-dir", []string{"SWITCHYARD_BUFFER_DIR"}, "", "directory for spilled bodies (default: the system temp dir); files are unlinked at once")
	s.add("no-buffer-prefix", []string{"SWITCHYARD_NO_BUFFER_PREFIX"}, "", "app path prefix whose requests and responses are streamed, not buffered (repeatable; env: comma-separated)", func(v string) error {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.noBufferPrefixes = append(h.noBufferPrefixes, f)
			}
		}
		return nil
	})
	s.duration(&h.clientBodyTimeout, "client-body-timeout", []string{"SWITCHYARD_CLIENT_BODY_TIMEOUT"}, durationText(proxy.DefaultClientBodyTimeout), "longest wait for the next bytes of a request body being buffered (408 past it)")
	s.integer(&h.http2MaxStreams, "http2-max-streams", []string{"SWITCHYARD_HTTP2_MAX_STREAMS"}, strconv.Itoa(proxy.DefaultHTTP2MaxStreams), "most concurrent requests (streams) on one HTTP/2 connection; each also counts against --max-connections", 1)
	s.duration(&h.clientSendTimeout, "client-send-timeout", []string{"SWITCHYARD_CLIENT_SEND_TIMEOUT"}, durationText(proxy.DefaultClientSendTimeout), "longest wait for a client to take the next bytes of a buffered response (connection closed past it)")
}

// validate checks what proxy.New does not see: the PROXY protocol's
// settings go together. The rest is proxy.New's to check (serve_proxy.go).
func (h *httpSettings) validate() error {
	if h.proxyProtocol && len(h.proxyProtocolFrom) == 0 {
		return fmt.Errorf("proxy-protocol: set --proxy-protocol-from to the load balancers' addresses (CIDRs)")
	}
	if !h.proxyProtocol && len(h.proxyProtocolFrom) > 0 {
		return fmt.Errorf("proxy-protocol-from is set but --proxy-protocol is not")
	}
	return nil
}

// proxySettings copy them into proxy.Config, one setting each.
func (h *httpSettings) proxySettings() []proxySetting {
	return []proxySetting{
		{"prefix", func(c *proxy.Config) { c.Prefix = h.prefix }},
		{"buffer-requests", func(c *proxy.Config) { c.BufferRequests = h.bufferRequests }},
		{"buffer-responses", func(c *proxy.Config) { c.BufferResponses = h.bufferResponses }},
		{"max-body", func(c *proxy.Config) {
			c.MaxBody = h.maxBody
			if h.maxBody == 0 {
				c.MaxBody = -1 // no limit
			}
		}},
		{"buffer-memory", func(c *proxy.Config) { c.BufferMemory = h.bufferMemory }},
		{"buffer-dir", func(c *proxy.Config) { c.BufferDir = h.bufferDir }},
		{"no-buffer-prefix", func(c *proxy.Config) { c.NoBufferPrefixes = h.noBufferPrefixes }},
		{"client-body-timeout", func(c *proxy.Config) { c.ClientBodyTimeout = h.clientBodyTimeout }},
		{"client-send-timeout", func(c *proxy.Config) { c.ClientSendTimeout = h.clientSendTimeout }},
		{"buffer-total-memory", func(c *proxy.Config) { c.BufferTotalMemory = noCap(h.bufferTotalMemory) }},
		{"buffer-total-disk", func(c *proxy.Config) { c.BufferTotalDisk = noCap(h.bufferTotalDisk) }},
		{"http2-max-streams", func(c *proxy.Config) { c.HTTP2MaxStreams = h.http2MaxStreams }},
	}
}

// apply copies them into the proxy's Config.
func (h *httpSettings) apply(c *proxy.Config) {
	for _, s := range h.proxySettings() {
		s.set(c)
	}
}

// noCap maps the flags' 0 (no cap) to the proxy's negative.
func noCap(n int64) int64 {
	if n == 0 {
		return -1
	}
	return n
}

// wrapListener wraps the proxy's listener for the PROXY protocol.
func (h *httpSettings) wrapListener(ln net.Listener) (net.Listener, error) {
	if !h.proxyProtocol {
		return ln, nil
	}
	return proxy.ProxyProtocolListener(ln, h.proxyProtocolFrom, 0)
}

// sizeText writes a default byte count as parseSize reads it: 100MiB.
func sizeText(n int64) string {
	for _, u := range []struct {
		unit  string
		shift uint
	}{{"GiB", 30}, {"MiB", 20}, {"KiB", 10}} {
		if n >= 1<<u.shift && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.unit
		}
	}
	return strconv.FormatInt(n, 10)
}

// parseSize reads a byte count: a bare number, or one with a binary unit
// (k, m, g; KiB, MB, ... all mean powers of 1024).
func parseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	i := len(s)
	for i > 0 && (s[i-1] < '0' || s[i-1] > '9') {
		i--
	}
	num, unit := s[:i], strings.ToLower(strings.TrimSpace(s[i:]))
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size (want bytes, or a number with k, m or g, e.g. 100MiB)", v)
	}
	unit = strings.TrimSuffix(strings.TrimSuffix(unit, "b"), "i")
	shift := map[string]uint{"": 0, "k": 10, "m": 20, "g": 30}
	sh, ok := shift[unit]
	if !ok {
		return 0, fmt.Errorf("%q: unknown unit (want k, m or g)", v)
	}
	if n > (1<<62)>>sh {
		return 0, fmt.Errorf("%q: too large", v)
	}
	return n << sh, nil
}
