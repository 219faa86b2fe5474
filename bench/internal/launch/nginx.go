package launch

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// nginxConfig returns an nginx.conf comparable to the other proxies:
// o.Threads worker processes (plus the idle master), HTTP/1.1 keep-alive to the upstream
// (an `upstream` block with `keepalive`), Host kept, X-Forwarded-For/Proto
// set, keepalive_requests raised on both sides so that nginx, like the Go
// proxies and HAProxy, does not close a connection every 1000 requests, and no
// access log unless o.AccessLog. Every path nginx writes to is in the group's
// directory.
func (g *Group) nginxConfig(listen string, o Options) string {
	dir := g.Dir
	var b strings.Builder
	workers := "auto"
	if o.Threads > 0 {
		workers = strconv.Itoa(o.Threads)
	}
	fmt.Fprintf(&b, "daemon off;\nworker_processes %s;\n", workers)
	if os.Geteuid() == 0 {
		b.WriteString("user root;\n") // the scratch files are root's
	}
	fmt.Fprintf(&b, "pid %s;\nerror_log %s warn;\n", filepath.Join(dir, "nginx.pid"), g.Path("nginx-error", ".log"))
	b.WriteString("events {\n\tworker_connections 4096;\n}\n")
	b.WriteString("http {\n")
	if o.AccessLog {
		b.WriteString("\tlog_format hap '$request_method $request_uri $status $request_time $upstream_response_time $bytes_sent';\n")
		fmt.Fprintf(&b, "\taccess_log %s hap;\n", g.Path("nginx-access", ".log"))
	} else {
		b.WriteString("\taccess_log off;\n")
	}
	for _, t := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "\t%s_temp_path %s;\n", t, filepath.Join(dir, "nginx-"+t))
	}
	b.WriteString("\tkeepalive_timeout 65;\n\tkeepalive_requests 1000000;\n")
	fmt.Fprintf(&b, "\tupstream app {\n\t\tserver %s max_fails=0;\n\t\tkeepalive 128;\n\t\tkeepalive_requests 1000000;\n\t}\n", o.Upstream)
	fmt.Fprintf(&b, "\tserver {\n\t\tlisten %s;\n", listen)
	b.WriteString("\t\tlocation / {\n")
	b.WriteString("\t\t\tproxy_pass http://app;\n")
	b.WriteString("\t\t\tproxy_http_version 1.1;\n")
	b.WriteString("\t\t\tproxy_set_header Connection \"\";\n")
	b.WriteString("\t\t\tproxy_set_header Host $http_host;\n")
	b.WriteString("\t\t\tproxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n")
	b.WriteString("\t\t\tproxy_set_header X-Forwarded-Proto $scheme;\n")
	b.WriteString("\t\t\tproxy_redirect off;\n")
	b.WriteString("\t\t}\n\t}\n}\n")
	return b.String()
}
