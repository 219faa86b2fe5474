package launch

import (
	"fmt"
	"strings"
)

// HAProxyConfig returns an haproxy.cfg laid out as the gunicorn-proxy image's
// run.sh writes it (HAProxy era of luhn/docker-gunicorn-proxy):
//
//	global   maxconn ${MAX_CONNECTIONS:-2000}
//	defaults mode http; timeout connect 5s; client 30s; server 30s;
//	         timeout queue ${QUEUE_TIMEOUT:-3s}
//	frontend option http-buffer-request; timeout http-request 10s;
//	         log-format "%HM %HU %ST %TR/%Tw/%Tr/%Ta %U";
//	         acl is_healthcheck path ${HEALTHCHECK_PATH:-/healthcheck}
//	         use_backend healthcheck if is_healthcheck; default_backend app
//	backend app          server main $1 maxconn ${2:-1}
//	backend healthcheck  server main $1
//
// Differences, all on purpose: it binds 127.0.0.1 instead of *:80; there is
// no TLS; `option http-keep-alive` is spelled out (it is HAProxy's default
// anyway); gzip compression is left out (the bench client does not ask for it
// and the bodies are tiny); and the access log goes to stdout only when
// o.AccessLog is set (the image sends it over UDP syslog to 127.0.0.1, where
// nothing listens in the image by default).
func HAProxyConfig(listen string, o Options) string {
	var b strings.Builder
	b.WriteString("global\n")
	fmt.Fprintf(&b, "\tmaxconn %d\n", o.maxConnections())
	if o.Threads > 0 {
		fmt.Fprintf(&b, "\tnbthread %d\n", o.Threads)
	}
	b.WriteString("\ndefaults\n\tmode http\n\toption http-keep-alive\n")
	b.WriteString("\ttimeout connect 5s\n\ttimeout client 30s\n\ttimeout server 30s\n")
	if o.QueueTimeout > 0 {
		fmt.Fprintf(&b, "\ttimeout queue %dms\n", o.QueueTimeout.Milliseconds())
	}
	b.WriteString("\nfrontend http\n")
	fmt.Fprintf(&b, "\tbind %s\n", listen)
	b.WriteString("\toption http-buffer-request\n\ttimeout http-request 10s\n")
	if o.AccessLog {
		b.WriteString("\tlog stdout format raw local0\n")
		b.WriteString("\tlog-format \"%HM %HU %ST %TR/%Tw/%Tr/%Ta %U\"\n")
	}
	if o.HealthPath != "" {
		fmt.Fprintf(&b, "\tacl is_healthcheck path %s\n", o.HealthPath)
		b.WriteString("\tuse_backend healthcheck if is_healthcheck\n")
	}
	b.WriteString("\tdefault_backend app\n")
	b.WriteString("\nbackend app\n")
	if o.Workers > 0 {
		fmt.Fprintf(&b, "\tserver main %s maxconn %d\n", o.Upstream, o.Workers)
	} else {
		fmt.Fprintf(&b, "\tserver main %s\n", o.Upstream)
	}
	b.WriteString("\nbackend healthcheck\n")
	fmt.Fprintf(&b, "\tserver main %s\n", o.Upstream)
	return b.String()
}
